"""The checkpoint: the one place that orders a batch's side effects.

For a batch the pipeline has run (``streams/pipeline.py``), in this order:

1. Produce the alerts (stamped with ``raised_at``), the stages' other records and the dead letters,
   and wait until the broker has acknowledged every one.
2. In one Redis transaction, refused if another worker has meanwhile become the owner of one of
   this worker's partitions: every store's writes (one script call each), the timers set and the
   timers run, the audit records of automatic moves, and per partition its next offset, its
   watermark (the batch's bound) and its newest event time.
3. Commit the offsets to Kafka, for lag and for tools (Redis holds the offsets that count).
4. The stores take the batch's state as theirs.

A crash, or an outage that outlasts the retries, before 2 leaves Redis as it was: the batch is run
again on the same state and yields the same alerts and records with the same ids (consumers drop
repeats by id). After 2 nothing is run again. While Redis or the broker is down, steps 1 and 2 wait
and retry (:func:`until_through`); nothing is dead-lettered for an outage. (The hold stage raises the
hold ledger's clock before the batch runs, ``streams/stages.py``, so a person's move of a hold whose
release may be on its way is refused.)
"""

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Protocol, TypeVar

from redis.asyncio import Redis
from redis.exceptions import WatchError

from antifraud import metrics
from antifraud.alerts.models import Alert
from antifraud.audit.service import queue_inbox
from antifraud.clock import utcnow
from antifraud.privacy import mask_entity
from antifraud.state.store import Store
from streams.merge import TopicPartition
from streams.pipeline import BatchResult, is_outage
from streams.progress import Partitioning, Progress
from streams.records import OutRecord, Rejected
from streams.topics import ALERTS, DEAD_LETTERS

log = logging.getLogger(__name__)

T = TypeVar("T")

DLQ_REASON = "dlq.reason"
DLQ_DETAIL = "dlq.detail"
DLQ_TOPIC = "dlq.topic"
DLQ_PARTITION = "dlq.partition"
DLQ_OFFSET = "dlq.offset"
DLQ_SIZE = "dlq.size"
DLQ_SHA256 = "dlq.sha256"

Headers = list[tuple[str, bytes]]


class Sink(Protocol):
    """Where a batch's records go: the broker (``streams/loop.py``) or a file (``streams/offline.py``)."""

    async def produce(self, records: Sequence[tuple[OutRecord, Headers]]) -> None:
        """Send every record; return once each is acknowledged."""


class Fenced(RuntimeError):
    """Another worker owns one of this worker's partitions now: the batch is dropped, its new owner runs it."""


class CheckpointBroken(RuntimeError):
    """A write inside the checkpoint's transaction failed after it was applied in part: a bug. The
    worker stops rather than go on from state it cannot trust."""


RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0


async def until_through(run: Callable[[], Awaitable[T]], what: str) -> T:
    """``run()``, again and again while Redis or the broker is down (pauses doubling up to
    :data:`RETRY_MAX_SECONDS`); other errors raise. Waiting here keeps the partitions in order; a crash
    meanwhile runs the batch again."""
    delay = RETRY_FIRST_SECONDS
    while True:
        try:
            return await run()
        except Exception as error:
            if not is_outage(error):
                raise
            metrics.BATCH_RETRIES.labels(topic=what).inc()
            log.warning("%s failed (%s: %s); trying again in %.1f s", what, type(error).__name__, error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)


def dead_letter(rejected: Rejected, max_bytes: int) -> tuple[OutRecord, Headers]:
    """The dead letter of a record: its key and original bytes (or, over ``max_bytes``, their first
    ``max_bytes`` with the whole value's size and SHA-256), with why and where from."""
    record, error = rejected.record, rejected.error
    value = record.value or b""
    headers: Headers = [
        (DLQ_REASON, error.kind.encode()),
        (DLQ_DETAIL, error.detail.encode()),
        (DLQ_TOPIC, record.topic.encode()),
        (DLQ_PARTITION, str(record.partition).encode()),
        (DLQ_OFFSET, str(record.offset).encode()),
    ]
    if len(value) > max_bytes:
        headers += [(DLQ_SIZE, str(len(value)).encode()), (DLQ_SHA256, hashlib.sha256(value).hexdigest().encode())]
        value = value[:max_bytes]
    return OutRecord(DEAD_LETTERS, record.key or b"", value), headers


