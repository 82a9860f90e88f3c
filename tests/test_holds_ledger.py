"""The hold ledger through the worker's engine on a real redis-server: each hold made once and released once,
at its due time by event time, the ledger's clock never going back; a batch run again after a crash before
its checkpoint produces the same releases and moves the ledger once; a worker that lost its partitions
writes nothing; a fraud report read before the ATM transfer it covers still freezes that transfer's hold;
a transfer dated far ahead of the clock moves nothing.

(The same crashes over the real broker, SIGKILLed workers, are in ``tests/test_holds_integration.py``.)"""

import asyncio
import math
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiokafka import ConsumerRecord
from redis.asyncio import Redis

from antifraud.audit.service import AuditLog
from antifraud.events.codec import encode
from antifraud.events.models import BankTransfer, Event, FraudReport
from antifraud.holds.models import HoldEvent
from antifraud.holds.service import HoldLedger, hold_key
from antifraud.thresholds import load_thresholds
from streams import topics
from streams.checkpoint import Fenced
from streams.engine import Engine
from streams.loop import decode_record
from streams.offline import detect_file, file_partitioning
from streams.pipeline import Stage
from streams.progress import Partitioning
from streams.records import Input, Record, Rejected
from streams.stages import BankingFacts, FraudReportStage, HoldStage, TransferStage
from tests.conftest import AUDIT_KEYS
from tests.stream_helpers import ListSink, run_stream
from tests.test_holds import DAY, T0, atm_transfer, hold_id_for

THRESHOLDS = load_thresholds()
LIMITS = THRESHOLDS.holds
DELAY = THRESHOLDS.stream.cross_entity_delay_seconds
TRANSFERS = topics.INPUT_TOPICS["bank_transfer"]


async def audited(client: Redis, hold_id: str) -> list[tuple[str, str]]:
    """The hold's audit history (actor, action) once the relay has chained what the checkpoints queued."""
    audit = AuditLog(client, AUDIT_KEYS)
    while await audit.seal():
        pass
    return [(r.actor, r.action) for r in await audit.about(f"hold:{hold_id}")]


def test_creation_once_release_once_when_due_and_the_ledgers_clock_never_goes_back(redis_url: str) -> None:
    held = atm_transfer("t-1", T0)
    batch = [
        held,
        atm_transfer("same", T0, payee_name="张三", payer="6222000000000002"),
        atm_transfer("counter", T0, channel="counter", payer="6222000000000003"),
    ]
    hold_id = hold_id_for("t-1")

    async def go() -> None:
        client = Redis.from_url(redis_url)
        ledger = HoldLedger.configured(client, LIMITS)
        try:
            first = await run_stream(client, batch, until=(T0 + timedelta(hours=1)).timestamp())
            assert [(e.hold_id, e.to_state) for e in map(HoldEvent.model_validate_json, first.on(topics.HOLDS))] == [
                (hold_id, "held")
            ], "only the ATM transfer to another name is held"
            await run_stream(client, batch, until=(T0 + timedelta(hours=2)).timestamp())
            assert (await ledger.counts())["held"] == 1, "a replayed transfer is not a second hold"

            almost = await run_stream(
                client, [atm_transfer("t-2", T0 + DAY - timedelta(seconds=1), payer="6222000000000004")]
            )
            assert [HoldEvent.model_validate_json(v).to_state for v in almost.on(topics.HOLDS)] == ["held"]
            assert (hold := await ledger.get(hold_id)) is not None and hold.state == "held", "not released before due"

            due = await run_stream(client, [atm_transfer("tick", T0 + DAY, payee_name="张三")])
            released = [HoldEvent.model_validate_json(v) for v in due.on(topics.HOLDS)]
            assert [(e.hold_id, e.from_state, e.to_state, e.at, e.actor) for e in released] == [
                (hold_id, "held", "released", T0 + DAY, "system")
            ]
            again = await run_stream(
                client, [atm_transfer("tick-2", T0 + DAY + timedelta(minutes=1), payee_name="张三")]
            )
            assert again.on(topics.HOLDS) == [], "a release comes once"
            await run_stream(client, [atm_transfer("old", T0, payee_name="张三")], until=(T0 + DAY / 2).timestamp())
            assert await ledger.watermark() == T0 + DAY + timedelta(minutes=1), "the ledger's clock never goes back"
            assert (hold := await ledger.get(hold_id)) is not None and hold.state == "released"
            assert 0 < await client.ttl(hold_key(hold_id)) <= LIMITS.retain_days * 86400, "a settled hold expires"
            assert await audited(client, hold_id) == [("system", "hold.held"), ("system", "hold.released")]
            assert (await AuditLog(client, AUDIT_KEYS).verify()).ok
        finally:
            await client.aclose()

    asyncio.run(go())


