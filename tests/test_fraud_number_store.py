"""The fraud-number state on a real redis-server: profiles written through and read back as they were
kept in memory, a batch costing its own calls whatever the history, the quiet period and expiry, who
was warned, and who called whom (the earliest call kept)."""

from collections.abc import Sequence

import pytest
from redis.asyncio import Redis

from antifraud.events.models import CallRecord
from antifraud.state import keys
from antifraud.state.fraud_number import CalledByCodec, WarnedCodec, profile_codec
from antifraud.state.kept import KeptLog
from antifraud.state.store import FactTable, OwnedStore, Store
from antifraud.thresholds import load_thresholds
from detectors.fraud_number import NumberChange, OutCall, Profile, detect, out_call
from streams.stages import BankingFacts, CallStage
from streams.topics import ALERTS
from tests.redis_helpers import on_redis
from tests.stream_helpers import run_stream
from tests.test_fraud_number import FRAUD, PHONE_A, T0, call, cold_calls, snapshot

THRESHOLDS = load_thresholds()
LIMITS = THRESHOLDS.fraud_number
DELAY = THRESHOLDS.stream.cross_entity_delay_seconds
WINDOW = LIMITS.profile_window_seconds


async def checkpoint(client: Redis, *stores: Store) -> None:
    """What the checkpoint does with stores: queue every write in one transaction, then commit."""
    async with client.pipeline(transaction=True) as pipe:
        for store in stores:
            store.queue(pipe)
        await pipe.execute()
    for store in stores:
        store.committed()


class CountingCodec(KeptLog[OutCall, Profile]):
    """The production codec, counting the numbers it is asked to read."""

    def __init__(self) -> None:
        codec = profile_codec(LIMITS)
        super().__init__(
            codec.items,
            codec.quiet,
            codec.codec,
            codec.build,
            window_seconds=codec.window_seconds,
            cap=codec.cap,
            ttl_seconds=codec.ttl_seconds,
        )
        self.loaded: list[str] = []

    async def load(self, redis: Redis, keys: Sequence[str]) -> dict[str, Profile]:
        self.loaded += keys
        return await super().load(redis, keys)


async def write_calls(
    client: Redis, store: OwnedStore[Profile, NumberChange], number: str, calls: Sequence[OutCall]
) -> Profile:
    """One batch of one number's calls, added as the detector adds them and written through."""
    await store.ensure([number])
    profile = store.get(number)
    change = NumberChange()
    for kept in calls:
        if profile.add(kept):
            change.added.append(kept)
    store.apply(store.stage(number, profile, change).change)
    await checkpoint(client, store)
    return profile


async def read_back(client: Redis, number: str) -> Profile:
    fresh = OwnedStore(client, profile_codec(LIMITS))
    await fresh.ensure([number])
    return fresh.get(number)


def test_profiles_the_call_stage_keeps_read_back_as_kept(redis_url: str) -> None:
    """Through the engine, batch after batch: eviction by the window, a quiet period, several callers;
    a worker that reads the profiles from Redis (after a restart or a rebalance) scores what this one does."""
    other = "17012349999"
    batches: list[list[CallRecord]] = [
        cold_calls(25, switch_at=12),  # an alert: a quiet period begins
        cold_calls(30, 3600, first=200, duration=90, caller=other) + cold_calls(5, 3000, first=100),
        cold_calls(4, WINDOW + 2000, first=300) + [call("late-ish", FRAUD, "13811112222", WINDOW + 1990)],
        cold_calls(LIMITS.max_calls_kept + 40, 2 * WINDOW, first=1000, step=20, caller=other),  # past the cap
    ]

    async def body(client: Redis) -> None:
        stage = CallStage(client, THRESHOLDS, BankingFacts(client, THRESHOLDS, DELAY).reached, DELAY)
        alerts = 0
        for batch in batches:
            sink = await run_stream(client, batch, stages=[stage])
            alerts += len(sink.on(ALERTS))
        assert alerts >= 1
        for number in (FRAUD, other):
            kept = stage.profiles.get(number)
            assert len(kept) > 0
            assert snapshot(await read_back(client, number)) == snapshot(kept)
        assert stage.profiles.get(FRAUD).alerted_until > 0
        assert len(stage.profiles.get(other)) == LIMITS.max_calls_kept

    on_redis(redis_url, body)


def test_a_batch_reads_nothing_back_and_writes_only_its_calls(redis_url: str) -> None:
    history = [out_call(c) for c in cold_calls(LIMITS.max_calls_kept, duration=90, step=30)]
    new = [out_call(c) for c in cold_calls(2, LIMITS.max_calls_kept * 30, first=5000)]

    async def body(client: Redis) -> None:
        codec = CountingCodec()
        store = OwnedStore(client, codec)
        await write_calls(client, store, FRAUD, history)
        assert codec.loaded == [FRAUD]
        stored = keys.FRAUD_NUMBER_CALLS.key(FRAUD)
        assert await client.zcard(stored) == LIMITS.max_calls_kept
        profile = await write_calls(client, store, FRAUD, new)
        assert codec.loaded == [FRAUD]  # the profile stayed in memory: no history read again
        assert [c.event_id for c in profile.window[-2:]] == [c.event_id for c in new]
        rows = [r if isinstance(r, bytes) else r.encode() for r in await client.zrange(stored, 0, -1)]
        listed = [raw.decode().split("\x1f")[0] for raw in rows]
        assert listed == [c.event_id for c in history[2:] + new]  # added, the oldest trimmed
        assert snapshot(await read_back(client, FRAUD)) == snapshot(profile)

    on_redis(redis_url, body)


