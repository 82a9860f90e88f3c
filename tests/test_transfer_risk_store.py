"""The transfer-risk Redis store on a real redis-server: round trip, the joins it reads, idempotent, bounded."""

import asyncio
from datetime import timedelta

from redis.asyncio import Redis

from antifraud.interceptions import VictimWarning, warning_id_for
from antifraud.state.interception import WarnedStore
from antifraud.state.transfer_risk import BLACKLIST, TransferRiskStore
from detectors.transfer_risk import Call, Context, detect
from tests.test_transfer_risk import FRAUD_NUMBER, LIMITS, MULE, T0, VICTIM, VICTIM_PHONE, _mule_day, fold, transfer


def test_round_trip_joins_and_replays_change_nothing(redis_url: str) -> None:
    paid = transfer("v", 30, VICTIM, MULE, 3_000, channel="counter", phone=VICTIM_PHONE)
    batch = [*_mule_day(), paid]
    warning = VictimWarning(
        warning_id=warning_id_for(FRAUD_NUMBER, VICTIM_PHONE), number=FRAUD_NUMBER, victim=VICTIM_PHONE,
        basis="fraud_score", rank=1, longest_call_s=900, calls=1, last_call_at=T0, called_back=False,
    )

    async def run() -> None:
        client = Redis.from_url(redis_url)
        store = TransferRiskStore.configured(client, LIMITS)
        try:
            await WarnedStore(client, ttl_seconds=3600).apply([warning])
            await client.sadd(BLACKLIST, "6222000000000999")
            accounts = {t.payer_account for t in batch} | {t.payee_account for t in batch}
            prior, ctx = await store.load(accounts, {MULE, "6222000000000999"}, {VICTIM_PHONE, "13900000002"})
            assert prior == {}
            assert ctx.blacklisted == {"6222000000000999"}
            assert ctx.reached == {VICTIM_PHONE: {FRAUD_NUMBER: Call(T0.timestamp(), 900)}}
            result = detect(batch, prior, ctx, LIMITS)
            assert any(a.entity.value == MULE for a in result.alerts)
            payers = {t.payer_account for t in batch}
            await store.apply(result.states, payers)
            loaded, _ = await store.load(accounts, (), ())
            assert loaded == fold({}, result)
            replay = detect(batch, loaded, ctx, LIMITS)
            assert replay.alerts == [] and replay.states == {}
            await store.apply(result.states, payers)  # a flush written twice
            assert (await store.load(accounts, (), ()))[0] == loaded
            for key in ("tr:out:", "tr:in:", "tr:flag:"):
                assert 0 < await client.ttl(key + MULE) <= LIMITS.history_days * 86400
            assert 0 < await client.ttl("iv:reached:" + VICTIM_PHONE) <= 3600
        finally:
            await client.aclose()

    asyncio.run(run())


def test_flows_are_trimmed_to_their_horizons(redis_url: str) -> None:
    old = transfer("old", -60 * 24 * (LIMITS.history_days + 1), VICTIM, MULE, 2_000)
    new = transfer("new", 0, VICTIM, "6222000000000123", 2_000)

    async def run() -> None:
        client = Redis.from_url(redis_url)
        store = TransferRiskStore.configured(client, LIMITS)
        try:
            first = detect([old], {}, Context(), LIMITS)
            await store.apply(first.states, {VICTIM})
            prior, _ = await store.load({VICTIM, MULE, "6222000000000123"}, (), ())
            second = detect([new], prior, Context(), LIMITS)
            assert [f.event_id for f in second.states[VICTIM].outflows] == ["new"]
            assert second.states[VICTIM].outflows[0].at - old.event_time.timestamp() > timedelta(days=30).total_seconds()
        finally:
            await client.aclose()

    asyncio.run(run())


def test_two_workers_paying_one_mule_both_keep_their_inflows(redis_url: str) -> None:
    """Transfers are partitioned by payer: two workers write the same payee's inflows concurrently."""
    one = transfer("a", 0, "6222000000000011", MULE, 30_000, payer_name="甲")
    two = transfer("b", 1, "6222000000000012", MULE, 30_000, payer_name="乙")

    async def run() -> None:
        client = Redis.from_url(redis_url)
        store = TransferRiskStore.configured(client, LIMITS)
        try:
            prior_one, _ = await store.load({one.payer_account, MULE}, (), ())
            prior_two, _ = await store.load({two.payer_account, MULE}, (), ())
            first = detect([one], prior_one, Context(), LIMITS)
            second = detect([two], prior_two, Context(), LIMITS)
            await store.apply(first.states, {one.payer_account})
            await store.apply(second.states, {two.payer_account})
            loaded, _ = await store.load({MULE}, (), ())
            assert [f.event_id for f in loaded[MULE].inflows] == ["a", "b"]
        finally:
            await client.aclose()

    asyncio.run(run())
