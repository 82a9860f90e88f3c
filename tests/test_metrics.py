"""Metrics: consumer lag from the broker, Redis timing, the state gauges, and a live worker's /metrics moving
as events flow."""

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import REGISTRY, generate_latest
from redis.asyncio import Redis

from antifraud.audit.service import AuditLog
from antifraud.case.models import STATUSES
from antifraud.case.service import CaseService
from antifraud.config import Settings
from antifraud.holds.models import Hold
from antifraud.holds.policy import hold_for
from antifraud.holds.service import HoldLedger
from antifraud.lag import LagReader, PartitionOffsets
from antifraud.metrics import TimedRedis
from antifraud.stack.embedded import Endpoints
from antifraud.stack.worker import WorkerProcess, metric_sum
from antifraud.thresholds import load_thresholds
from streams import gauges, topics
from streams.loop import BATCH_LABEL
from tests.conftest import AUDIT_KEYS, PARTITIONS, wait_for
from tests.test_holds import DAY, T0, atm_transfer
from tests.test_pipeline_integration import BROKEN, CALLER, LIMIT, cold_calls, produce, wait_inputs, warm_up

CALLS = topics.INPUT_TOPICS["call_record"]
TRANSFERS = topics.INPUT_TOPICS["bank_transfer"]
HOLDS = load_thresholds().holds
LAG_S: float = Settings.model_fields["hold_clock_lag_s"].default  # the worker's, unless set


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- consumer lag ------------------------------------------------------------------------------------


def test_lag_counts_from_the_commit_or_the_first_offset_and_never_goes_negative() -> None:
    assert PartitionOffsets("t", 0, start=0, end=120, committed=100).lag == 20
    assert PartitionOffsets("t", 0, start=40, end=120, committed=None).lag == 80
    # Tansu reports the first offset of the last batch + 1 as the end: a group that read
    # everything can have committed past it.
    assert PartitionOffsets("t", 0, start=0, end=2369, committed=2500).lag == 0


def test_lag_reader_reads_the_groups_commits_and_the_end_offsets_from_the_broker(stack: Endpoints) -> None:
    topic, group = CALLS, "lag-test-group"

    async def scenario() -> list[PartitionOffsets]:
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
        await producer.start()
        # One record per request, so even Tansu's end offset is exact.
        for _ in range(10):
            await producer.send_and_wait(topic, b"x", partition=0)
        for _ in range(4):
            await producer.send_and_wait(topic, b"y", partition=1)
        await producer.stop()
        committer = AIOKafkaConsumer(bootstrap_servers=stack.kafka_bootstrap, group_id=group, enable_auto_commit=False)
        await committer.start()
        committer.assign([TopicPartition(topic, 0)])
        await committer.commit({TopicPartition(topic, 0): 7})
        await committer.stop()
        reader = LagReader(stack.kafka_bootstrap, group, (topic, "no-such-topic"))
        try:
            return await reader.read()
        finally:
            await reader.close()

    offsets = {(o.topic, o.partition): o for o in asyncio.run(scenario())}
    assert set(offsets) == {(topic, p) for p in range(PARTITIONS)}, "every partition of the topic, no other topic"
    assert (offsets[topic, 0].end, offsets[topic, 0].committed, offsets[topic, 0].lag) == (10, 7, 3)
    assert (offsets[topic, 1].end, offsets[topic, 1].committed, offsets[topic, 1].lag) == (4, None, 4)


# -- Redis timing ------------------------------------------------------------------------------------


def test_timed_redis_observes_each_round_trip_by_command_never_by_key(redis_url: str) -> None:
    secret_key = "phone:13900001111"

    def count(operation: str) -> float:
        return sample("antifraud_redis_seconds_count", operation=operation)

    before = {op: count(op) for op in ("hset", "hget", "pipeline", "multi", "evalsha", "script load")}

    async def scenario() -> None:
        client = TimedRedis.from_url(redis_url)
        await client.hset(secret_key, "a", "1")
        assert await client.hget(secret_key, "a") == b"1"
        async with client.pipeline(transaction=False) as pipe:
            pipe.hget(secret_key, "a").hget(secret_key, "b")
            assert await pipe.execute() == [b"1", None]
        async with client.pipeline(transaction=True) as pipe:
            pipe.hset(secret_key, "b", "2")
            await pipe.execute()
        script = client.register_script("return redis.call('HGET', KEYS[1], 'b')")
        assert await script(keys=[secret_key]) == b"2"
        await client.aclose()

    asyncio.run(scenario())
    # The script's first EVALSHA is refused (NOSCRIPT): redis-py loads it and tries again.
    assert {op: count(op) - before[op] for op in before} == {
        "hset": 1,
        "hget": 1,
        "pipeline": 1,
        "multi": 1,
        "evalsha": 2,
        "script load": 1,
    }
    assert b"13900001111" not in generate_latest(), "a key leaked into a label"


