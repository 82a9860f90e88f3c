"""The hold ledger and its stage on a real redis-server: idempotent creation, release exactly once by event time."""

import asyncio
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

from redis.asyncio import Redis

from antifraud.events.models import BankTransfer
from antifraud.holds.models import HoldEvent
from antifraud.holds.policy import plan_batch
from antifraud.holds.service import DUE, WATERMARK, HoldLedger
from antifraud.thresholds import load_thresholds
from streams import topics
from streams.batch import Record, process_batch
from streams.stages import HoldStage
from tests.test_holds import DAY, T0, atm_transfer, hold_id_for

LIMITS = load_thresholds().holds


def stage(client: Redis) -> HoldStage:
    return HoldStage(HoldLedger.configured(client, LIMITS), LIMITS)


async def run(stage_: HoldStage, batch: list[BankTransfer], *, flush: bool = True) -> list[HoldEvent]:
    outcome = await stage_(batch)
    if flush:
        await outcome.flush_state()
    assert {topic for topic, _, _ in outcome.extra} <= {topics.HOLDS}
    return [HoldEvent.model_validate_json(value) for _, _, value in outcome.extra]


def test_creation_is_idempotent_and_release_comes_once_when_due(redis_url: str) -> None:
    held = atm_transfer("t-1", T0)
    batch = [held, atm_transfer("same", T0, payee_name="张三"), atm_transfer("counter", T0, channel="counter")]

    async def go() -> None:
        client = Redis.from_url(redis_url)
        holds = stage(client)
        try:
            created = await run(holds, batch)
            assert [(e.hold_id, e.to_state) for e in created] == [(hold_id_for("t-1"), "held")]
            assert await run(holds, batch) == [], "a replayed transfer is not a second hold"
            assert await client.hget(f"hold:{hold_id_for('t-1')}", "state") == b"held"

            assert await run(holds, [atm_transfer("t-2", T0 + DAY - timedelta(seconds=1))]) != []
            assert await client.zscore(DUE, hold_id_for("t-1")) is not None, "not released before due"

            tick = [atm_transfer("tick", T0 + DAY, payee_name="张三")]
            released = await run(holds, tick)
            assert [(e.hold_id, e.from_state, e.to_state, e.at) for e in released] == [
                (hold_id_for("t-1"), "held", "released", T0 + DAY)
            ]
            assert await run(holds, tick) == [], "a replayed batch releases nothing new"
            assert await run(holds, [atm_transfer("old", T0, payee_name="张三")]) == []
            assert float(await client.get(WATERMARK)) == (T0 + DAY).timestamp(), "the watermark never goes back"
            assert await client.hget(f"hold:{hold_id_for('t-1')}", "state") == b"released"
            assert await client.ttl(f"hold:{hold_id_for('t-1')}") > 0
        finally:
            await client.aclose()

    asyncio.run(go())


def test_two_workers_handling_the_same_transfers_at_once_make_each_hold_once(redis_url: str) -> None:
    """A rebalance can hand a partition over while the old owner still works on its batch: both plan the
    same holds from the same ledger view and flush concurrently; the ledger and the audit trail count
    each hold once."""
    batch = [atm_transfer(f"t-{i}", T0 + timedelta(minutes=i)) for i in range(20)]

    async def go() -> None:
        one, two = Redis.from_url(redis_url), Redis.from_url(redis_url)
        first, second = stage(one), stage(two)
        try:
            outcomes = await asyncio.gather(first(batch), second(batch))
            assert all(len(o.extra) == len(batch) for o in outcomes), "both planned every hold"
            await asyncio.gather(*(o.flush_state() for o in outcomes))
            assert (await first.ledger.counts())["held"] == len(batch)
            for transfer in batch:
                history = await first.ledger.audit.about(f"hold:{hold_id_for(transfer.event_id)}")
                assert [(r.actor, r.action) for r in history] == [("system", "hold.held")]
            assert (await first.ledger.audit.verify()).ok
        finally:
            await one.aclose()
            await two.aclose()

    asyncio.run(go())


