"""The fraud-number Redis store on a real redis-server: round trip, idempotent writes, bounded keys."""

import asyncio

from redis.asyncio import Redis

from antifraud.state.fraud_number import FraudNumberStore
from antifraud.thresholds import load_thresholds
from detectors.fraud_number import detect
from tests.test_fraud_number import EPISODES, FRAUD, call, fold

LIMITS = load_thresholds().fraud_number


def test_round_trip_matches_the_pure_fold_and_replays_change_nothing(redis_url: str) -> None:
    backs = [call("back-1", "13800000001", FRAUD, 100), call("back-1b", "13800000001", FRAUD, 50),
             call("spaced id 7", FRAUD, "13800009999", 30)]
    batch = EPISODES + backs

    async def run() -> None:
        client = Redis.from_url(redis_url)
        store = FraudNumberStore(client, profile_window_seconds=LIMITS.profile_window_seconds)
        try:
            prior = await store.load({c.caller for c in batch} | {c.callee for c in batch})
            assert prior == {}
            result = detect(batch, prior, LIMITS)
            await store.apply(prior, result)
            expected = fold({}, result)
            loaded = await store.load(expected)
            assert loaded == {n: s for n, s in expected.items() if s.calls or s.called_by}
            # The earliest callback is kept whichever order or how often it is written.
            assert loaded[FRAUD].called_by["13800000001"] == backs[1].event_time.timestamp()
            replay = detect(batch, loaded, LIMITS)
            assert replay.alerts == []
            await store.apply(loaded, replay)
            assert await store.load(expected) == loaded
            ttl = await client.ttl("fn:out:" + FRAUD)
            assert 0 < ttl <= 2 * LIMITS.profile_window_seconds
            assert 0 < await client.ttl("fn:in:" + FRAUD) <= 2 * LIMITS.profile_window_seconds
        finally:
            await client.aclose()

    asyncio.run(run())