# -- state gauges ------------------------------------------------------------------------------------


def test_a_failing_source_is_counted_and_the_others_still_refresh() -> None:
    ran: list[str] = []

    async def broken() -> None:
        raise ConnectionError("broker unreachable")

    async def fine() -> None:
        ran.append("fine")

    before = sample("antifraud_gauge_refresh_errors_total", source="broken-source")
    asyncio.run(gauges.refresh({"broken-source": broken, "fine-source": fine}))
    assert ran == ["fine"]
    assert sample("antifraud_gauge_refresh_errors_total", source="broken-source") == before + 1
    assert REGISTRY.get_sample_value("antifraud_gauge_refresh_errors_total", {"source": "fine-source"}) == 0


async def created(client: Redis, ledger: HoldLedger, holds: list[Hold], at: datetime) -> None:
    """Holds made as the checkpoint makes them (``HoldLedger.queue_moves`` in its transaction)."""
    await ledger.advance(at)
    async with client.pipeline(transaction=True) as pipe:
        ledger.queue_moves(pipe, holds, [], [], at)
        await pipe.execute()


def test_hold_gauges_follow_the_ledgers_clock(redis_url: str) -> None:
    """Event clock: the watermark moved three days past a hold that was never released (a crash between
    the read and the write would leave it so): overdue. Wall clock: a hold due in half an hour."""

    async def scenario() -> dict[str, float]:
        client = Redis.from_url(redis_url)
        ledger = HoldLedger.configured(client, HOLDS)
        late = hold_for(atm_transfer("late", T0), DAY)
        soon = hold_for(atm_transfer("soon", T0 + 3 * DAY - DAY + timedelta(minutes=20)), DAY)
        await created(client, ledger, [late, soon], T0)
        await ledger.advance(T0 + 3 * DAY)
        await gauges.refresh_holds(ledger, "event", LAG_S)
        event = {
            "held": sample("antifraud_holds", state="held"),
            "released": sample("antifraud_holds", state="released"),
            "due": sample("antifraud_holds_due_next_hour"),
            "overdue": sample("antifraud_holds_overdue"),
        }
        now = datetime.now(timezone.utc)
        fresh = hold_for(atm_transfer("fresh", now - DAY + timedelta(minutes=30)), DAY)
        await created(client, ledger, [fresh], now)
        await gauges.refresh_holds(ledger, "wall", LAG_S)
        await client.aclose()
        return {
            **event,
            "wall due": sample("antifraud_holds_due_next_hour"),
            "wall overdue": sample("antifraud_holds_overdue"),
            "wall held": sample("antifraud_holds", state="held"),
        }

    figures = asyncio.run(scenario())
    # "soon" is due 20 minutes after the watermark; "late" two days before it.
    assert figures == {
        "held": 2,
        "released": 0,
        "due": 1,
        "overdue": 1,
        # by the wall clock both T0 holds are long overdue, "fresh" due within the hour
        "wall due": 1,
        "wall overdue": 2,
        "wall held": 3,
    }


def test_case_gauge_has_every_state(redis_url: str) -> None:
    async def scenario() -> None:
        client = Redis.from_url(redis_url)
        await gauges.refresh_cases(CaseService(client, AuditLog(client, AUDIT_KEYS)))
        await client.aclose()

    asyncio.run(scenario())
    states = {
        point.labels["state"]
        for family in REGISTRY.collect()
        if family.name == "antifraud_cases"
        for point in family.samples
    }
    assert states == set(STATUSES)
    assert sample("antifraud_cases", state="new") == 0


# -- a live worker -----------------------------------------------------------------------------------


def confirm_every_case(redis_url: str) -> int:
    """An analyst reviews and confirms every new case: the worker then delivers each to its targets."""

    async def confirm() -> int:
        client = Redis.from_url(redis_url)
        service = CaseService(client, AuditLog(client, AUDIT_KEYS))
        found = await service.find(status="new")
        for case in found:
            await service.review(case.case_id, actor="analyst-1")
            await service.confirm(case.case_id, actor="analyst-1", reason="confirmed by a victim's report")
        await client.aclose()
        return len(found)

    return asyncio.run(confirm())


def _partition_figures(samples: dict, name: str, topic: str) -> dict[str, float]:
    return {
        dict(labels)["partition"]: value
        for (n, labels), value in samples.items()
        if n == name and dict(labels).get("topic") == topic
    }