def inputs_of(events: list[BankTransfer], first_offset: int) -> list[Input]:
    return [Input.of(e, Record(TRANSFERS, 0, first_offset + n, None, encode(e))) for n, e in enumerate(events)]


def test_a_batch_run_again_after_a_crash_before_its_checkpoint_releases_once(redis_url: str) -> None:
    """The worker ran the batch that makes a hold due and produced its release, then died before the
    checkpoint: run again on the same state, the batch produces the same release (same id, same record);
    committed, it moves the ledger and the audit trail once."""
    made = inputs_of([atm_transfer("t-1", T0)], 0)
    tick = inputs_of([atm_transfer("tick", T0 + DAY, payee_name="张三")], 1)
    bound = math.nextafter((T0 + DAY).timestamp(), math.inf)

    async def go() -> None:
        client = Redis.from_url(redis_url)
        try:
            engine = Engine(client, THRESHOLDS, ListSink(), file_partitioning(), dead_letter_max_bytes=1 << 20)
            await engine.claim(engine.partitioning.all())
            await engine.process(made, made[0].at + 1)
            timers = await engine.progress.due(sorted(engine.owned), bound)
            crashed = await engine.pipeline.run(tick, timers, bound, engine.since)
            engine.pipeline.discard()  # died: nothing committed
            ledger = HoldLedger.configured(client, LIMITS)
            assert (hold := await ledger.get(hold_id_for("t-1"))) is not None and hold.state == "held"
            replayed = await engine.process(tick, bound)
            assert [r.value for r in crashed.outcome.records] == [r.value for r in replayed.outcome.records] != []
            assert [
                HoldEvent.model_validate_json(r.value).to_state
                for r in replayed.outcome.records
                if r.topic == topics.HOLDS
            ] == ["released"]
            assert await ledger.counts() == {"held": 0, "released": 1, "revoked": 0, "frozen": 0, "returned": 0}
            assert await audited(client, hold_id_for("t-1")) == [("system", "hold.held"), ("system", "hold.released")]
            assert await ledger.due_within(0, since=T0 + 2 * DAY) == 0, "the due index is empty"
        finally:
            await client.aclose()

    asyncio.run(go())


def test_a_worker_whose_partitions_were_taken_over_writes_no_hold(redis_url: str) -> None:
    """A rebalance hands the partitions to another worker while the old owner still runs its batch: the old
    owner's checkpoint is refused, the new owner's makes each hold once."""
    batch = inputs_of(
        [atm_transfer(f"t-{i}", T0 + timedelta(minutes=i), payer=f"62220000{i:08d}") for i in range(20)], 0
    )
    bound = batch[-1].at + 1

    async def go() -> None:
        one, two = Redis.from_url(redis_url), Redis.from_url(redis_url)
        try:
            old = Engine(one, THRESHOLDS, ListSink(), file_partitioning(), dead_letter_max_bytes=1 << 20)
            new = Engine(two, THRESHOLDS, ListSink(), file_partitioning(), dead_letter_max_bytes=1 << 20)
            await old.claim(old.partitioning.all())
            await new.claim(new.partitioning.all())
            with pytest.raises(Fenced):
                await old.process(batch, bound)
            ledger = HoldLedger.configured(one, LIMITS)
            assert (await ledger.counts())["held"] == 0, "the old owner wrote nothing"
            await new.process(batch, bound)
            assert (await ledger.counts())["held"] == len(batch)
            for item in batch:
                assert await audited(one, hold_id_for(item.event.event_id)) == [("system", "hold.held")]
            assert (await AuditLog(one, AUDIT_KEYS).verify()).ok
        finally:
            await one.aclose()
            await two.aclose()

    asyncio.run(go())


