"""The worker over the real broker and Redis: records in, alerts and dead letters out."""

import asyncio
import hashlib
import os
import signal
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import cast

from redis.asyncio import Redis

from antifraud import blocklist
from antifraud.alerts.models import Alert
from antifraud.config import Settings
from antifraud.events.models import CallRecord, CardOpening, Event, SimRegistration
from antifraud.events.types import make_id_number
from antifraud.interceptions import InterceptionDecision, VictimWarning
from antifraud.stack.embedded import Endpoints
from antifraud.stack.worker import WorkerProcess, metric_sum
from antifraud.thresholds import load_thresholds
from streams import topics
from streams.checkpoint import DLQ_DETAIL, DLQ_OFFSET, DLQ_PARTITION, DLQ_REASON, DLQ_SHA256, DLQ_SIZE, DLQ_TOPIC
from streams.io import EventProducer
from tests.conftest import wait_consumed, wait_for
from tests.kafka_helpers import read_all

LIMIT = load_thresholds().fraud_number.min_distinct_callees
CALLER = "17055550001"
OTHER_CALLER = "17055550002"
BASE = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=30)


def cold_calls(count: int, *, first: int = 0, start: datetime = BASE, caller: str = CALLER) -> list[CallRecord]:
    """``count`` short calls from ``caller`` to distinct numbers, 10 s apart: a fraud number's burst."""
    return [
        CallRecord(
            event_id=f"call-{i}",
            event_time=start + timedelta(seconds=10 * i + 20),
            caller=caller,
            callee=f"1390000{i:04d}",
            start=start + timedelta(seconds=10 * i),
            duration_s=20,
            cell_id="cell-1",
            imei="860000000000001",
        )
        for i in range(first, first + count)
    ]


def produce(endpoints: Endpoints, events: Sequence[Event], raw: list[tuple[str, bytes]] = ()) -> None:
    producer = EventProducer(endpoints.kafka_bootstrap)
    for topic, value in raw:
        producer.send_raw(topic, b"k", value)
    for event in events:
        producer.send(event)
    producer.flush()
    producer.close()


SIMS = topics.INPUT_TOPICS["sim_registration"]


def ready(start_worker: Callable[..., WorkerProcess], endpoints: Endpoints, **env: str) -> WorkerProcess:
    """A started worker that owns its input partitions (:func:`warm_up`)."""
    worker = start_worker(**env)
    warm_up(endpoints, worker)
    return worker


def warm_up(endpoints: Endpoints, worker: WorkerProcess) -> None:
    """Wait until ``worker`` owns its input partitions and has read them up to their ends: one SIM
    registration (of a person of its own, none else in the tests, dated long before every other event, so
    that it changes no result) is produced and waited for. Records produced from then on are read once."""
    before = len(read_all(endpoints.kafka_bootstrap, SIMS, settle=0.2))
    produce(
        endpoints,
        [
            SimRegistration(
                event_id=f"warm-up-{before}",
                event_time=datetime(2020, 1, 1, tzinfo=timezone.utc),
                carrier="cmcc",
                id_number=make_id_number("320585", "19900101", 900 + before),
                msisdn=f"1709999{before:04d}",
                real_name_verified=True,
                outlet="outlet-9",
            )
        ],
    )
    wait_for(
        lambda: metric_sum(worker.scrape(), "antifraud_events_consumed_total", topic=SIMS) >= 1,
        what=f"the worker's first batch (log {worker.log_path})",
    )


def wait_inputs(worker: WorkerProcess, count: int, timeout: float = 60.0) -> None:
    """Wait until ``count`` records of the input topics other than the warm-up's are consumed."""
    wait_for(
        lambda: (
            metric_sum(worker.scrape(), "antifraud_events_consumed_total")
            - metric_sum(worker.scrape(), "antifraud_events_consumed_total", topic=SIMS)
            >= count
        ),
        timeout,
        f"{count} records consumed (worker log {worker.log_path})",
    )


