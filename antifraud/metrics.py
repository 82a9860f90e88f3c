"""Prometheus metrics of the worker. Labels are topics, detectors, states, Redis command names and
other fixed vocabularies only: never a phone number, account, ID number or name."""

import time
from collections.abc import Iterable
from typing import Any, get_args

from prometheus_client import Counter, Gauge, Histogram
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from antifraud.alerts.models import Severity
from antifraud.events.codec import RejectKind

EVENTS_CONSUMED = Counter(
    "antifraud_events_consumed_total", "Records read from an input topic (valid or not).", ["topic"]
)
DEAD_LETTERS = Counter("antifraud_dead_letters_total", "Records sent to the dead-letter topic.", ["topic", "reason"])
ALERTS = Counter("antifraud_alerts_total", "Alerts produced.", ["detector", "severity"])
EVENT_TO_ALERT_SECONDS = Histogram(
    "antifraud_event_to_alert_seconds",
    "From the event time of the event that triggered an alert to the alert being acknowledged by the broker.",
    ["detector"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)
BATCH_RETRIES = Counter(
    "antifraud_batch_retries_total",
    "Batches tried again because Redis or the broker failed (the batch waits, its offsets uncommitted).",
    ["topic"],
)
LATE_RECORDS = Counter(
    "antifraud_late_records_total",
    "Records older than what their worker had already processed when they arrived (still processed; only "
    "these can make results depend on timing).",
    ["topic"],
)
BATCH_SECONDS = Histogram(
    "antifraud_batch_seconds",
    "Time to process one batch: decode, detect, produce, flush state.",
    ["topic"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
DELIVERY_OUTCOMES = ("delivered", "retried", "failed")
DELIVERIES = Counter(
    "antifraud_deliveries_total",
    "Forwarding delivery attempts by target (police, carrier, bank) and outcome (delivered, retried, failed).",
    ["target", "outcome"],
)
HOLDS = Gauge("antifraud_holds", "Holds in the ledger by state.", ["state"])
HOLDS_DUE_NEXT_HOUR = Gauge(
    "antifraud_holds_due_next_hour",
    "Held holds due within the next hour of the ledger's clock (wall clock with ANTIFRAUD_HOLD_CLOCK=wall, "
    "else the event-time watermark).",
)
HOLDS_OVERDUE = Gauge(
    "antifraud_holds_overdue",
    "Held holds more than a minute past their due time by the ledger's clock: releases that did not happen.",
)
CASES = Gauge("antifraud_cases", "Cases by state.", ["state"])
REDIS_SECONDS = Histogram(
    "antifraud_redis_seconds",
    "Redis round trips of the worker's client by operation: the command name, or pipeline/multi (never a key).",
    ["operation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
CONSUMER_LAG = Gauge(
    "antifraud_consumer_lag",
    "Records not yet committed by the worker's consumer group, per topic and partition "
    "(broker end offset minus committed offset, clamped at 0: see antifraud/lag.py).",
    ["topic", "partition"],
)
END_OFFSET = Gauge(
    "antifraud_end_offset",
    "End offset (high watermark) the broker reports, per input topic and partition.",
    ["topic", "partition"],
)
COMMITTED_OFFSET = Gauge(
    "antifraud_committed_offset",
    "Offset the worker's consumer group has committed, per topic and partition.",
    ["topic", "partition"],
)
STOP_REASONS = ("broker_lost",)
INPUT_STOPPED = Gauge(
    "antifraud_input_stopped",
    "1 once the worker has stopped reading its input for good, by why (it exits after a grace period that "
    "lets Prometheus scrape this): broker_lost, the broker no longer has topics or records it had read.",
    ["reason"],
)
GAUGE_REFRESH_ERRORS = Counter(
    "antifraud_gauge_refresh_errors_total",
    "Failed refreshes of the state gauges (lag, holds, cases): a source that could not be read.",
    ["source"],
)


def export_known_series(
    input_topics: Iterable[str], detectors: Iterable[str], targets: Iterable[str], alerts_topic: str
) -> None:
    """Export the counters whose labels are known in advance at 0 from the start. ``rate`` and ``increase``
    only see a counter rise between two scrapes: a series born at 1 would hide the first dead letter,
    alert, delivery or retry."""
    for topic in input_topics:
        EVENTS_CONSUMED.labels(topic=topic)
    for topic in (*input_topics, alerts_topic):
        BATCH_RETRIES.labels(topic=topic)
        for reason in get_args(RejectKind):
            DEAD_LETTERS.labels(topic=topic, reason=reason)
    for detector in detectors:
        for severity in get_args(Severity):
            ALERTS.labels(detector=detector, severity=severity)
    for target in targets:
        for outcome in DELIVERY_OUTCOMES:
            DELIVERIES.labels(target=target, outcome=outcome)
    for reason in STOP_REASONS:
        INPUT_STOPPED.labels(reason=reason)


class _TimedPipeline(Pipeline):
    """A pipeline whose round trip (``execute``) is one observation: ``pipeline`` or ``multi``."""

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        operation = "multi" if self.is_transaction or self.explicit_transaction else "pipeline"
        started = time.perf_counter()
        try:
            return await super().execute(raise_on_error)
        finally:
            REDIS_SECONDS.labels(operation=operation).observe(time.perf_counter() - started)


class TimedRedis(Redis):
    """The worker's Redis client: every command's round trip goes to :data:`REDIS_SECONDS`, labelled by
    the command's name (``evalsha``, ``hget``, ``pipeline``, ...), never by its keys or values."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        started = time.perf_counter()
        try:
            return await super().execute_command(*args, **options)
        finally:
            REDIS_SECONDS.labels(operation=str(args[0]).lower()).observe(time.perf_counter() - started)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return _TimedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
