"""Redis state of the windowed telecom detectors: one expiring hash per entity.

``{prefix}{entity}`` holds ``{group}:{key}`` -> ``"{epoch}\\x1f{event_id}\\x1f{detail}"``
for the sightings inside their horizons (see :mod:`detectors.window`), and
``alerted_until``. Each key expires ``ttl_seconds`` after its last write, so
memory stays bounded however long the stream runs and however many entities
pass. Loading and flushing a batch are one pipelined round trip each; every
write is an upsert or a delete, harmless twice.
"""

from collections.abc import Iterable, Mapping

from redis.asyncio import Redis

from detectors.window import EntityChange, EntityState, Seen

_SEP = "\x1f"
_ALERTED = "alerted_until"


def _encode(seen: Seen) -> str:
    return f"{seen.at!r}{_SEP}{seen.event_id}{_SEP}{seen.detail}"


def _parse(fields: Mapping[bytes, bytes]) -> EntityState:
    groups: dict[str, dict[str, Seen]] = {}
    alerted_until = 0.0
    for name, raw in fields.items():
        field = name.decode()
        if field == _ALERTED:
            alerted_until = float(raw)
            continue
        group, key = field.split(":", 1)
        at, event_id, detail = raw.decode().split(_SEP, 2)
        groups.setdefault(group, {})[key] = Seen(float(at), event_id, detail)
    return EntityState(groups=groups, alerted_until=alerted_until)


class WindowStore:
    def __init__(self, redis: Redis, *, prefix: str, ttl_seconds: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds

    async def load(self, entities: Iterable[str]) -> dict[str, EntityState]:
        entities = sorted(set(entities))
        async with self.redis.pipeline(transaction=False) as pipe:
            for entity in entities:
                pipe.hgetall(self.prefix + entity)
            rows = await pipe.execute()
        return {entity: _parse(fields) for entity, fields in zip(entities, rows) if fields}

    async def apply(self, changes: Mapping[str, EntityChange]) -> None:
        """Write every entity's change in one pipeline; repeating it is harmless."""
        if not changes:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for entity, change in changes.items():
                key = self.prefix + entity
                mapping = {f"{group}:{name}": _encode(seen) for (group, name), seen in change.upserts.items()}
                if change.alerted_until is not None:
                    mapping[_ALERTED] = repr(change.alerted_until)
                if mapping:
                    pipe.hset(key, mapping=mapping)
                if change.removals:
                    pipe.hdel(key, *(f"{group}:{name}" for group, name in change.removals))
                pipe.expire(key, self.ttl_seconds)
            await pipe.execute()
