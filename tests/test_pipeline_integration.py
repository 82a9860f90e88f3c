"""The worker over the real broker and Redis: records in, alerts and dead letters out."""

import asyncio
import os
import signal
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone

from redis.asyncio import Redis

from antifraud import blocklist
from antifraud.alerts.models import Alert
from antifraud.events.models import CallRecord, CardOpening, Event
from antifraud.interceptions import InterceptionDecision, VictimWarning
from antifraud.stack.embedded import Endpoints
from antifraud.stack.worker import WorkerProcess, metric_sum
from antifraud.thresholds import load_thresholds
from streams import topics
from streams.checkpoint import DLQ_DETAIL, DLQ_OFFSET, DLQ_REASON, DLQ_TOPIC
from streams.io import EventProducer
from tests.conftest import wait_consumed
from tests.kafka_helpers import read_all

LIMIT = load_thresholds().fraud_number.min_distinct_callees
CALLER = "17055550001"
OTHER_CALLER = "17055550002"
BASE = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=30)


def cold_calls(count: int, *, first: int = 0, start: datetime = BASE, caller: str = CALLER) -> list[CallRecord]:
    """``count`` short calls from ``caller`` to distinct numbers, 10 s apart: a fraud number's burst."""
    return [
        CallRecord(
            event_id=f"call-{i}", event_time=start + timedelta(seconds=10 * i + 20), caller=caller,
            callee=f"1390000{i:04d}", start=start + timedelta(seconds=10 * i), duration_s=20,
            cell_id="cell-1", imei="860000000000001",
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
    assert (alert.detector, alert.entity.kind, alert.entity.value) == ("fraud_number", "phone", CALLER)
    assert (alert.reasons[0].feature, alert.reasons[0].value, alert.reasons[0].threshold) == ("distinct_callees", LIMIT, LIMIT)
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
    assert metric_sum(samples, "antifraud_events_consumed_total", topic=topics.INPUT_TOPICS["call_record"]) == len(calls) + 1
    assert metric_sum(samples, "antifraud_events_consumed_total", topic=topics.INPUT_TOPICS["card_opening"]) == 2
    assert metric_sum(samples, "antifraud_dead_letters_total", reason="malformed_json") == 1
    assert metric_sum(samples, "antifraud_dead_letters_total", reason="schema_violation") == 1
    assert metric_sum(samples, "antifraud_alerts_total", detector="fraud_number") == 1
    latency_count = metric_sum(samples, "antifraud_event_to_alert_seconds_count", detector="fraud_number")
    latency_sum = metric_sum(samples, "antifraud_event_to_alert_seconds_sum", detector="fraud_number")
    assert latency_count == 1
    # The triggering call happened about half an hour ago (event time), so that is the latency.
    assert 20 * 60 < latency_sum < 40 * 60
    text = "".join(f"{name}{labels}" for name, labels in samples)
    assert CALLER not in text, "a phone number leaked into metric labels"


def test_restart_keeps_state_and_a_crash_replays_without_new_ids(
    stack: Endpoints, start_worker: Callable[..., WorkerProcess]
) -> None:
    first = start_worker()
    produce(stack, cold_calls(LIMIT))
    wait_consumed(first, LIMIT)
    first_ids = {a.alert_id for a in alerts_on_topic(stack)}
    assert len(first_ids) == 1
    first.stop()

    # A fresh worker resumes from committed offsets and Redis state: more calls inside
    # the quiet period raise nothing new.
    second = start_worker()
    produce(stack, cold_calls(5, first=LIMIT))
    wait_consumed(second, 5)
    # Killed without warning: whatever it had not committed is replayed by the next worker.
    os.kill(second.proc.pid, signal.SIGKILL)
    second.proc.wait()

    third = start_worker()
    produce(stack, cold_calls(LIMIT, first=1000, start=BASE + timedelta(minutes=20), caller=OTHER_CALLER))
    wait_consumed(third, LIMIT)
    alerts = alerts_on_topic(stack)
    ids = {a.alert_id for a in alerts}
    assert first_ids < ids and len(ids) == 2, "the other number's burst is the only new alert"
    assert {a.entity.value for a in alerts} == {CALLER, OTHER_CALLER}


LISTED = "17055550009"


def test_listed_number_is_intercepted_and_its_victims_warned(
    stack: Endpoints, start_worker: Callable[..., WorkerProcess]
) -> None:
    block_number(stack, LISTED, "case-7")
    worker = start_worker()
    # Three calls from the listed number (the longest talk is the most at risk) and a flagged burst.
    durations = [15, 300, 40]
    listed_calls = [
        CallRecord(
            event_id=f"listed-{i}", event_time=BASE + timedelta(seconds=60 * i + d), caller=LISTED,
            callee=f"1360000{i:04d}", start=BASE + timedelta(seconds=60 * i), duration_s=d,
            cell_id="cell-1", imei="860000000000001",
        )
        for i, d in enumerate(durations)
    ]
    burst = cold_calls(LIMIT + 2, caller=OTHER_CALLER)
    produce(stack, listed_calls + burst)
    wait_consumed(worker, len(listed_calls) + len(burst))

    decisions = [InterceptionDecision.model_validate_json(r.value)
                 for r in read_all(stack.kafka_bootstrap, topics.INTERCEPTIONS)]
    blocked = sorted((d for d in decisions if d.number == LISTED), key=lambda d: d.call_event_id)
    assert [(d.call_event_id, d.callee, d.action, d.basis) for d in blocked] == [
        (c.event_id, c.callee, "block", "block_list") for c in listed_calls
    ]
    assert "case:case-7" in blocked[0].reason
    # The flagged number's calls from its alert on are warned, not blocked (not yet confirmed).
    warned = sorted((d.call_event_id for d in decisions if d.number == OTHER_CALLER))
    assert warned == sorted(c.event_id for c in burst[LIMIT - 1 :])
    assert all(d.action == "warn" and d.basis == "fraud_score" for d in decisions if d.number == OTHER_CALLER)

    warnings = [VictimWarning.model_validate_json(r.value) for r in read_all(stack.kafka_bootstrap, topics.VICTIM_WARNINGS)]
    of_listed = sorted((w for w in warnings if w.number == LISTED), key=lambda w: w.rank)
    assert [w.victim for w in of_listed] == [listed_calls[i].callee for i in (1, 2, 0)]
    assert {w.victim for w in warnings if w.number == OTHER_CALLER} == {c.callee for c in burst}
    assert len({w.warning_id for w in warnings}) == len(warnings)
    text = "".join(f"{name}{labels}" for name, labels in worker.scrape())
    assert LISTED not in text