def test_a_crash_before_flush_replays_the_same_release_and_the_ledger_moves_once(redis_url: str) -> None:
    async def go() -> None:
        client = Redis.from_url(redis_url)
        holds = stage(client)
        try:
            await run(holds, [atm_transfer("t-1", T0)])
            due = [atm_transfer("tick", T0 + DAY, payee_name="张三")]
            first, second = await holds(due), await holds(due)  # produced, then the worker died before flushing
            assert [r[2] for r in first.extra] == [r[2] for r in second.extra] != []
            ledger = holds.ledger
            view = await ledger.load([], T0 + DAY)
            plan = plan_batch([], view)
            assert await ledger.apply(plan, view.watermark) == 0
            assert await ledger.apply(plan, view.watermark) == 1, "the second release of a hold is refused"
            assert await client.zcard(DUE) == 0
            history = await ledger.audit.about(f"hold:{hold_id_for('t-1')}")
            assert [(r.actor, r.action) for r in history] == [("system", "hold.held"), ("system", "hold.released")], \
                "each automatic move is audited once, however often its batch is replayed"
            assert (await ledger.audit.verify()).ok
        finally:
            await client.aclose()

    asyncio.run(go())


class Captured:
    """A sink that keeps what it is sent, as the topic would."""

    def __init__(self) -> None:
        self.values: list[bytes] = []

    async def send(self, *, key: bytes | None, value: bytes, headers: Any = None) -> "asyncio.Future[None]":
        self.values.append(value)
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivered.set_result(None)
        return delivered


def test_a_fast_replay_of_three_days_releases_each_hold_once_at_its_due_time(redis_url: str) -> None:
    # A transfer every 7 minutes for 3 days; every third one to the sender's own name (no hold).
    transfers = [
        atm_transfer(f"t-{i}", T0 + timedelta(minutes=7 * i), payee_name="张三" if i % 3 == 0 else "李四",
                     payer=f"62220000000{i % 5:05d}")
        for i in range(3 * 24 * 60 // 7)
    ]
    held = {hold_id_for(t.event_id): t.event_time + DAY for t in transfers if t.payee_name != "张三"}
    end = transfers[-1].event_time
    sink = Captured()

    async def go() -> None:
        client = Redis.from_url(redis_url)
        holds = stage(client)
        try:
            for start in range(0, len(transfers), 37):
                batch = transfers[start : start + 37]
                records = [Record(topics.INPUT_TOPICS["bank_transfer"], 0, start + i, None, t.model_dump_json().encode())
                           for i, t in enumerate(batch)]
                before = len(sink.values)
                await process_batch(records, BankTransfer, [holds], alerts_sink=sink, dead_letter_sink=sink,
                                    extra_sinks={topics.HOLDS: sink})
                newest = batch[-1].event_time
                for value in sink.values[before:]:
                    event = HoldEvent.model_validate_json(value)
                    assert event.to_state == "held" or event.at <= newest, "released before the stream reached due"
        finally:
            await client.aclose()

    asyncio.run(go())
    events = [HoldEvent.model_validate_json(v) for v in sink.values]
    assert Counter(e.to_state for e in events) == {"held": len(held), "released": sum(d <= end for d in held.values())}
    releases = {e.hold_id: e.at for e in events if e.to_state == "released"}
    assert releases == {h: due for h, due in held.items() if due <= end}
    assert len({e.transition_id for e in events}) == len(events)


def test_a_transfer_stamped_in_the_future_does_not_release_every_hold(redis_url: str) -> None:
    """A broken clock's transfer dated years ahead moves the watermark only to the wall clock plus the limit."""
    now = datetime.now(timezone.utc)

    async def go() -> None:
        client = Redis.from_url(redis_url)
        holds = stage(client)
        try:
            await run(holds, [atm_transfer("fresh", now)])
            released = await run(holds, [atm_transfer("from-2099", datetime(2099, 1, 1, tzinfo=timezone.utc))])
            assert hold_id_for("fresh") not in {e.hold_id for e in released if e.to_state == "released"}
            assert await client.hget(f"hold:{hold_id_for('fresh')}", "state") == b"held"
            ahead = float(await client.get(WATERMARK)) - now.timestamp()
            assert 0 < ahead <= LIMITS.max_event_time_ahead_minutes * 60 + 5
        finally:
            await client.aclose()

    asyncio.run(go())
