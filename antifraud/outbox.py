"""The transactional outbox: topic records queued in Redis with the state change that caused them.

A human action (freeze a hold, confirm a case, list a party) changes Redis state
and must also go on a topic. Producing to Kafka inside the action would either
publish a change that then failed, or lose the record if the process died after
the write. Instead the action queues the record in the same MULTI
(:func:`queue`), and :class:`OutboxRelay` (run by the worker) publishes it.

Relay order, per round:
1. Take the relay lock (one relay at a time across worker replicas).
2. Read the oldest queued records from the ``outbox`` stream.
3. Produce them in stream order (one producer, so per-partition order holds) and
   await every broker ack.
4. Delete them from the stream.
A crash between 3 and 4 publishes them again: at least once. Records carry
stable ids in their payload, so consumers drop the repeats.
"""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from antifraud.state import keys as families

STREAM = families.OUTBOX.key()
LOCK = families.OUTBOX_LOCK.key()

Send = Callable[[str, bytes | None, bytes], Awaitable[None]]
"""Produce one record (topic, key, value) and return once the broker acknowledged it."""


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def queue(pipe: Pipeline, topic: str, key: bytes | str | None, value: bytes | str) -> None:
    """Queue a record for ``topic`` inside the caller's transaction."""
    pipe.xadd(STREAM, {"topic": topic, "key": _bytes(key) if key is not None else b"", "value": _bytes(value)})


# Take the lock if free, or extend it if this relay holds it: 1 if held now, else 0.
_LOCK = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
"""


class OutboxRelay:
    def __init__(self, redis: Redis, send: Send, *, batch: int = 500, lock_ms: int = 10_000) -> None:
        self.redis = redis
        self.send = send
        self.batch = batch
        self.lock_ms = lock_ms
        self.token = uuid.uuid4().hex
        self._lock = redis.register_script(_LOCK)

    async def run_once(self) -> int:
        """Publish what is queued (up to one batch); return how many records went out."""
        if not await self._lock(keys=[LOCK], args=[self.token, self.lock_ms]):
            return 0
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await self.redis.xrange(STREAM, count=self.batch))
        if not entries:
            return 0
        # Sent concurrently, so a batch costs one broker round trip; the producer keeps them in order.
        await asyncio.gather(
            *(self.send(fields[b"topic"].decode(), fields[b"key"] or None, fields[b"value"]) for _, fields in entries)
        )
        await self.redis.xdel(STREAM, *(entry_id for entry_id, _ in entries))
        return len(entries)

    async def pending(self) -> int:
        return int(await self.redis.xlen(STREAM))