@pytest.mark.integration
def test_worker_metrics_move_as_events_flow(stack: Endpoints, start_worker: Callable[..., WorkerProcess]) -> None:
    worker = start_worker()
    partitions = {str(p) for p in range(PARTITIONS)}
    wait_for(
        lambda: all(
            _partition_figures(worker.scrape(), "antifraud_consumer_lag", t).keys() == partitions
            for t in topics.INPUT_TOPICS.values()
        ),
        what="a lag figure for every input topic and partition",
    )
    idle = worker.scrape()
    assert metric_sum(idle, "antifraud_consumer_lag") == 0
    assert metric_sum(idle, "antifraud_holds", state="held") == 0
    warm_up(stack, worker)

    # Wave 1: a fraud number's burst, a broken record, and two ATM transfers to others' accounts. Holds are
    # released by event time, which every input topic moves: the calls are dated with the transfers.
    calls = cold_calls(LIMIT + 5, start=T0)
    transfers = [
        atm_transfer("t-1", T0),
        atm_transfer("t-2", T0 + DAY - timedelta(minutes=30), payer="6222000000000002"),
    ]
    produce(stack, calls + transfers, BROKEN[:1])
    wait_inputs(worker, len(calls) + len(transfers) + 1)
    wait_for(
        lambda: (
            sum(_partition_figures(worker.scrape(), "antifraud_committed_offset", CALLS).values()) == len(calls) + 1
        ),
        what="the group's commits on the call topic reported",
    )
    wait_for(lambda: metric_sum(worker.scrape(), "antifraud_holds", state="held") == 2, what="two holds held")
    first = worker.scrape()
    assert metric_sum(first, "antifraud_events_consumed_total", topic=CALLS) == len(calls) + 1
    assert metric_sum(first, "antifraud_dead_letters_total", topic=CALLS, reason="malformed_json") == 1
    assert metric_sum(first, "antifraud_alerts_total", detector="fraud_number") == 1
    assert metric_sum(first, "antifraud_event_to_alert_seconds_count", detector="fraud_number") == 1
    assert metric_sum(first, "antifraud_batch_seconds_count", topic=BATCH_LABEL) >= 1
    assert metric_sum(first, "antifraud_redis_seconds_count", operation="evalsha") >= 1
    # The watermark is t-2's time: t-1 falls due within the hour.
    assert metric_sum(first, "antifraud_holds_due_next_hour") == 1
    assert metric_sum(first, "antifraud_holds_overdue") == 0
    for topic in (CALLS, TRANSFERS):
        lag = _partition_figures(first, "antifraud_consumer_lag", topic)
        end = _partition_figures(first, "antifraud_end_offset", topic)
        committed = _partition_figures(first, "antifraud_committed_offset", topic)
        assert all(lag[p] == max(0.0, end[p] - committed.get(p, 0.0)) for p in partitions), (lag, end, committed)

    # The fraud number's case, confirmed, goes to the police and the carrier (no webhook: topic only).
    wait_for(lambda: metric_sum(worker.scrape(), "antifraud_cases", state="new") == 1, what="the alert's case")
    assert confirm_every_case(stack.redis_url) == 1
    wait_for(
        lambda: metric_sum(worker.scrape(), "antifraud_deliveries_total", outcome="delivered") == 2,
        what="two deliveries",
    )
    delivered = worker.scrape()
    assert {
        dict(labels)["target"]
        for (name, labels), value in delivered.items()
        if name == "antifraud_deliveries_total" and value
    } == {"police", "carrier"}
    wait_for(
        lambda: (
            metric_sum(worker.scrape(), "antifraud_cases", state="new") == 0
            and metric_sum(worker.scrape(), "antifraud_cases") == 1
        ),
        what="the case out of 'new'",
    )

    # Wave 2: more calls and a transfer a day later, which releases t-1.
    more = cold_calls(7, first=1000, start=T0 + DAY)
    produce(stack, more + [atm_transfer("t-3", T0 + DAY + timedelta(minutes=5), payer="6222000000000003")])
    wait_inputs(worker, len(calls) + len(transfers) + 1 + len(more) + 1)
    wait_for(
        lambda: (
            sum(_partition_figures(worker.scrape(), "antifraud_committed_offset", CALLS).values())
            == len(calls) + 1 + len(more)
        ),
        what="the second wave's commits reported",
    )
    wait_for(lambda: metric_sum(worker.scrape(), "antifraud_holds", state="released") == 1, what="t-1 released")
    second = worker.scrape()
    assert metric_sum(second, "antifraud_events_consumed_total", topic=CALLS) == len(calls) + 1 + len(more)
    assert metric_sum(second, "antifraud_holds", state="held") == 2
    assert metric_sum(second, "antifraud_holds_due_next_hour") == 0
    assert metric_sum(second, "antifraud_batch_seconds_count") > metric_sum(first, "antifraud_batch_seconds_count")
    assert metric_sum(second, "antifraud_redis_seconds_count") > metric_sum(first, "antifraud_redis_seconds_count")
    assert metric_sum(second, "antifraud_gauge_refresh_errors_total") == 0
    text = "".join(f"{name}{labels}" for name, labels in second)
    assert CALLER not in text and "6222000000000001" not in text, "personal data in a label"