def block_number(endpoints: Endpoints, number: str, case_id: str) -> None:
    """List ``number`` on the block list as a confirmed case would, before a worker starts."""

    async def listing() -> None:
        async with Redis.from_url(endpoints.redis_url) as client:
            await blocklist.list_from_case(client, number, case_id, "confirmed by a victim's report")

    asyncio.run(listing())


def alerts_on_topic(endpoints: Endpoints) -> list[Alert]:
    return [Alert.model_validate_json(r.value) for r in read_all(endpoints.kafka_bootstrap, topics.ALERTS)]


BROKEN = [
    (topics.INPUT_TOPICS["call_record"], b'{"event_id": "x", "caller": '),
    (topics.INPUT_TOPICS["card_opening"], b'{"event_id": "y", "event_time": "2026-01-01T00:00:00", "bank": "b"}'),
]


def test_alert_dead_letters_and_metrics(stack: Endpoints, start_worker: Callable[..., WorkerProcess]) -> None:
    worker = ready(start_worker, stack)
    calls = cold_calls(LIMIT + 5)
    card = CardOpening(
        event_id="card-1",
        event_time=BASE,
        bank="icbc",
        id_number="11010519491231002X",
        account="6222000000000001",
        branch_id="br-1",
        channel="counter",
    )
    # Broken records go first: the worker must carry on past them.
    sent = datetime.now(timezone.utc)
    produce(stack, calls, BROKEN)
    produce(stack, [card])
    total = len(calls) + len(BROKEN) + 1
    wait_inputs(worker, total)

    alerts = alerts_on_topic(stack)
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert.detector, alert.entity.kind, alert.entity.value) == ("fraud_number", "phone", CALLER)
    assert (alert.reasons[0].feature, alert.reasons[0].value, alert.reasons[0].threshold) == (
        "distinct_callees",
        LIMIT,
        LIMIT,
    )
    assert set(alert.evidence_event_ids) == {f"call-{i}" for i in range(LIMIT)}
    assert alert.window_end == calls[LIMIT - 1].event_time

    dead = read_all(stack.kafka_bootstrap, topics.DEAD_LETTERS)
    assert sorted(r.value for r in dead) == sorted(v for _, v in BROKEN)
    by_value = {r.value: dict(r.headers) for r in dead}
    malformed = by_value[BROKEN[0][1]]
    assert malformed[DLQ_REASON] == b"malformed_json"
    assert malformed[DLQ_TOPIC] == BROKEN[0][0].encode()
    assert malformed[DLQ_OFFSET].isdigit()
    invalid = by_value[BROKEN[1][1]]
    assert invalid[DLQ_REASON] == b"schema_violation"
    assert b"event_time" in invalid[DLQ_DETAIL] and b"id_number" in invalid[DLQ_DETAIL]

    samples = worker.scrape()
    scraped = datetime.now(timezone.utc)
    assert (
        metric_sum(samples, "antifraud_events_consumed_total", topic=topics.INPUT_TOPICS["call_record"])
        == len(calls) + 1
    )
    assert metric_sum(samples, "antifraud_events_consumed_total", topic=topics.INPUT_TOPICS["card_opening"]) == 2
    assert metric_sum(samples, "antifraud_dead_letters_total", reason="malformed_json") == 1
    assert metric_sum(samples, "antifraud_dead_letters_total", reason="schema_violation") == 1
    assert metric_sum(samples, "antifraud_alerts_total", detector="fraud_number") == 1
    latency_count = metric_sum(samples, "antifraud_event_to_alert_seconds_count", detector="fraud_number")
    latency_sum = metric_sum(samples, "antifraud_event_to_alert_seconds_sum", detector="fraud_number")
    assert latency_count == 1
    # The triggering call's event time is BASE-relative (half an hour or more ago): the latency is from it to
    # when the worker raised the alert, which was between producing and scraping.
    assert (sent - alert.window_end).total_seconds() - 1 <= latency_sum <= (scraped - alert.window_end).total_seconds()
    text = "".join(f"{name}{labels}" for name, labels in samples)
    assert CALLER not in text, "a phone number leaked into metric labels"


