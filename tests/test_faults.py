"""The fault suite: a simulated city with more than 50,000 hostile records among its events, through the
worker on the real embedded broker and redis-server while the worker or Redis is killed. Every hostile
record reaches the dead-letter topic with its reason, its position and its bytes (or, over the size limit,
its first bytes, size and SHA-256); no valid record is lost beside them; and the alerts, holds and cases
are exactly those of ``antifraud detect`` on the city alone (``tests/test_determinism.py``).

Hostile records: over 1 MiB, invalid JSON, binary, empty and null values, wrong kinds, NaN, infinite and
negative amounts, times far ahead and far back, control characters, events on a partition their entity
does not map to; and valid records repeated (duplicate event ids), which must change nothing.
"""

import hashlib
import os
import random
import re
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from antifraud.events.models import EVENT_MODELS
from antifraud.stack.embedded import EmbeddedStack, Endpoints
from antifraud.stack.worker import WorkerProcess
from streams import topics
from streams.checkpoint import DLQ_OFFSET, DLQ_PARTITION, DLQ_REASON, DLQ_SHA256, DLQ_SIZE, DLQ_TOPIC
from streams.eventfile import read_lines
from streams.progress import Partitioning
from tests.conftest import PARTITIONS, wait_for
from tests.kafka_helpers import read_all
from tests.outcomes import (  # noqa: F401 - world and reference are fixtures
    Outcome,
    assert_same,
    done_at,
    processed,
    reference,
    settled,
    world,
)
from tests.redis_helpers import AofRedis, aof_redis  # noqa: F401 - the fixture

pytestmark = [pytest.mark.integration, pytest.mark.faults]

HOSTILE_PER_EVENT = 4
"""Hostile records produced after each valid one (on its topic and partition): over 50,000 in all."""
HUGE_EVERY = 4000
"""One record over 1 MiB every this many valid ones."""
MAX_RECORD_BYTES = 256 * 1024
"""The worker's record size limit (ANTIFRAUD_MAX_RECORD_BYTES, default)."""


@dataclass(frozen=True)
class Hostile:
    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    reason: str


