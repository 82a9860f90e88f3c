"""One batch of records from an input topic, from bytes to acknowledged alerts.

The order of side effects is what makes a crash at any point safe to replay:

1. Decode every record; one that fails is queued for the dead-letter topic
   with the reason and its original key, bytes and position.
2. Run the topic's detector stages over the valid events with their prior state.
3. Produce the alerts, the stages' other records (interception decisions, hold events,
   victim warnings) and the dead letters, and wait until the broker has
   acknowledged every one.
4. Flush the stages' state changes to Redis, stage by stage.
5. Return; Faust then acks the batch and commits its offsets.

A crash before step 4 replays the batch on the same prior state and yields
the same alerts and records with the same ids (consumers drop duplicates by id).
A crash after step 4 replays it on the new state, whose quiet periods stop the
alerts from being raised again; state writes are upserts, harmless twice.

A batch that fails in steps 2-4 because Redis or the broker does (:func:`is_outage`)
is tried again, whole, after a growing pause, until they are back (:func:`until_through`):
nothing is dead-lettered for an outage, and no later batch of the partition goes first. Any other
error is the data's or the code's and would fail the batch on every retry, stopping
the partition. So the batch is split in halves, each run through steps 2-4 in order,
until the record that fails on its own is found; it goes to the dead-letter topic as
``processing_failed`` (the error's type and where it was raised, never its message,
which may quote personal data) and the partition goes on. Running a half again after
a failure is safe for the reasons a replay is. When more than :data:`SYSTEMIC_AFTER`
records in a row fail alone, the fault is taken to be the code's or the deployment's:
the partition stops and is retried like an outage (which alerts) rather than
dead-lettering the whole stream.
"""

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from faust.exceptions import ProducerSendError
from redis import exceptions as redis_errors

from antifraud import metrics
from antifraud.alerts.models import Alert
from antifraud.events.codec import InvalidEvent, decode
from antifraud.events.models import Event
from antifraud.privacy import mask_entity

log = logging.getLogger(__name__)

DLQ_REASON = "dlq.reason"
DLQ_DETAIL = "dlq.detail"
DLQ_TOPIC = "dlq.topic"
DLQ_PARTITION = "dlq.partition"
DLQ_OFFSET = "dlq.offset"

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


async def _nothing_to_flush() -> None:
    return None


@dataclass
class Outcome:
    """What a detector stage concluded for a batch, and how to store its new state."""

    alerts: list[Alert] = field(default_factory=list)
    flush_state: Callable[[], Awaitable[None]] = _nothing_to_flush
    extra: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    """Other records to produce before state is flushed: (topic, key, value)."""


class Stage(Protocol):
    """A detector with its state store: events in, an :class:`Outcome` out."""

    async def __call__(self, events: Sequence[Any]) -> Outcome: ...


class Sink(Protocol):
    """Where records go: a Faust topic (its ``send`` returns a delivery future)."""

    async def send(self, *, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | None = None) -> Any: ...


@dataclass(frozen=True)
class Record:
    """An input record as read: its position, key and original bytes."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def dead_letter_headers(record: Record, error: InvalidEvent) -> list[tuple[str, bytes]]:
    return [
        (DLQ_REASON, error.kind.encode()),
        (DLQ_DETAIL, error.detail.encode()),
        (DLQ_TOPIC, record.topic.encode()),
        (DLQ_PARTITION, str(record.partition).encode()),
        (DLQ_OFFSET, str(record.offset).encode()),
    ]


Rejected = tuple[Record, InvalidEvent]
"""A record that did not decode (or that a stage fails on), and why."""

_REDIS_DOWN = (
    redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.ReadOnlyError, redis_errors.MasterDownError,
    redis_errors.TryAgainError, redis_errors.OutOfMemoryError, redis_errors.ClusterDownError,
)
"""Redis away, failing over, loading or full; any other Redis error (WRONGTYPE, a script failing on
odd data, a value redis-py refuses) is the data's or the code's."""


class SystemicFailure(RuntimeError):
    """So many records in a row failed alone that the fault is the code's or the deployment's, not theirs."""


SYSTEMIC_AFTER = 20
"""Records of one topic failing alone in a row, none going through, before the partition stops
(retried like an outage, so it alerts) instead of dead-lettering the whole stream."""

_failing_in_a_row: dict[str, int] = {}
"""Topic -> records that failed alone since one last went through (this process). Past
:data:`SYSTEMIC_AFTER` the topic stays stopped until the worker restarts (with a fix): a retry must
not dead-letter the same records again."""


def is_outage(error: BaseException) -> bool:
    """Redis, the broker or the network failing (the batch waits and is tried again), or a
    :class:`SystemicFailure`; anything else is the batch's data or the code (isolated, dead-lettered)."""
    if isinstance(error, ProducerSendError) and error.__cause__ is not None:
        error = error.__cause__  # Faust wraps the broker's error
    if isinstance(error, KafkaError):
        return not isinstance(error, MessageSizeTooLargeError)
    return isinstance(error, (*_REDIS_DOWN, OSError, SystemicFailure))


RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0


async def until_through(run: Callable[[], Awaitable[T]], topic: str) -> T:
    """``run()``, again and again while Redis or the broker is down (pauses doubling up to
    :data:`RETRY_MAX_SECONDS`); other errors raise.

    The agent must not raise for an outage: Faust would restart it on the records *after* the
    failed batch, which would then wait, unprocessed and uncommitted, until the worker restarts.
    Waiting here keeps the partition in order; a crash meanwhile replays the batch.
    """
    delay = RETRY_FIRST_SECONDS
    while True:
        try:
            return await run()
        except Exception as error:
            if not is_outage(error):
                raise
            metrics.BATCH_RETRIES.labels(topic=topic).inc()
            log.warning("a batch of %s failed (%s: %s); trying again in %.1f s", topic, type(error).__name__, error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)


def _decode_each(model: type[M], records: Sequence[Record]) -> tuple[list[tuple[Record, M]], list[Rejected]]:
    decoded: list[tuple[Record, M]] = []
    rejected: list[Rejected] = []
    for record in records:
        try:
            decoded.append((record, decode(model, record.value)))
        except InvalidEvent as error:
            rejected.append((record, error))
    return decoded, rejected


def decode_records(model: type[M], records: Sequence[Record]) -> tuple[list[M], list[Rejected]]:
    """Step 1: the records that are valid ``model``s, and the others with why (for the dead-letter topic)."""
    decoded, rejected = _decode_each(model, records)
    return [item for _, item in decoded], rejected


async def send_dead_letters(rejected: Sequence[Rejected], sink: Sink) -> list[Any]:
    """Queue (log, count) the rejected records' dead letters; the returned deliveries resolve on the broker's acks."""
    deliveries: list[Any] = []
    for record, error in rejected:
        log.warning("dead-lettered %s[%d]@%d: %s", record.topic, record.partition, record.offset, error)
        metrics.DEAD_LETTERS.labels(topic=record.topic, reason=error.kind).inc()
        deliveries.append(
            await sink.send(key=record.key, value=record.value or b"", headers=dead_letter_headers(record, error))
        )
    return deliveries


async def run_stages(stages: Sequence[Stage], events: Sequence[Event]) -> Outcome:
    """Run every stage over the batch; the combined outcome flushes their states in order."""
    outcomes = [await stage(events) for stage in stages]

    async def flush_all() -> None:
        for outcome in outcomes:
            await outcome.flush_state()

    return Outcome(
        alerts=[alert for o in outcomes for alert in o.alerts],
        flush_state=flush_all,
        extra=[record for o in outcomes for record in o.extra],
    )


async def send_outcome(outcome: Outcome, *, alerts_sink: Sink, extra_sinks: Mapping[str, Sink] | None) -> list[Any]:
    """Queue an outcome's alerts and other records; the returned deliveries resolve on the broker's acks."""
    deliveries: list[Any] = []
    for alert in outcome.alerts:
        deliveries.append(await alerts_sink.send(key=alert.entity.value.encode(), value=alert.model_dump_json().encode()))
    for topic_name, key, value in outcome.extra:
        deliveries.append(await (extra_sinks or {})[topic_name].send(key=key, value=value))
    return deliveries


def _count_acknowledged(alerts: Sequence[Alert]) -> None:
    acknowledged = time.time()
    for alert in alerts:
        metrics.ALERTS.labels(detector=alert.detector, severity=alert.severity).inc()
        metrics.EVENT_TO_ALERT_SECONDS.labels(detector=alert.detector).observe(
            max(0.0, acknowledged - alert.window_end.timestamp())
        )
        log.info(
            "alert %s %s %s %s score=%.2f",
            alert.alert_id[:12], alert.detector, alert.severity,
            mask_entity(alert.entity.kind, alert.entity.value), alert.score,
        )