def test_a_transfer_twice_makes_one_hold_released_once_when_due(redis_url: str) -> None:
    transfer = atm_transfer("t-1", T0)

    async def go() -> list[HoldEvent]:
        client = Redis.from_url(redis_url)
        try:
            events = []
            for batch, until in (([transfer], T0 + DAY / 2), ([transfer], T0 + DAY * 2)):
                sink = await run_stream(client, batch, until=until.timestamp())
                events += [HoldEvent.model_validate_json(v) for v in sink.on(topics.HOLDS)]
            assert await HoldLedger.configured(client, LIMITS).counts() == {
                "held": 0,
                "released": 1,
                "revoked": 0,
                "frozen": 0,
                "returned": 0,
            }
            return events
        finally:
            await client.aclose()

    events = asyncio.run(go())
    assert [e.to_state for e in events if e.to_state == "released"] == ["released"]
    assert {e.transition_id for e in events if e.to_state == "held"} == {events[0].transition_id}, "one hold, one id"


def test_a_fast_replay_of_three_days_releases_each_hold_once_at_its_due_time(redis_url: str) -> None:
    # A transfer every 7 minutes for 3 days; every third one to the sender's own name (no hold).
    transfers = [
        atm_transfer(
            f"t-{i}",
            T0 + timedelta(minutes=7 * i),
            payee_name="张三" if i % 3 == 0 else "李四",
            payer=f"62220000000{i % 5:05d}",
        )
        for i in range(3 * 24 * 60 // 7)
    ]
    held = {hold_id_for(t.event_id): t.event_time + DAY for t in transfers if t.payee_name != "张三"}
    end = transfers[-1].event_time
    events: list[HoldEvent] = []

    async def go() -> None:
        client = Redis.from_url(redis_url)
        try:
            for start in range(0, len(transfers), 37):
                batch = transfers[start : start + 37]
                following = (
                    transfers[start + 37].event_time.timestamp()
                    if start + 37 < len(transfers)
                    else math.nextafter(end.timestamp(), math.inf)
                )
                sink = await run_stream(client, batch, until=following)
                for value in sink.on(topics.HOLDS):
                    event = HoldEvent.model_validate_json(value)
                    assert event.to_state == "held" or event.at.timestamp() < following, "released before due"
                    events.append(event)
        finally:
            await client.aclose()

    asyncio.run(go())
    assert Counter(e.to_state for e in events) == {"held": len(held), "released": sum(d <= end for d in held.values())}
    releases = {e.hold_id: e.at for e in events if e.to_state == "released"}
    assert releases == {h: due for h, due in held.items() if due <= end}
    assert len({e.transition_id for e in events}) == len(events)


def test_a_transfer_stamped_in_the_future_is_refused_before_it_moves_time() -> None:
    """A broken clock's transfer dated years ahead would move time on for every entity (releasing every
    hold); the loop dead-letters it instead."""
    transfer = atm_transfer("from-2099", datetime(2099, 1, 1, tzinfo=timezone.utc))
    topic = topics.INPUT_TOPICS["bank_transfer"]
    partitioning = Partitioning({topic: 1})
    message = ConsumerRecord(
        topic, 0, 7, 0, 0, transfer.payer_account.encode(), transfer.model_dump_json().encode(), None, 0, 0, []
    )
    latest = time.time() + LIMITS.max_event_time_ahead_minutes * 60
    refused = decode_record(message, partitioning, 1 << 20, -math.inf, latest)
    assert isinstance(refused, Rejected) and refused.error.kind == "event_time_out_of_range"
    fine = decode_record(message, partitioning, 1 << 20, -math.inf, transfer.event_time.timestamp())
    assert not isinstance(fine, Rejected)


def test_a_transfer_stamped_before_2000_is_refused() -> None:
    """An unset clock's time (1999, 1970) is no event's: dead-lettered with the reason, as the worker reads it."""
    topic = topics.INPUT_TOPICS["bank_transfer"]
    for when, kind in (
        (datetime(1999, 12, 31, 23, 59, tzinfo=timezone.utc), "event_time_out_of_range"),
        (datetime(2000, 1, 1, tzinfo=timezone.utc), None),
    ):
        transfer = atm_transfer(f"at-{when.year}", when)
        message = ConsumerRecord(
            topic, 0, 7, 0, 0, transfer.payer_account.encode(), transfer.model_dump_json().encode(), None, 0, 0, []
        )
        decoded = decode_record(message, Partitioning({topic: 1}), 1 << 20, -math.inf, time.time())
        assert (decoded.error.kind if isinstance(decoded, Rejected) else None) == kind


# -- a fraud report read before the transfer it covers ---------------------------------------------------

VICTIM, MULE = "6222000000000001", "6222000000000777"


def hold_and_report_stages(client: Redis) -> list[Stage]:
    """The transfer stage (it indexes the money trail the report follows), the hold stage and the fraud-report
    stage, sharing their facts as ``build_stages`` has them."""
    facts = BankingFacts(client, THRESHOLDS, DELAY)
    return [
        TransferStage(client, THRESHOLDS, facts, DELAY),
        HoldStage(client, THRESHOLDS, DELAY),
        FraudReportStage(THRESHOLDS, facts, DELAY),
    ]


def write_events(path: Path, events: list[Event]) -> Path:
    path.write_bytes(b"".join(encode(e) + b"\n" for e in sorted(events, key=lambda e: e.event_time)))
    return path


@pytest.mark.parametrize("chunk_size", [1, 5000], ids=["report-in-an-earlier-batch", "report-earlier-in-one-batch"])
def test_a_fraud_report_read_before_the_atm_transfer_it_covers_still_freezes_its_hold(
    redis_url: str, tmp_path: Path, chunk_size: int
) -> None:
    """The victim reports a minute after the fraud time; the ATM transfer to the mule comes nine minutes
    after that, within the report's window. Whether the report is read in a batch of its own before the
    transfer, or earlier in the same batch, the trace waits for the window to close and freezes the hold."""
    report = FraudReport(
        event_id="fr-early",
        event_time=T0 + timedelta(minutes=1),
        victim_id_number="11010519491231002X",
        fraud_time=T0,
        source="110",
        victim_account=VICTIM,
    )
    paid = atm_transfer("paid-late", T0 + timedelta(minutes=10), payer=VICTIM)
    other = atm_transfer("unrelated", T0 + timedelta(minutes=10), payer="6222000000000002")
    later = atm_transfer("later", T0 + timedelta(hours=2), payee_name="张三", payer="6222000000000003")
    events = write_events(tmp_path / "events.jsonl", [report, paid, other, later])

    async def go() -> None:
        client = Redis.from_url(redis_url)
        try:
            done = await detect_file(
                events,
                client,
                THRESHOLDS,
                lambda alert: None,
                chunk_size=chunk_size,
                stages=hold_and_report_stages(client),
            )
            assert done.events == {"fraud_report": 1, "bank_transfer": 3}
            ledger = HoldLedger.configured(client, LIMITS)
            states = {
                h: hold.state
                for h, hold in (await ledger.states([hold_id_for("paid-late"), hold_id_for("unrelated")])).items()
            }
            assert states == {hold_id_for("paid-late"): "frozen", hold_id_for("unrelated"): "held"}
            assert done.records[topics.FREEZE_REQUESTS] >= 1, "the bank is asked to stop the payment"
            assert await audited(client, hold_id_for("paid-late")) == [
                ("system", "hold.held"),
                ("police", "hold.frozen"),
            ]
        finally:
            await client.aclose()

    asyncio.run(go())
