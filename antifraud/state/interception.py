"""Redis state of victim tracing: who was already warned about each number.

``iv:warned:{number}`` is a set of the victims already warned; its size counts
against the per-number cap. ``SADD`` is idempotent, so a replayed batch writes
nothing new. Keys expire ``ttl_seconds`` after their last write; a number that
calls again later starts a new list (consumers still drop repeated warning ids).

``iv:reached:{victim}`` is the reverse index the banking detectors join on: a hash
number -> ``"{epoch of its last call},{longest call in seconds}"`` for every
subscriber a listed or flagged number reached, warned or past the outreach cap
(an upsert: the latest write wins). It expires with the same ttl.
"""

from collections.abc import Iterable

from redis.asyncio import Redis

from antifraud.events.models import CallRecord
from antifraud.interceptions import VictimWarning

_WARNED = "iv:warned:"
REACHED = "iv:reached:"
"""Key prefix of the victim -> {flagged number: "last call epoch,longest call s"} index (read by transfer risk)."""


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

    async def apply(self, warnings: Iterable[VictimWarning], intercepted: Iterable[CallRecord] = ()) -> None:
        """Record the warned victims, and index them and the callees of ``intercepted`` calls as reached."""
        warnings = list(warnings)
        reached = {(w.victim, w.number): (w.last_call_at.timestamp(), w.longest_call_s) for w in warnings}
        for call in intercepted:
            at, longest = reached.get((call.callee, call.caller), (0.0, 0))
            reached[(call.callee, call.caller)] = (max(at, call.event_time.timestamp()), max(longest, call.duration_s))
        by_number: dict[str, list[str]] = {}
        for warning in warnings:
            by_number.setdefault(warning.number, []).append(warning.victim)
        if not reached:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for number, victims in by_number.items():
                pipe.sadd(_WARNED + number, *victims)
                pipe.expire(_WARNED + number, self.ttl_seconds)
            for (victim, number), (at, longest) in reached.items():
                pipe.hset(REACHED + victim, number, f"{at!r},{longest}")
                pipe.expire(REACHED + victim, self.ttl_seconds)
            await pipe.execute()