async def settle(outcome: Outcome, *, alerts_sink: Sink, extra_sinks: Mapping[str, Sink]) -> None:
    """Steps 3 and 4 for an outcome that no input batch carries (a timer's): produce, await acks, flush."""
    await acked(send_outcome(outcome, alerts_sink=alerts_sink, extra_sinks=extra_sinks))
    _count_acknowledged(outcome.alerts)
    await outcome.flush_state()


async def process_batch(
    records: Sequence[Record],
    model: type[Event],
    stages: Sequence[Stage],
    *,
    alerts_sink: Sink,
    dead_letter_sink: Sink,
    extra_sinks: Mapping[str, Sink] | None = None,
) -> Outcome:
    """Run steps 1-4 of the module docstring for one batch of one topic."""
    started = time.perf_counter()
    topic = records[0].topic if records else "?"
    metrics.EVENTS_CONSUMED.labels(topic=topic).inc(len(records))

    decoded, rejected = _decode_each(model, records)
    if rejected:
        await until_through(lambda: acked(send_dead_letters(rejected, dead_letter_sink)), topic)
    outcome = await until_through(lambda: _run_isolating(decoded, stages, alerts_sink, dead_letter_sink, extra_sinks),
                                  topic)
    metrics.BATCH_SECONDS.labels(topic=topic).observe(time.perf_counter() - started)
    return outcome


async def _run_isolating(decoded: Sequence[tuple[Record, Event]], stages: Sequence[Stage], alerts_sink: Sink,
                         dead_letter_sink: Sink, extra_sinks: Mapping[str, Sink] | None) -> Outcome:
    """Steps 2-4 for the decoded events; on an error that is not an outage (:func:`is_outage`), halves in
    order until the record that fails alone is dead-lettered (module docstring). The outcome returned is
    flushed. The alerts of a half that failed in its flush may have gone out already: consumers drop
    the repeats by id, as after a crash."""
    if not decoded:
        return Outcome()
    topic = decoded[0][0].topic
    if _failing_in_a_row.get(topic, 0) > SYSTEMIC_AFTER:
        raise SystemicFailure(f"more than {SYSTEMIC_AFTER} records of {topic} in a row failed alone: the fault "
                              "looks like the code's; the topic waits for a worker restarted with a fix")
    try:
        outcome = await run_stages(stages, [event for _, event in decoded])
        await settle(outcome, alerts_sink=alerts_sink, extra_sinks=extra_sinks)
        _failing_in_a_row[topic] = 0
        return Outcome(alerts=outcome.alerts, extra=outcome.extra)
    except Exception as error:  # noqa: BLE001 - the data's or the code's: isolated below, never retried forever
        if is_outage(error):
            raise
        if len(decoded) == 1:
            _failing_in_a_row[topic] = failing = _failing_in_a_row.get(topic, 0) + 1
            if failing > SYSTEMIC_AFTER:
                raise SystemicFailure(f"{failing} records of {topic} in a row failed alone, the last with "
                                      f"{_failure(error).detail}: the fault looks like the code's") from error
            record = decoded[0][0]
            await acked(send_dead_letters([(record, _failure(error))], dead_letter_sink))
            return Outcome()
        half = len(decoded) // 2
        first = await _run_isolating(decoded[:half], stages, alerts_sink, dead_letter_sink, extra_sinks)
        second = await _run_isolating(decoded[half:], stages, alerts_sink, dead_letter_sink, extra_sinks)
        return Outcome(alerts=first.alerts + second.alerts, extra=first.extra + second.extra)


async def acked(sending: Awaitable[list[Any]]) -> None:
    """Queue records and wait for the broker's acks."""
    await asyncio.gather(*await sending)


def _failure(error: Exception) -> InvalidEvent:
    """The dead-letter reason of a record a stage fails on: the error's type and the line that raised it."""
    where = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
    at = f" at {Path(where.filename).name}:{where.lineno} in {where.name}" if where else ""
    return InvalidEvent("processing_failed", f"{type(error).__name__}{at}")