def test_the_quiet_period_and_expiry_are_written(redis_url: str) -> None:
    calls = cold_calls(25, switch_at=12)

    async def body(client: Redis) -> None:
        store = OwnedStore(client, profile_codec(LIMITS))
        await store.ensure([FRAUD])
        profiles = store.states([FRAUD])
        result = detect(calls, profiles, lambda number, at: {}, LIMITS)
        assert len(result.alerts) == 1
        for number, change in result.changes.items():
            store.apply(store.stage(number, profiles[number], change).change)
        await checkpoint(client, store)
        again = await read_back(client, FRAUD)
        assert again.alerted_until == profiles[FRAUD].alerted_until == result.alerts[0].window_end.timestamp() + WINDOW
        assert detect(cold_calls(3, 2000, first=50), {FRAUD: again}, lambda n, at: {}, LIMITS).alerts == []
        for family in (keys.FRAUD_NUMBER_CALLS, keys.FRAUD_NUMBER_QUIET):
            assert 0 < await client.ttl(family.key(FRAUD)) <= 2 * WINDOW
        assert snapshot(await read_back(client, "13800000000")) == snapshot(Profile(LIMITS))

    on_redis(redis_url, body)


def test_a_late_call_at_the_cap_reads_back_as_kept(redis_url: str) -> None:
    full = [out_call(c) for c in cold_calls(LIMITS.max_calls_kept, 600, duration=90, step=30)]
    late = out_call(call("late", FRAUD, "13899990000", 300))

    async def body(client: Redis) -> None:
        store = OwnedStore(client, profile_codec(LIMITS))
        await write_calls(client, store, FRAUD, full)
        profile = await write_calls(client, store, FRAUD, [late])
        assert profile.window == full  # the late call is the oldest: past the cap, it goes at once
        assert snapshot(await read_back(client, FRAUD)) == snapshot(profile)

    on_redis(redis_url, body)


def test_an_event_id_with_a_space_reads_back(redis_url: str) -> None:
    kept = OutCall((T0.timestamp()), "cdr 2026 7", "13800000001", 8, False, PHONE_A)

    async def body(client: Redis) -> None:
        store = OwnedStore(client, profile_codec(LIMITS))
        profile = await write_calls(client, store, FRAUD, [kept])
        assert (await read_back(client, FRAUD)).window == profile.window == [kept]

    on_redis(redis_url, body)


def test_warned_victims_accumulate_and_read_back(redis_url: str) -> None:
    async def body(client: Redis) -> None:
        store = OwnedStore(client, WarnedCodec(3600))
        await store.ensure([FRAUD])
        assert store.get(FRAUD) == frozenset()
        store.apply(store.stage(FRAUD, frozenset({"13600000001"}), frozenset({"13600000001"})).change)
        store.apply(store.stage(FRAUD, frozenset({"13600000001", "13600000002"}), frozenset({"13600000002"})).change)
        await checkpoint(client, store)
        store.apply(
            store.stage(
                FRAUD, frozenset({"13600000001", "13600000002", "13600000003"}), frozenset({"13600000003"})
            ).change
        )
        await checkpoint(client, store)
        fresh = OwnedStore(client, WarnedCodec(3600))
        await fresh.ensure([FRAUD, "13900000000"])
        assert fresh.get(FRAUD) == store.get(FRAUD) == frozenset({"13600000001", "13600000002", "13600000003"})
        assert fresh.get("13900000000") == frozenset()
        assert 0 < await client.ttl(keys.WARNED.key(FRAUD)) <= 3600

    on_redis(redis_url, body)


@pytest.mark.parametrize("order", ["earliest_first", "latest_first"])
def test_who_called_a_number_keeps_the_earliest_call(redis_url: str, order: str) -> None:
    early, late = T0.timestamp() + 50, T0.timestamp() + 100
    writes = [early, late, early] if order == "earliest_first" else [late, early, late]

    def table(client: Redis) -> FactTable[tuple[str, float]]:
        return FactTable(
            client,
            keys.CALLED_BY,
            CalledByCodec(),
            delay=DELAY,
            keep_seconds=2 * WINDOW,
            margin_seconds=2 * DELAY,
            ttl_seconds=2 * WINDOW,
            earliest=True,
        )

    async def body(client: Redis) -> None:
        for at in writes:  # one checkpoint each: a replay writes the same call again
            writer = table(client)
            change = writer.add(FRAUD, at, ("13800000001", at))
            writer.apply(change.change)
            await checkpoint(client, writer)
        reader = table(client)
        await reader.ensure([FRAUD])
        assert reader.visible(FRAUD, early + DELAY - 1) == []
        assert reader.visible(FRAUD, late + DELAY) == [("13800000001", early)]
        assert 0 < await client.ttl(keys.CALLED_BY.key(FRAUD)) <= 2 * WINDOW

    on_redis(redis_url, body)
