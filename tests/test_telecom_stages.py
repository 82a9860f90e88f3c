"""The windowed telecom detectors against a real Redis: the store round-trips state, keys expire,
and the stages alert once across a replay of a flushed batch."""

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis.asyncio

from antifraud.events.models import SimRegistration, SmsRecord
from antifraud.events.types import make_id_number
from antifraud.stack.embedded import EmbeddedStack
from antifraud.state.window import WindowStore
from antifraud.thresholds import load_thresholds
from detectors.window import EntityChange, EntityState, Seen
from streams.stages import build_stages
from tests.windowing import fold

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with EmbeddedStack(workdir=tmp_path_factory.mktemp("redis"), kafka=False) as endpoints:
        yield endpoints.redis_url


def test_store_round_trips_changes_and_sets_expiry(redis_url: str) -> None:
    change = EntityChange(
        upserts={("h", "86000000000001"): Seen(1.5, "e-1", "31.4 121.1 1 cmcc"), ("s", "e 2"): Seen(2.0, "e 2", "")},
        alerted_until=99.0,
    )

    async def scenario() -> tuple[dict[str, EntityState], dict[str, EntityState], int]:
        client = redis.asyncio.Redis.from_url(redis_url)
        store = WindowStore(client, prefix="test-rt:", ttl_seconds=60)
        await store.apply({"cell-1": change})
        await store.apply({"cell-1": change})  # twice: harmless
        first = await store.load(["cell-1", "cell-2"])
        await store.apply({"cell-1": EntityChange(removals={("s", "e 2")})})
        second = await store.load(["cell-1"])
        ttl = await client.ttl("test-rt:cell-1")
        await client.aclose()
        return first, second, ttl

    first, second, ttl = asyncio.run(scenario())
    assert first == fold({}, {"cell-1": change})
    assert second == fold(first, {"cell-1": EntityChange(removals={("s", "e 2")})})
    assert 0 < ttl <= 60


def test_stages_alert_once_across_a_replayed_batch(redis_url: str, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.delenv("ANTIFRAUD_CELL_REGISTRY", raising=False)
    id_number = make_id_number("320585", "19900101", 321)
    sims = [SimRegistration(event_id=f"stage-sim-{i}", event_time=T0 + timedelta(days=i), carrier=c,
                            id_number=id_number, msisdn=f"1700000{i:04d}", real_name_verified=True, outlet="o")
            for i, c in enumerate(["cmcc", "unicom", "telecom"])]
    texts = [SmsRecord(event_id=f"stage-sms-{i}", event_time=T0 + timedelta(minutes=i), sender="17100000009",
                       receiver=f"1390000{i:04d}", cell_id="cell-1", link_domains=["icbc-verify.top"])
             for i in range(3)]

    async def scenario() -> list[list[str]]:
        client = redis.asyncio.Redis.from_url(redis_url)
        stages = build_stages(client, load_thresholds())
        seen = []
        for kind, events in (("sim_registration", sims), ("sms_record", texts)):
            for _ in range(2):  # the batch, then its replay after the flush
                alerts = []
                for stage in stages[kind]:
                    outcome = await stage(events)
                    alerts += outcome.alerts
                    await outcome.flush_state()
                seen.append(sorted(a.detector for a in alerts))
        await client.aclose()
        return seen

    assert asyncio.run(scenario()) == [["sim_registration"], [], ["phishing_sms"], []]
