"""The worker over the real broker and Redis: records in, alerts and dead letters out."""

import os
import signal
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from antifraud.alerts.models import Alert
from antifraud.events.models import CallRecord, CardOpening
from antifraud.stack.embedded import Endpoints
from antifraud.stack.worker import WorkerProcess, metric_sum
from antifraud.thresholds import load_thresholds
from streams import topics
from streams.batch import DLQ_DETAIL, DLQ_OFFSET, DLQ_REASON, DLQ_TOPIC
from streams.io import EventProducer
from tests.conftest import wait_consumed
from tests.kafka_helpers import read_all

LIMIT = load_thresholds().call_fanout.max_distinct_callees
CALLER = "17055550001"
BASE = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=30)


def cold_calls(count: int, *, first: int = 0, start: datetime = BASE) -> list[CallRecord]:
    """``count`` calls from CALLER to distinct numbers, 10 s apart."""
    return [
        CallRecord(
            event_id=f"call-{i}", event_time=start + timedelta(seconds=10 * i + 20), caller=CALLER,
            callee=f"1390000{i:04d}", start=start + timedelta(seconds=10 * i), duration_s=20,
            cell_id="cell-1", imei="860000000000001",
        )
        for i in range(first, first + count)
    ]


def produce(endpoints: Endpoints, events: list[CallRecord], raw: list[tuple[str, bytes]] = ()) -> None:
    producer = EventProducer(endpoints.kafka_bootstrap)
    for topic, value in raw:
        producer.send_raw(topic, b"k", value)
    for event in events:
        producer.send(event)
    producer.flush()
    producer.close()


def alerts_on_topic(endpoints: Endpoints) -> list[Alert]:
    return [Alert.model_validate_json(r.value) for r in read_all(endpoints.kafka_bootstrap, topics.ALERTS)]


BROKEN = [
    (topics.INPUT_TOPICS["call_record"], b'{"event_id": "x", "caller": '),
    (topics.INPUT_TOPICS["card_opening"], b'{"event_id": "y", "event_time": "2026-01-01T00:00:00", "bank": "b"}'),
]


def test_alert_dead_letters_and_metrics(stack: Endpoints, start_worker: Callable[..., WorkerProcess]) -> None:
    worker = start_worker()
    calls = cold_calls(LIMIT + 5)
    card = CardOpening(
        event_id="card-1", event_time=BASE, bank="icbc", id_number="11010519491231002X",
        account="6222000000000001", branch_id="br-1", channel="counter",
    )
    # Broken records go first: the worker must carry on past them.
    produce(stack, calls, BROKEN)
    produce(stack, [card])
    total = len(calls) + len(BROKEN) + 1
    wait_consumed(worker, total)

    alerts = alerts_on_topic(stack)
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert.detector, alert.entity.kind, alert.entity.value) == ("call_fanout", "phone", CALLER)
    assert alert.reasons[0].value == LIMIT + 1 and alert.reasons[0].threshold == LIMIT
    assert set(alert.evidence_event_ids) == {f"call-{i}" for i in range(LIMIT + 1)}
    assert alert.window_end == calls[LIMIT].event_time

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
    assert metric_sum(samples, "antifraud_events_consumed_total", topic=topics.INPUT_TOPICS["call_record"]) == len(calls) + 1
    assert metric_sum(samples, "antifraud_events_consumed_total", topic=topics.INPUT_TOPICS["card_opening"]) == 2
    assert metric_sum(samples, "antifraud_dead_letters_total", reason="malformed_json") == 1
    assert metric_sum(samples, "antifraud_dead_letters_total", reason="schema_violation") == 1
    assert metric_sum(samples, "antifraud_alerts_total", detector="call_fanout") == 1
    latency_count = metric_sum(samples, "antifraud_event_to_alert_seconds_count", detector="call_fanout")
    latency_sum = metric_sum(samples, "antifraud_event_to_alert_seconds_sum", detector="call_fanout")
    assert latency_count == 1
    # The triggering call happened about half an hour ago (event time), so that is the latency.
    assert 20 * 60 < latency_sum < 40 * 60
    text = "".join(f"{name}{labels}" for name, labels in samples)
    assert CALLER not in text, "a phone number leaked into metric labels"


def test_restart_keeps_state_and_a_crash_replays_without_new_ids(
    stack: Endpoints, start_worker: Callable[..., WorkerProcess]
) -> None:
    first = start_worker()
    produce(stack, cold_calls(LIMIT + 1))
    wait_consumed(first, LIMIT + 1)
    first_ids = {a.alert_id for a in alerts_on_topic(stack)}
    assert len(first_ids) == 1
    first.stop()

    # A fresh worker resumes from committed offsets and Redis state: more calls inside
    # the quiet period raise nothing new.
    second = start_worker()
    produce(stack, cold_calls(5, first=LIMIT + 1))
    wait_consumed(second, 5)
    # Killed without warning: whatever it had not committed is replayed by the next worker.
    os.kill(second.proc.pid, signal.SIGKILL)
    second.proc.wait()

    third = start_worker()
    produce(stack, cold_calls(LIMIT + 1, first=1000, start=BASE + timedelta(minutes=20)))
    wait_consumed(third, LIMIT + 1)
    alerts = alerts_on_topic(stack)
    ids = {a.alert_id for a in alerts}
    assert first_ids < ids and len(ids) == 2, "the burst after the quiet period is the only new alert"
