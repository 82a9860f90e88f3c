"""Redis state of the call fan-out detector: one hash per caller, expiring.

``fanout:{caller}`` holds ``c:{callee}`` -> ``"{epoch} {event_id}"`` for the
callees inside the window, and ``alerted_until``. Each key expires a window
after its last write, so memory stays bounded however long the stream runs.
Loading and flushing a batch are one pipelined round trip each.
"""

from collections.abc import Iterable, Mapping

from redis.asyncio import Redis

from detectors.call_fanout import CalleeSeen, CallerChange, CallerState

_PREFIX = "fanout:"
_CALLEE = "c:"
_ALERTED = "alerted_until"


def _key(caller: str) -> str:
    return _PREFIX + caller


def _parse(fields: Mapping[bytes, bytes]) -> CallerState:
    callees: dict[str, CalleeSeen] = {}
    alerted_until = 0.0
    for name, raw in fields.items():
        field = name.decode()
        if field == _ALERTED:
            alerted_until = float(raw)
        elif field.startswith(_CALLEE):
            at, event_id = raw.decode().split(" ", 1)
            callees[field[len(_CALLEE) :]] = CalleeSeen(float(at), event_id)
    return CallerState(callees=callees, alerted_until=alerted_until)


class CallFanoutStore:
    def __init__(self, redis: Redis, *, window_seconds: int) -> None:
        self.redis = redis
        self.ttl_seconds = 2 * window_seconds

    async def load(self, callers: Iterable[str]) -> dict[str, CallerState]:
        callers = list(callers)
        async with self.redis.pipeline(transaction=False) as pipe:
            for caller in callers:
                pipe.hgetall(_key(caller))
            rows = await pipe.execute()
        return {caller: _parse(fields) for caller, fields in zip(callers, rows) if fields}

    async def apply(self, changes: Mapping[str, CallerChange]) -> None:
        """Write every caller's change in one pipeline; repeating it is harmless."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for caller, change in changes.items():
                key = _key(caller)
                mapping: dict[str, str] = {
                    _CALLEE + callee: f"{seen.at!r} {seen.event_id}" for callee, seen in change.upserts.items()
                }
                if change.alerted_until is not None:
                    mapping[_ALERTED] = repr(change.alerted_until)
                if mapping:
                    pipe.hset(key, mapping=mapping)
                if change.removals:
                    pipe.hdel(key, *(_CALLEE + callee for callee in change.removals))
                pipe.expire(key, self.ttl_seconds)
            await pipe.execute()
