"""The transfer-risk state on a real redis-server, written as the transfer stage writes it (through the
engine: stages, pipeline, checkpoint): accounts' own sides read back as they were kept in memory, the
facts other stages read (calls that reached a payer, flags, inflows) joined a batch later, replays that
change nothing, bounded keys, and two workers paying one payee."""

import math
from collections.abc import Sequence
from datetime import timedelta

from redis.asyncio import Redis

from antifraud import blocklist
from antifraud.alerts.models import Alert
from antifraud.events.codec import encode
from antifraud.events.models import CallRecord, Event
from antifraud.state import keys
from antifraud.state.store import OwnedStore, Store
from antifraud.state.transfer_risk import account_codec
from antifraud.thresholds import load_thresholds
from detectors.transfer_risk import DETECTOR, MULE_DETECTOR, Account, detect
from streams.engine import Engine
from streams.pipeline import BatchResult, Stage
from streams.progress import Partitioning
from streams.records import Input, Record
from streams.stages import BankingFacts, TransferStage, build_stages
from streams.topics import ALERTS, INPUT_TOPICS
from tests.redis_helpers import on_redis
from tests.stream_helpers import ListSink, run_stream
from tests.test_transfer_risk import FRAUD_NUMBER, MULE, NEXT_HOP, T0, VICTIM, VICTIM_PHONE, Facts, _mule_day, transfer

THRESHOLDS = load_thresholds()
LIMITS = THRESHOLDS.transfer_risk
DELAY = THRESHOLDS.stream.cross_entity_delay_seconds
HISTORY = LIMITS.history_days * 86400
TRANSFERS = INPUT_TOPICS["bank_transfer"]
BLACKLISTED = "6222000000000999"
OTHER_PHONE = "13900000002"


async def checkpoint(client: Redis, *stores: Store) -> None:
    """What the checkpoint does with stores: queue every write in one transaction, then commit."""
    async with client.pipeline(transaction=True) as pipe:
        for store in stores:
            store.queue(pipe)
        await pipe.execute()
    for store in stores:
        store.committed()


def risk_alerts(sink: ListSink) -> list[Alert]:
    alerts = [Alert.model_validate_json(v) for v in sink.on(ALERTS)]
    return [a for a in alerts if a.detector in (DETECTOR, MULE_DETECTOR)]


def transfer_stage(stages: Sequence[Stage]) -> TransferStage:
    [stage] = [s for s in stages if isinstance(s, TransferStage)]
    return stage


async def read_back(client: Redis, names: Sequence[str]) -> dict[str, Account]:
    """The accounts as a worker that has just started (or taken the partitions over) reads them."""
    fresh = OwnedStore(client, account_codec(LIMITS))
    await fresh.ensure(names)
    return fresh.states(names)


def listed_call(event_id: str, callee: str, minutes: float, duration_s: int = 1200) -> CallRecord:
    """A call of the listed FRAUD_NUMBER ending ``minutes`` after T0 (the call stage intercepts it and
    records whom it reached)."""
    end = T0 + timedelta(minutes=minutes)
    return CallRecord(
        event_id=event_id,
        event_time=end,
        caller=FRAUD_NUMBER,
        callee=callee,
        start=end - timedelta(seconds=duration_s),
        duration_s=duration_s,
        cell_id="cell-1",
        imei="860000000000001",
    )