def test_restart_keeps_state_and_a_crash_replays_without_new_ids(
    stack: Endpoints, start_worker: Callable[..., WorkerProcess]
) -> None:
    first = ready(start_worker, stack)
    produce(stack, cold_calls(LIMIT))
    wait_inputs(first, LIMIT)
    first_ids = {a.alert_id for a in alerts_on_topic(stack)}
    assert len(first_ids) == 1
    first.stop()

    # A fresh worker resumes from committed offsets and Redis state: more calls inside
    # the quiet period raise nothing new.
    second = ready(start_worker, stack)
    produce(stack, cold_calls(5, first=LIMIT))
    wait_inputs(second, 5)
    # Killed without warning: whatever it had not committed is replayed by the next worker.
    os.kill(second.proc.pid, signal.SIGKILL)
    second.proc.wait()

    ready(start_worker, stack)  # the third worker
    # (numbered from 1000, dated from 20 minutes after the first burst: records ahead of the clock are refused)
    produce(
        stack,
        cold_calls(
            LIMIT, first=1000, start=BASE + timedelta(minutes=20) - timedelta(seconds=10 * 1000), caller=OTHER_CALLER
        ),
    )
    # The third worker reads the second's uncommitted calls again, then the other number's burst.
    wait_for(
        lambda: any(a.entity.value == OTHER_CALLER for a in alerts_on_topic(stack)), what="the other number's alert"
    )
    alerts = alerts_on_topic(stack)
    ids = {a.alert_id for a in alerts}
    assert first_ids < ids and len(ids) == 2, "the other number's burst is the only new alert"
    assert {a.entity.value for a in alerts} == {CALLER, OTHER_CALLER}


LISTED = "17055550009"


def test_listed_number_is_intercepted_and_its_victims_warned(
    stack: Endpoints, start_worker: Callable[..., WorkerProcess]
) -> None:
    block_number(stack, LISTED, "case-7")
    worker = ready(start_worker, stack)
    # Three calls from the listed number, ending within one piece (the cross-entity delay), so the warnings
    # of the victims they reached are ranked together: the longest talk is the most at risk.
    durations = [15, 300, 40]
    listed_calls = [
        CallRecord(
            event_id=f"listed-{i}",
            event_time=BASE + timedelta(seconds=400 + i),
            caller=LISTED,
            callee=f"1360000{i:04d}",
            start=BASE + timedelta(seconds=400 + i - d),
            duration_s=d,
            cell_id="cell-1",
            imei="860000000000001",
        )
        for i, d in enumerate(durations)
    ]
    burst = cold_calls(LIMIT + 2, caller=OTHER_CALLER)
    produce(stack, listed_calls + burst)
    wait_inputs(worker, len(listed_calls) + len(burst))

    decisions = [
        InterceptionDecision.model_validate_json(r.value) for r in read_all(stack.kafka_bootstrap, topics.INTERCEPTIONS)
    ]
    blocked = sorted((d for d in decisions if d.number == LISTED), key=lambda d: d.call_event_id)
    assert [(d.call_event_id, d.callee, d.action, d.basis) for d in blocked] == [
        (c.event_id, c.callee, "block", "block_list") for c in listed_calls
    ]
    assert "case:case-7" in blocked[0].reason
    # The flagged number's calls from its alert on are warned, not blocked (not yet confirmed).
    warned = sorted(d.call_event_id for d in decisions if d.number == OTHER_CALLER)
    assert warned == sorted(c.event_id for c in burst[LIMIT - 1 :])
    assert all(d.action == "warn" and d.basis == "fraud_score" for d in decisions if d.number == OTHER_CALLER)

    warnings = [
        VictimWarning.model_validate_json(r.value) for r in read_all(stack.kafka_bootstrap, topics.VICTIM_WARNINGS)
    ]
    of_listed = sorted((w for w in warnings if w.number == LISTED), key=lambda w: w.rank)
    assert [w.victim for w in of_listed] == [listed_calls[i].callee for i in (1, 2, 0)]
    assert {w.victim for w in warnings if w.number == OTHER_CALLER} == {c.callee for c in burst}
    assert len({w.warning_id for w in warnings}) == len(warnings)
    text = "".join(f"{name}{labels}" for name, labels in worker.scrape())
    assert LISTED not in text


