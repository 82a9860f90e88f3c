"""The outbox: records queued with a Redis transaction reach their topic through the worker's relay."""

import asyncio
from collections.abc import Callable

from redis.asyncio import Redis

from antifraud.outbox import STREAM, OutboxRelay, queue
from antifraud.stack.embedded import Endpoints
from antifraud.stack.worker import WorkerProcess
from streams import topics
from tests.conftest import wait_for
from tests.kafka_helpers import read_all


async def _queue(redis_url: str, n: int) -> None:
    redis = Redis.from_url(redis_url)
    async with redis.pipeline(transaction=True) as pipe:
        for i in range(n):
            pipe.set(f"state:{i}", "frozen")
            queue(pipe, topics.HOLDS, f"k{i}", f'{{"event_id": "e{i}"}}')
        await pipe.execute()
    await redis.aclose()


def test_relay_keeps_records_until_the_broker_acks(redis_url: str) -> None:
    """A round whose send fails leaves every record queued; the next round sends them all, in order."""
    sent: list[tuple[str, bytes | None, bytes]] = []
    failures = iter([True])

    async def send(topic: str, key: bytes | None, value: bytes) -> None:
        if next(failures, False):
            raise ConnectionError("broker down")
        sent.append((topic, key, value))

    async def go() -> None:
        await _queue(redis_url, 3)
        redis = Redis.from_url(redis_url)
        relay = OutboxRelay(redis, send)
        try:
            await relay.run_once()
        except ConnectionError:
            pass
        assert await relay.pending() == 3, "nothing is dropped from the outbox before every ack"
        sent.clear()  # records the failed round did get out are sent again: at least once
        assert await relay.run_once() == 3
        assert await relay.pending() == 0 and await relay.run_once() == 0
        other = OutboxRelay(redis, send)  # a second replica waits for the lock
        await _queue(redis_url, 1)
        assert await other.run_once() == 0 and await redis.xlen(STREAM) == 1
        await redis.aclose()

    asyncio.run(go())
    assert [(t, k) for t, k, _ in sent] == [(topics.HOLDS, b"k0"), (topics.HOLDS, b"k1"), (topics.HOLDS, b"k2")]
    assert sent[1][2] == b'{"event_id": "e1"}'


def test_worker_relays_queued_records_to_the_topic(
    stack: Endpoints, start_worker: Callable[..., WorkerProcess]
) -> None:
    asyncio.run(_queue(stack.redis_url, 5))
    start_worker()

    def relayed() -> bool:
        return len(read_all(stack.kafka_bootstrap, topics.HOLDS, settle=0.5)) >= 5

    wait_for(relayed, timeout=90, what="5 outbox records on the holds topic")
    records = read_all(stack.kafka_bootstrap, topics.HOLDS)
    assert sorted(r.key for r in records) == [f"k{i}".encode() for i in range(5)]
    assert asyncio.run(_pending(stack.redis_url)) == 0


async def _pending(redis_url: str) -> int:
    redis = Redis.from_url(redis_url)
    try:
        return int(await redis.xlen(STREAM))
    finally:
        await redis.aclose()