def _log_alerts(alerts: Sequence[Alert]) -> None:
    for alert in alerts:
        metrics.ALERTS.labels(detector=alert.detector, severity=alert.severity).inc()
        raised = alert.raised_at.timestamp() if alert.raised_at is not None else time.time()
        metrics.EVENT_TO_ALERT_SECONDS.labels(detector=alert.detector).observe(
            max(0.0, raised - alert.window_end.timestamp())
        )
        log.info(
            "alert %s %s %s %s score=%.2f",
            alert.alert_id[:12],
            alert.detector,
            alert.severity,
            mask_entity(alert.entity.kind, alert.entity.value),
            alert.score,
        )


class Checkpoint:
    def __init__(
        self,
        redis: Redis,
        progress: Progress,
        stores: Sequence[Store],
        sink: Sink,
        partitioning: Partitioning,
        *,
        dead_letter_max_bytes: int,
        commit_offsets: Callable[[dict[TopicPartition, int]], Awaitable[None]] | None = None,
    ) -> None:
        self.redis = redis
        self.progress = progress
        self.stores = list(stores)
        self.sink = sink
        self.partitioning = partitioning
        self.dead_letter_max_bytes = dead_letter_max_bytes
        self.commit_offsets = commit_offsets

    async def commit(self, result: BatchResult, owned: Collection[TopicPartition]) -> None:
        """Steps 1 to 4 of the module docstring; raises :class:`Fenced` when a partition moved."""
        raised = utcnow()
        alerts = [alert.model_copy(update={"raised_at": raised}) for alert in result.outcome.alerts]
        records: list[tuple[OutRecord, Headers]] = [
            (OutRecord.of(ALERTS, a.entity.value, a.model_dump_json()), []) for a in alerts
        ]
        records += [(r, []) for r in result.outcome.records]
        records += [dead_letter(r, self.dead_letter_max_bytes) for r in result.dead_letters]
        for rejected in result.dead_letters:
            log.warning(
                "dead-lettered %s[%d]@%d: %s",
                rejected.record.topic,
                rejected.record.partition,
                rejected.record.offset,
                rejected.error,
            )
        if records:
            await until_through(lambda: self.sink.produce(records), "produce")
        for rejected in result.dead_letters:
            metrics.DEAD_LETTERS.labels(topic=rejected.record.topic, reason=rejected.error.kind).inc()
        _log_alerts(alerts)
        try:
            await until_through(lambda: self._write(result, owned), "state write")
        except Fenced:
            for store in self.stores:
                store.discard()
            raise
        if self.commit_offsets is not None and result.offsets:
            try:
                await self.commit_offsets(result.offsets)
            except Exception as error:  # noqa: BLE001 - Redis holds the offsets that count; the next commit catches up
                log.warning("committing offsets to Kafka failed (%s); Redis has them", type(error).__name__)
        for store in self.stores:
            store.committed()
        for topic, count in result.consumed.items():
            metrics.EVENTS_CONSUMED.labels(topic=topic).inc(count)
        for topic, count in result.late.items():
            metrics.LATE_RECORDS.labels(topic=topic).inc(count)

    async def _write(self, result: BatchResult, owned: Collection[TopicPartition]) -> None:
        added = [(self.partitioning.of(t.topic, t.key), t) for t in result.timers_out]
        done = [(self.partitioning.of(t.topic, t.key), t) for t in result.timers_done]
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(self.progress.owners_key)
                    if not await self.progress.owns(pipe, owned):
                        raise Fenced("another worker owns one of this worker's partitions now")
                    pipe.multi()
                    for store in self.stores:
                        store.queue(pipe)
                    self.progress.queue_timers(pipe, added, done)
                    queue_inbox(pipe, result.outcome.audit)
                    self.progress.queue_positions(
                        pipe, result.offsets, {tp: result.bound for tp in owned}, result.newest
                    )
                    replies = await pipe.execute(raise_on_error=False)
                    failed = [r for r in replies if isinstance(r, Exception)]
                    if failed:  # a script failing inside the transaction: the code's fault, and the rest applied
                        raise CheckpointBroken(
                            f"{len(failed)} write(s) of the checkpoint failed: {type(failed[0]).__name__}"
                        )
                    return
                except WatchError:
                    continue