DEAD_LETTER_MAX_BYTES: int = cast(int, Settings.model_fields["dead_letter_max_bytes"].default)
"""The worker's default (the tests do not set it)."""
MAX_RECORD_BYTES = 1024


def test_an_oversized_and_a_malformed_record_are_dead_lettered_and_the_records_around_them_processed(
    stack: Endpoints, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = ready(start_worker, stack, ANTIFRAUD_MAX_RECORD_BYTES=str(MAX_RECORD_BYTES))
    calls = cold_calls(LIMIT + 2)
    oversized = (
        b'{"event_id": "big", "caller": "'
        + CALLER.encode()
        + b'", "pad": "'
        + b"x" * (DEAD_LETTER_MAX_BYTES + 5000)
        + b'"}'
    )
    malformed = b'{"event_id": "x", "caller": '
    producer = EventProducer(stack.kafka_bootstrap)
    half = LIMIT // 2
    for event in calls[:half]:  # the calls before them, then the bad ones, then the rest: one partition
        producer.send(event)
    producer.send_raw(topics.INPUT_TOPICS["call_record"], CALLER.encode(), oversized)
    producer.send_raw(topics.INPUT_TOPICS["call_record"], CALLER.encode(), malformed)
    for event in calls[half:]:
        producer.send(event)
    producer.flush()
    producer.close()
    wait_inputs(worker, len(calls) + 2)

    [alert] = alerts_on_topic(stack)
    assert alert.entity.value == CALLER
    assert set(alert.evidence_event_ids) == {c.event_id for c in calls[:LIMIT]}, "calls on both sides counted"

    dead = sorted(read_all(stack.kafka_bootstrap, topics.DEAD_LETTERS), key=lambda r: len(r.value))
    assert [r.key for r in dead] == [CALLER.encode(), CALLER.encode()]
    small, big = (dict(r.headers) for r in dead)
    assert dead[0].value == malformed
    assert small[DLQ_REASON] == b"malformed_json" and DLQ_SIZE not in small and DLQ_SHA256 not in small
    assert big[DLQ_REASON] == b"oversized"
    assert big[DLQ_SIZE] == str(len(oversized)).encode()
    assert big[DLQ_SHA256] == hashlib.sha256(oversized).hexdigest().encode()
    assert dead[1].value == oversized[:DEAD_LETTER_MAX_BYTES], "only the first bytes"
    assert str(MAX_RECORD_BYTES).encode() in big[DLQ_DETAIL]
    assert int(big[DLQ_OFFSET]) == half and int(small[DLQ_OFFSET]) == half + 1, "where they were, in order"
    assert big[DLQ_TOPIC] == small[DLQ_TOPIC] == topics.INPUT_TOPICS["call_record"].encode()
    assert big[DLQ_PARTITION] == small[DLQ_PARTITION]

    samples = worker.scrape()
    assert metric_sum(samples, "antifraud_dead_letters_total", reason="oversized") == 1
    assert metric_sum(samples, "antifraud_dead_letters_total", reason="malformed_json") == 1
    assert (
        metric_sum(samples, "antifraud_events_consumed_total", topic=topics.INPUT_TOPICS["call_record"])
        == len(calls) + 2
    )


def test_records_on_the_topics_before_the_worker_takes_its_partitions_are_processed_once(
    stack: Endpoints, start_worker: Callable[..., WorkerProcess]
) -> None:
    calls = cold_calls(LIMIT + 5)
    produce(stack, calls, BROKEN)
    worker = start_worker()
    wait_consumed(worker, len(calls) + len(BROKEN))
    wait_for(lambda: len(alerts_on_topic(stack)) >= 1, what="the burst's alert")
    dead = read_all(stack.kafka_bootstrap, topics.DEAD_LETTERS)
    samples = worker.scrape()
    assert sorted(r.value for r in dead) == sorted(v for _, v in BROKEN)
    assert metric_sum(samples, "antifraud_events_consumed_total") == len(calls) + len(BROKEN)
    assert metric_sum(samples, "antifraud_late_records_total") == 0