def test_accounts_and_facts_round_trip_and_a_replay_changes_nothing(redis_url: str) -> None:
    """Batch one: a listed number calls the victim, and a mule collects from three payers and passes it
    on (a mule alert flags it). Batch two, by a worker reading everything from Redis: the victim pays the
    mule (the call and the flag are joined from Redis), and someone pays a blacklisted account."""
    first = [listed_call("call-1", VICTIM_PHONE, 20), *_mule_day()]
    paid = transfer("v", 150, VICTIM, MULE, 5_000, channel="counter", phone=VICTIM_PHONE)
    listed = transfer("bl", 151, "6222000000000055", BLACKLISTED, 1, payer_name="孙八")
    second = [paid, listed]
    payers = sorted({t.payer_account for t in [*_mule_day(), *second]})

    async def body(client: Redis) -> None:
        await blocklist.list_from_case(client, FRAUD_NUMBER, "case-1", "confirmed by a victim's report")
        await client.sadd(keys.BLACKLIST.key(), BLACKLISTED)  # as the credit blacklist service lists it
        stages = build_stages(client, THRESHOLDS)
        one = risk_alerts(
            await run_stream(client, first, until=(T0 + timedelta(hours=2, minutes=10)).timestamp(), stages=stages)
        )
        assert [(a.detector, a.entity.value) for a in one] == [(MULE_DETECTOR, MULE), (DETECTOR, f"{NEXT_HOP}2")]
        kept = transfer_stage(stages).accounts.states({t.payer_account for t in _mule_day()})  # as kept in memory
        assert await read_back(client, list(kept)) == kept

        stages = build_stages(client, THRESHOLDS)
        two = risk_alerts(await run_stream(client, second, until=(T0 + timedelta(hours=3)).timestamp(), stages=stages))
        by_payee = {a.entity.value: a for a in two}
        assert set(by_payee) == {MULE, BLACKLISTED}
        victim = by_payee[MULE]
        assert (victim.detector, victim.severity, victim.trigger) == (DETECTOR, "critical", "v")
        reasons = {r.feature: r.value for r in victim.reasons}
        assert reasons["call_before_hours_max"] == round(130 / 60, 2) and reasons["flagged_call_minutes"] == 20.0
        assert reasons["payee_flagged"] == 1.0 and reasons["new_payee"] == 1.0
        assert {r.feature for r in by_payee[BLACKLISTED].reasons} >= {"blacklisted_payee"}
        assert by_payee[BLACKLISTED].severity == "critical"

        # What the stage kept is what Redis has; the facts it added are what the detector saw.
        named = [VICTIM, listed.payer_account, MULE, BLACKLISTED]  # its payers, and the payees it checked
        kept = transfer_stage(stages).accounts.states(named)
        stored = await read_back(client, payers)
        assert {name: stored.get(name, Account()) for name in named} == kept
        assert [f.event_id for f in stored[VICTIM].outflows] == ["v"]
        assert [f.event_id for f in stored[MULE].outflows] == ["out0", "out1", "out2"]
        assert stored[MULE].quiet_until == (T0 + timedelta(minutes=125)).timestamp() + LIMITS.quiet_seconds

        # A replay (a crash after the checkpoint, the batch read again) raises nothing and changes nothing.
        inflows = await client.zrange(keys.INFLOWS.key(MULE), 0, -1, withscores=True)
        flags = await client.zrange(keys.FLAGS.key(MULE), 0, -1, withscores=True)
        again = await run_stream(client, second, until=(T0 + timedelta(hours=4)).timestamp())
        assert risk_alerts(again) == []
        assert await read_back(client, payers) == stored
        assert await client.zrange(keys.INFLOWS.key(MULE), 0, -1, withscores=True) == inflows
        assert await client.zrange(keys.FLAGS.key(MULE), 0, -1, withscores=True) == flags

        # Every key the stage wrote expires.
        for family, entity, ttl in [
            (keys.TRANSFER_OUT, VICTIM, HISTORY),
            (keys.TRANSFER_QUIET, MULE, HISTORY),
            (keys.INFLOWS, MULE, HISTORY),
            (keys.FLAGS, MULE, LIMITS.quiet_seconds + HISTORY),
            (
                keys.REACHED,
                VICTIM_PHONE,
                max(LIMITS.call_window_seconds, 2 * THRESHOLDS.fraud_number.profile_window_seconds),
            ),
        ]:
            assert 0 < await client.ttl(family.key(entity)) <= ttl, family.prefix

    on_redis(redis_url, body)


def test_two_transfers_to_one_payee_in_the_same_second_by_different_payers_are_two_alerts(redis_url: str) -> None:
    """Both payers were called by the listed number; they pay the same account in the same second: two
    incidents, two alerts with their own ids (neither sees the other's flag yet: the delay)."""
    calls = [listed_call("call-1", VICTIM_PHONE, 20), listed_call("call-2", OTHER_PHONE, 21)]
    paid = [
        transfer("v1", 40, VICTIM, MULE, 5_000, channel="counter", phone=VICTIM_PHONE),
        transfer("v2", 40, "6222000000000002", MULE, 5_000, channel="counter", payer_name="周九", phone=OTHER_PHONE),
    ]

    async def body(client: Redis) -> None:
        await blocklist.list_from_case(client, FRAUD_NUMBER, "case-1", "confirmed by a victim's report")
        await run_stream(client, calls)
        alerts = risk_alerts(await run_stream(client, paid, until=(T0 + timedelta(hours=1)).timestamp()))
        assert sorted((a.detector, a.entity.value, a.trigger, a.severity) for a in alerts) == [
            (DETECTOR, MULE, "v1", "critical"),
            (DETECTOR, MULE, "v2", "critical"),
        ]
        assert len({a.alert_id for a in alerts}) == 2
        assert alerts[0].window_start == alerts[1].window_start == paid[0].event_time
        assert all("payee_flagged" not in {r.feature for r in a.reasons} for a in alerts)
        # Both flag the payee, each with its own alert.
        facts = BankingFacts(client, THRESHOLDS, DELAY)
        await facts.flags.table.ensure([MULE])
        flagged = facts.flags.table.visible(MULE, paid[0].event_time.timestamp() + DELAY)
        assert sorted(f.alert_id for f in flagged) == sorted(a.alert_id for a in alerts)

    on_redis(redis_url, body)


