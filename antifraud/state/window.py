"""Owned state of the windowed detectors (``detectors.window``): one expiring hash per entity.

``{prefix}{entity}`` holds ``{group}:{key}`` -> ``"{epoch}\\x1f{event_id}\\x1f{detail}"`` for the
sightings inside their horizons, and ``alerted_until``. Each key expires ``ttl_seconds`` after its
last write, so memory stays bounded however long the stream runs. Only the owner of the entity's
partition writes it; reading the states a batch misses and writing a batch's changes are one script
call each (:class:`antifraud.state.store.OwnedStore` keeps the rest in memory).
"""

from collections.abc import Mapping, Sequence

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from antifraud.state.keys import KeyFamily
from antifraud.state.store import Lua
from detectors.window import EntityChange, EntityState, Seen

_SEP = "\x1f"
_ALERTED = "alerted_until"

# KEYS: the entities. Per key its fields and values, alternating.
_LOAD = Lua("""
local out = {}
for k = 1, #KEYS do out[k] = redis.call('HGETALL', KEYS[k]) end
return out
""")

# KEYS: the entities; ARGV[1] ttl, then per key: n, n field/value pairs to set, m, m fields to delete.
_WRITE = Lua("""
local ttl = tonumber(ARGV[1])
local i = 2
for k = 1, #KEYS do
  local n = tonumber(ARGV[i])
  i = i + 1
  for j = 1, n do
    redis.call('HSET', KEYS[k], ARGV[i], ARGV[i + 1])
    i = i + 2
  end
  local m = tonumber(ARGV[i])
  i = i + 1
  for j = 1, m do
    redis.call('HDEL', KEYS[k], ARGV[i])
    i = i + 1
  end
  redis.call('EXPIRE', KEYS[k], ttl)
end
return 0
""")


def _encode(seen: Seen) -> str:
    return f"{seen.at!r}{_SEP}{seen.event_id}{_SEP}{seen.detail}"


def parse_state(fields: Mapping[str, str]) -> EntityState:
    groups: dict[str, dict[str, Seen]] = {}
    alerted_until = 0.0
    for field, raw in fields.items():
        if field == _ALERTED:
            alerted_until = float(raw)
            continue
        group, key = field.split(":", 1)
        at, event_id, detail = raw.split(_SEP, 2)
        groups.setdefault(group, {})[key] = Seen(float(at), event_id, detail)
    return EntityState(groups=groups, alerted_until=alerted_until)


def merged(deltas: Sequence[EntityChange]) -> tuple[dict[str, str], set[str]]:
    """One entity's deltas of a batch, in order, as the fields to set and the fields to delete."""
    upserts: dict[str, str] = {}
    removals: set[str] = set()
    for change in deltas:
        for (group, name), seen in change.upserts.items():
            field = f"{group}:{name}"
            upserts[field] = _encode(seen)
            removals.discard(field)
        for group, name in change.removals:
            field = f"{group}:{name}"
            upserts.pop(field, None)
            removals.add(field)
        if change.alerted_until is not None:
            upserts[_ALERTED] = repr(change.alerted_until)
    return upserts, removals


class WindowCodec:
    def __init__(self, family: KeyFamily, *, ttl_seconds: int) -> None:
        self.family = family
        self.ttl_seconds = ttl_seconds

    def empty(self) -> EntityState:
        return EntityState()

    async def load(self, redis: Redis, keys: Sequence[str]) -> dict[str, EntityState]:
        rows = await _LOAD(redis, [self.family.key(k) for k in keys], [])
        states = {}
        for key, row in zip(keys, rows):
            if row:
                parts = [p.decode() for p in row]
                states[key] = parse_state(dict(zip(parts[::2], parts[1::2])))
        return states

    def write(self, pipe: Pipeline, deltas: Mapping[str, Sequence[EntityChange]]) -> None:
        keys = sorted(deltas)
        args: list[str | float | int] = [self.ttl_seconds]
        for key in keys:
            upserts, removals = merged(deltas[key])
            args.append(len(upserts))
            for field, value in upserts.items():
                args += [field, value]
            args.append(len(removals))
            args += sorted(removals)
        _WRITE.queue(pipe, [self.family.key(k) for k in keys], args)
