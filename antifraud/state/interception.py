"""Redis state of victim tracing: who was already warned about each number.

``iv:warned:{number}`` is a set of the victims already warned; its size counts
against the per-number cap. ``SADD`` is idempotent, so a replayed batch writes
nothing new. Keys expire ``ttl_seconds`` after their last write; a number that
calls again later starts a new list (consumers still drop repeated warning ids).
"""

from collections.abc import Iterable

from redis.asyncio import Redis

from antifraud.interceptions import VictimWarning

_WARNED = "iv:warned:"


class WarnedStore:
    def __init__(self, redis: Redis, *, ttl_seconds: int) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds

    async def load(self, numbers: Iterable[str]) -> dict[str, set[str]]:
        numbers = sorted(numbers)
        if not numbers:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for number in numbers:
                pipe.smembers(_WARNED + number)
            rows = await pipe.execute()
        return {number: {v.decode() for v in row} for number, row in zip(numbers, rows)}

    async def apply(self, warnings: Iterable[VictimWarning]) -> None:
        by_number: dict[str, list[str]] = {}
        for warning in warnings:
            by_number.setdefault(warning.number, []).append(warning.victim)
        if not by_number:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for number, victims in by_number.items():
                pipe.sadd(_WARNED + number, *victims)
                pipe.expire(_WARNED + number, self.ttl_seconds)
            await pipe.execute()