def test_outflows_past_the_history_are_not_read_back(redis_url: str) -> None:
    old = transfer("old", -60 * 24 * (LIMITS.history_days + 1), VICTIM, MULE, 2_000)
    new = transfer("new", 0, VICTIM, "6222000000000123", 2_000)

    async def body(client: Redis) -> None:
        await run_stream(client, [old])
        assert [f.event_id for f in (await read_back(client, [VICTIM]))[VICTIM].outflows] == ["old"]
        stages = build_stages(client, THRESHOLDS)
        await run_stream(client, [new], stages=stages)
        assert [f.event_id for f in transfer_stage(stages).accounts.get(VICTIM).outflows] == ["new"]
        assert [f.event_id for f in (await read_back(client, [VICTIM]))[VICTIM].outflows] == ["new"]
        assert 0 < await client.ttl(keys.TRANSFER_OUT.key(VICTIM)) <= HISTORY

    on_redis(redis_url, body)


def test_outflows_past_the_cap_are_trimmed_in_redis_as_in_memory(redis_url: str) -> None:
    cap = LIMITS.max_outflows_kept
    many = [transfer(f"t{i:03d}", i, VICTIM, f"62220000001{i:05d}", 2_000) for i in range(cap + 5)]

    async def body(client: Redis) -> None:
        stages = build_stages(client, THRESHOLDS)
        await run_stream(client, many, stages=stages)
        kept = transfer_stage(stages).accounts.get(VICTIM)
        assert [f.event_id for f in kept.outflows] == [t.event_id for t in many[5:]]
        assert await client.zcard(keys.TRANSFER_OUT.key(VICTIM)) == cap
        assert await read_back(client, [VICTIM]) == {VICTIM: kept}

    on_redis(redis_url, body)


def test_a_late_transfer_of_a_full_account_reads_back_as_kept(redis_url: str) -> None:
    cap = LIMITS.max_outflows_kept
    full = [transfer(f"t{i:03d}", 10 + i, VICTIM, f"62220000001{i:05d}", 2_000) for i in range(cap)]
    late = transfer("late", 0, VICTIM, "6222000000009999", 2_000)  # a record arriving after the others

    async def body(client: Redis) -> None:
        store = OwnedStore(client, account_codec(LIMITS))
        for batch in ([*full], [late]):  # as the transfer stage runs and checkpoints two batches
            await store.ensure([VICTIM])
            accounts = store.states([VICTIM])
            result = detect(batch, accounts, Facts(), LIMITS)
            for name, change in result.changes.items():
                store.apply(store.stage(name, accounts[name], change).change)
            await checkpoint(client, store)
        kept = store.get(VICTIM)
        assert [f.event_id for f in kept.outflows] == [t.event_id for t in full]
        assert await read_back(client, [VICTIM]) == {VICTIM: kept}

    on_redis(redis_url, body)


async def _process(engine: Engine, events: Sequence[Event], bound: float) -> tuple[Engine, BatchResult]:
    """A batch run by ``engine``'s pipeline on its partitions, not yet committed."""
    inputs = []
    for n, event in enumerate(events):
        topic, partition = engine.partitioning.of(INPUT_TOPICS[event.kind], event.partition_key())
        inputs.append(Input.of(event, Record(topic, partition, n, None, encode(event))))
    return engine, await engine.pipeline.run(inputs, [], bound)


def test_two_workers_paying_one_payee_both_keep_their_inflows(redis_url: str) -> None:
    """Transfers are partitioned by payer: two workers, each owning one payer, run their batches on the
    same state and commit one after the other; the payee's inflows hold both payments."""
    partitioning = Partitioning({**{topic: 1 for topic in INPUT_TOPICS.values()}, TRANSFERS: 2})
    candidates = [f"62220000000000{n:02d}" for n in range(10, 40)]
    by_partition = {partitioning.of(TRANSFERS, c)[1]: c for c in candidates}
    payer_one, payer_two = by_partition[0], by_partition[1]
    one = transfer("a", 0, payer_one, MULE, 30_000, payer_name="甲")
    two = transfer("b", 0.5, payer_two, MULE, 30_000, payer_name="乙")
    bound = math.nextafter(two.event_time.timestamp(), math.inf)

    async def body(client: Redis) -> None:
        engines = []
        for partition in (0, 1):
            engine = Engine(client, THRESHOLDS, ListSink(), partitioning, dead_letter_max_bytes=1 << 20)
            await engine.claim([(TRANSFERS, partition)])
            engines.append(engine)
        ran = [await _process(engines[0], [one], bound), await _process(engines[1], [two], bound)]
        for engine, result in ran:  # both ran before either committed
            await engine.checkpoint.commit(result, engine.owned)
        facts = BankingFacts(client, THRESHOLDS, DELAY)
        await facts.inflows.ensure([MULE])
        seen = facts.inflows.visible(MULE, bound + DELAY)
        assert [(f.event_id, f.other, f.amount_fen) for f in seen] == [
            ("a", payer_one, 3_000_000),
            ("b", payer_two, 3_000_000),
        ]

    on_redis(redis_url, body)
