"""The stream loop's bookkeeping in Redis: timers, and per partition its owner, next offset and watermark.

Offsets live in Redis, written in the same transaction as the state they lead to, so state and
position never disagree after a crash; Kafka's committed offsets follow for lag and tools. A worker
that is assigned a partition first writes its own token as the owner (:meth:`Progress.claim`); a
checkpoint of a worker that is no longer the owner is refused, so a worker that lost a partition
while it was busy cannot write over its new owner's work.
"""

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

from kafka.partitioner import murmur2
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from antifraud.state.keys import STREAM_NEWEST, STREAM_OFFSETS, STREAM_OWNERS, STREAM_WAKE, STREAM_WATERMARKS, TIMERS
from antifraud.state.store import Lua
from streams.merge import TopicPartition
from streams.records import Timer

_SEP = "\x1f"


def field_of(tp: TopicPartition) -> str:
    return f"{tp[0]}:{tp[1]}"


def partition_of_field(field: str) -> TopicPartition:
    topic, _, partition = field.rpartition(":")
    return topic, int(partition)


@dataclass(frozen=True)
class Partitioning:
    """How many partitions each input topic has: which partition owns an entity, as producers key it
    (Kafka's default partitioner, murmur2 of the key)."""

    counts: Mapping[str, int]

    def of(self, topic: str, key: str) -> TopicPartition:
        return topic, _partition(key, self.counts[topic])

    def all(self) -> frozenset[TopicPartition]:
        return frozenset((topic, p) for topic, n in self.counts.items() for p in range(n))


@lru_cache(maxsize=200_000)
def _partition(key: str, count: int) -> int:
    return (murmur2(key.encode()) & 0x7FFFFFFF) % count


def encode_timer(timer: Timer) -> str:
    return _SEP.join((timer.timer_id, timer.kind, timer.key, timer.data))


def decode_timer(topic: str, member: str, at: float) -> Timer:
    timer_id, kind, key, data = member.split(_SEP, 3)
    return Timer(at, topic, key, kind, data, timer_id)


# KEYS: the partitions' timer sets; ARGV[1] the bound. Per key, "score member" pairs of the timers due
# before the bound, separated by \x1e.
_DUE = Lua("""
local out = {}
for k = 1, #KEYS do
  local row = redis.call('ZRANGEBYSCORE', KEYS[k], '-inf', '(' .. ARGV[1], 'WITHSCORES')
  local parts = {}
  for j = 1, #row, 2 do parts[#parts + 1] = row[j + 1] .. ' ' .. row[j] end
  out[k] = table.concat(parts, '\\30')
end
return out
""")

# KEYS: the partitions' timer sets. Per key the earliest due time, or '' when none.
_EARLIEST = Lua("""
local out = {}
for k = 1, #KEYS do
  local first = redis.call('ZRANGE', KEYS[k], 0, 0, 'WITHSCORES')
  out[k] = first[2] or ''
end
return out
""")


class Progress:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.token = uuid.uuid4().hex

    async def claim(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """Become the owner of ``partitions`` and read where each resumes (absent: never processed)."""
        fields = [field_of(tp) for tp in sorted(partitions)]
        if not fields:
            return {}
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(STREAM_OWNERS.key(), mapping={f: self.token for f in fields})
        pipe.hmget(STREAM_OFFSETS.key(), fields)
        _, offsets = await pipe.execute()
        return {partition_of_field(f): int(o) for f, o in zip(fields, offsets) if o is not None}

    async def offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """Where each of ``partitions`` resumes (absent: never processed), without claiming them."""
        fields = [field_of(tp) for tp in sorted(partitions)]
        if not fields:
            return {}
        offsets = await self.redis.hmget(STREAM_OFFSETS.key(), fields)
        return {partition_of_field(f): int(o) for f, o in zip(fields, offsets) if o is not None}

    owners_key = STREAM_OWNERS.key()

    async def owns(self, pipe: Pipeline, partitions: Iterable[TopicPartition]) -> bool:
        """Inside a watching pipeline: whether this worker still owns every one of ``partitions``."""
        fields = [field_of(tp) for tp in partitions]
        if not fields:
            return True
        tokens = cast(list[bytes | None], await pipe.hmget(STREAM_OWNERS.key(), fields))
        return all(t is not None and t.decode() == self.token for t in tokens)

    async def watermarks(self) -> dict[TopicPartition, float]:
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(STREAM_WATERMARKS.key()))
        return {partition_of_field(f.decode()): float(v) for f, v in raw.items()}

    async def newest(self) -> float:
        """The newest event time any partition has processed."""
        raw = await self.redis.hvals(STREAM_NEWEST.key())
        return max((float(v) for v in raw), default=-math.inf)

    def queue_positions(
        self,
        pipe: Pipeline,
        offsets: Mapping[TopicPartition, int],
        watermarks: Mapping[TopicPartition, float],
        newest: Mapping[TopicPartition, float],
    ) -> None:
        if offsets:
            pipe.hset(STREAM_OFFSETS.key(), mapping={field_of(tp): o for tp, o in offsets.items()})
        if watermarks:
            pipe.hset(STREAM_WATERMARKS.key(), mapping={field_of(tp): repr(w) for tp, w in watermarks.items()})
        if newest:
            pipe.hset(STREAM_NEWEST.key(), mapping={field_of(tp): repr(n) for tp, n in newest.items()})
        pipe.publish(STREAM_WAKE.key(), "1")

    async def publish(self, partitions: Iterable[TopicPartition], watermark: float) -> None:
        """Say that nothing older than ``watermark`` is left to process in ``partitions`` (a worker held back
        by the others says so before its first batch, so that they can go on)."""
        fields = [field_of(tp) for tp in partitions]
        if fields:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(STREAM_WATERMARKS.key(), mapping={f: repr(watermark) for f in fields})
            pipe.publish(STREAM_WAKE.key(), "1")
            await pipe.execute()

    async def due(self, partitions: Sequence[TopicPartition], bound: float) -> list[Timer]:
        """The timers of ``partitions`` due before ``bound``."""
        if not partitions:
            return []
        rows = await _DUE(self.redis, [TIMERS.key(field_of(tp)) for tp in partitions], [repr(bound)])
        timers = []
        for (topic, _), row in zip(partitions, rows):
            for pair in row.decode().split("\x1e") if row else ():
                score, member = pair.split(" ", 1)
                timers.append(decode_timer(topic, member, float(score)))
        return timers

    async def earliest_timer(self, partitions: Sequence[TopicPartition]) -> float:
        if not partitions:
            return math.inf
        rows = await _EARLIEST(self.redis, [TIMERS.key(field_of(tp)) for tp in partitions], [])
        return min((float(r) for r in rows if r), default=math.inf)

    def queue_timers(
        self,
        pipe: Pipeline,
        added: Iterable[tuple[TopicPartition, Timer]],
        done: Iterable[tuple[TopicPartition, Timer]],
    ) -> None:
        adds: dict[str, dict[str, float]] = {}
        for tp, timer in added:
            adds.setdefault(TIMERS.key(field_of(tp)), {})[encode_timer(timer)] = timer.at
        for key, mapping in adds.items():
            pipe.zadd(key, mapping)
        removes: dict[str, list[str]] = {}
        for tp, timer in done:
            removes.setdefault(TIMERS.key(field_of(tp)), []).append(encode_timer(timer))
        for key, members in removes.items():
            pipe.zrem(key, *members)