def _hostile(
    doc: dict[str, object], raw: bytes, topic: str, partition: int, key: bytes, n: int, other: dict[str, str]
) -> list[Hostile]:
    """Hostile records made from one valid event (``doc``, as JSON ``raw``), cycling through the kinds."""

    def changed(**fields: object) -> bytes:
        return orjson.dumps({**doc, **fields})

    def dated(at: str) -> bytes:  # a report's fraud time goes with it (it may not follow the report)
        return changed(event_time=at, **({"fraud_time": at} if "fraud_time" in doc else {}))

    def amount(value: bytes) -> bytes:
        return re.sub(rb'"amount_fen":\s*[0-9]+', b'"amount_fen":' + value, raw, count=1)

    made = [
        (key, raw[: len(raw) // 2], "malformed_json"),
        (None, os.urandom(40) + b"\xff", "malformed_json"),
        (None, b"", "empty"),
        (key, None, "empty"),  # a tombstone
        (key, changed(kind=other[str(doc["kind"])]), "schema_violation"),
        (key, changed(event_id="cdr\x00\x1f7"), "schema_violation"),
        (key, dated("9999-12-31T23:59:59Z"), "event_time_out_of_range"),
        (key, dated("1999-12-31T23:59:59Z"), "event_time_out_of_range"),
        (key, changed(event_id=None), "schema_violation"),
        (key, changed(schema_version=2), "schema_violation"),
    ]
    if doc["kind"] == "bank_transfer":
        made += [
            (key, amount(b"-100"), "schema_violation"),
            (key, amount(b"NaN"), "schema_violation"),
            (key, amount(b"Infinity"), "schema_violation"),
            (key, amount(b"1.5"), "schema_violation"),
        ]
    out = []
    for k in range(HOSTILE_PER_EVENT):
        hostile_key, value, reason = made[(n * HOSTILE_PER_EVENT + k) % len(made)]
        out.append(Hostile(topic, partition, hostile_key, value, reason))
    if n % 97 == 0:  # the same event, on the partition its entity does not map to
        out.append(Hostile(topic, 1 - partition, key, raw, "wrong_partition"))
    if n % HUGE_EVERY == 0:
        out.append(Hostile(topic, partition, key, b'{"kind":"' + b"x" * (1 << 20) + b'"}', "oversized"))
    return out


@dataclass
class Produced:
    valid: int
    """Valid records, repeats included."""
    hostile: dict[tuple[str, int, int], Hostile]
    """Where each hostile record is: (topic, partition, offset)."""


def produce_hostile_city(endpoints: Endpoints, city: Path) -> Produced:
    """The city's events in order, each followed by hostile records on its topic and partition, every tenth
    valid one sent twice."""
    partitioning = Partitioning({topic: PARTITIONS for topic in topics.INPUT_TOPICS.values()})
    kinds = list(topics.INPUT_TOPICS)
    other = {kind: kinds[(i + 1) % len(kinds)] for i, kind in enumerate(kinds)}
    producer = KafkaProducer(
        bootstrap_servers=endpoints.kafka_bootstrap,
        acks="all",
        linger_ms=20,
        max_request_size=4 << 20,
        batch_size=256 * 1024,
    )
    sent: list[tuple[Hostile, object]] = []
    valid = 0
    for n, (_, raw) in enumerate(read_lines(city)):
        doc = orjson.loads(raw)
        topic = topics.INPUT_TOPICS[doc["kind"]]
        key = str(doc[EVENT_MODELS[doc["kind"]].key_field]).encode()
        _, partition = partitioning.of(topic, key.decode())
        for _ in range(2 if n % 10 == 0 else 1):
            producer.send(topic, key=key, value=raw, partition=partition)
            valid += 1
        for hostile in _hostile(doc, raw, topic, partition, key, n, other):
            sent.append(
                (
                    hostile,
                    producer.send(hostile.topic, key=hostile.key, value=hostile.value, partition=hostile.partition),
                )
            )
    producer.flush()
    hostile = {}
    for record, future in sent:
        meta = future.get(timeout=60)  # type: ignore[attr-defined]
        hostile[(meta.topic, meta.partition, meta.offset)] = record
    producer.close()
    assert len(hostile) >= 50_000
    return Produced(valid, hostile)


@pytest.fixture
def stack(tmp_path: Path, aof_redis: AofRedis, monkeypatch: pytest.MonkeyPatch) -> Iterator[Endpoints]:
    """The embedded broker with this test's Redis, which a test can kill and start again (``start_worker``
    uses this stack)."""
    monkeypatch.setenv("REDIS_URL", aof_redis.url)
    with EmbeddedStack(workdir=tmp_path) as endpoints:
        topics.ensure_topics(endpoints.kafka_bootstrap, PARTITIONS)
        yield endpoints


def _kill(worker: WorkerProcess) -> None:
    assert worker.proc is not None
    os.killpg(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait()


def _dead_letters_are_the_hostile_records(endpoints: Endpoints, produced: Produced) -> None:
    dead = read_all(endpoints.kafka_bootstrap, topics.DEAD_LETTERS, settle=3, timeout=120)
    found: dict[tuple[str, int, int], tuple[bytes | None, dict[str, bytes]]] = {}
    for record in dead:
        headers = dict(record.headers)
        at = (headers[DLQ_TOPIC].decode(), int(headers[DLQ_PARTITION]), int(headers[DLQ_OFFSET]))
        found[at] = (record.value, headers)  # a repeat (a batch run again after a kill) says the same
    assert found.keys() == produced.hostile.keys(), (
        f"{len(produced.hostile.keys() - found.keys())} hostile records missing, "
        f"{len(found.keys() - produced.hostile.keys())} valid ones dead-lettered"
    )
    reasons: Counter[str] = Counter()
    for at, hostile in produced.hostile.items():
        value, headers = found[at]
        reason = headers[DLQ_REASON].decode()
        reasons[reason] += 1
        assert reason == hostile.reason, f"{at}: {reason} for a record made to be {hostile.reason}"
        if hostile.reason == "oversized":
            assert hostile.value is not None
            assert int(headers[DLQ_SIZE]) == len(hostile.value)
            assert headers[DLQ_SHA256].decode() == hashlib.sha256(hostile.value).hexdigest()
            assert value is not None and hostile.value.startswith(value) and len(value) < MAX_RECORD_BYTES
        else:
            assert (value or b"") == (hostile.value or b""), f"{at}: the dead letter carries the record's bytes"
    assert set(reasons) == {
        "malformed_json",
        "empty",
        "schema_violation",
        "event_time_out_of_range",
        "wrong_partition",
        "oversized",
    }


Start = Callable[..., WorkerProcess]


def _run(stack: Endpoints, city: Path, reference: Outcome, disturb: Callable[[int], None]) -> None:
    """The hostile city produced, ``disturb(records)`` while the worker reads it, then the checks."""
    produced = produce_hostile_city(stack, city)
    records = produced.valid + len(produced.hostile)
    disturb(records)
    assert_same(settled(stack, records, done_at(city), reference), reference)
    _dead_letters_are_the_hostile_records(stack, produced)


def test_hostile_records_among_a_city_with_the_worker_killed_twice(
    stack: Endpoints, start_worker: Start, world: Path, reference: Outcome
) -> None:
    rng = random.Random(5)

    def kill_twice(records: int) -> None:
        worker = start_worker()
        for share in (3, 6):
            done = records * share // 10
            wait_for(lambda done=done: processed(stack) >= done, timeout=300, what="progress")  # type: ignore[misc]
            time.sleep(rng.uniform(0.0, 0.3))
            _kill(worker)
            worker.start()

    _run(stack, world, reference, kill_twice)


def test_hostile_records_among_a_city_with_redis_killed_and_restarted(
    stack: Endpoints, aof_redis: AofRedis, start_worker: Start, world: Path, reference: Outcome
) -> None:
    def crash_redis(records: int) -> None:
        start_worker()
        wait_for(lambda: processed(stack) >= records // 2, timeout=300, what="half the records processed")
        aof_redis.crash()
        time.sleep(3)  # the worker waits, retrying its batch
        aof_redis.start()

    _run(stack, world, reference, crash_redis)
