"""The windowed telecom detectors against a real Redis: the store round-trips state, keys expire, and
the stages, run by the engine, alert once when the same records come again."""

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
import redis.asyncio

from antifraud.events.models import SimRegistration, SmsRecord
from antifraud.events.types import make_id_number
from antifraud.stack.embedded import EmbeddedStack
from antifraud.state import keys
from antifraud.state.store import OwnedStore
from antifraud.state.window import WindowCodec
from detectors.window import EntityChange, EntityState, Seen
from streams.topics import ALERTS
from tests.stream_helpers import run_stream

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with EmbeddedStack(workdir=tmp_path_factory.mktemp("redis"), kafka=False) as endpoints:
        yield endpoints.redis_url


def test_window_state_written_through_reads_back_and_expires(redis_url: str) -> None:
    state = EntityState(groups={"h": {"86000000000001": Seen(1.5, "e-1", "31.4 121.1 1 cmcc")},
                                "s": {"e 2": Seen(2.0, "e 2", "sender\x1elink")}}, alerted_until=99.0)

    async def scenario() -> tuple[dict[str, EntityState], int]:
        client = redis.asyncio.Redis.from_url(redis_url)
        store = OwnedStore(client, WindowCodec(keys.WINDOWS_CELL, ttl_seconds=60))
        await store.ensure(["cell-1"])
        change = EntityChange(upserts={(g, k): v for g, seen in state.groups.items() for k, v in seen.items()},
                              alerted_until=99.0)
        store.apply(store.stage("cell-1", state, change).change)
        async with client.pipeline(transaction=True) as pipe:
            store.queue(pipe)
            await pipe.execute()
        again = OwnedStore(client, WindowCodec(keys.WINDOWS_CELL, ttl_seconds=60))
        await again.ensure(["cell-1", "cell-2"])
        found = again.states(["cell-1", "cell-2"])
        ttl = await client.ttl(keys.WINDOWS_CELL.key("cell-1"))
        await client.aclose()
        return found, ttl

    found, ttl = asyncio.run(scenario())
    assert found == {"cell-1": state, "cell-2": EntityState()}
    assert 0 < ttl <= 60


def test_stages_alert_once_when_the_same_records_come_again(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTIFRAUD_CELL_REGISTRY", raising=False)
    id_number = make_id_number("320585", "19900101", 321)
    sims = [SimRegistration(event_id=f"stage-sim-{i}", event_time=T0 + timedelta(days=i), carrier=c,
                            id_number=id_number, msisdn=f"1700000{i:04d}", real_name_verified=True, outlet="o")
            for i, c in enumerate(["cmcc", "unicom", "telecom"])]
    texts = [SmsRecord(event_id=f"stage-sms-{i}", event_time=T0 + timedelta(days=3, minutes=i), sender="17100000009",
                       receiver=f"1390000{i:04d}", cell_id="cell-1", link_domains=["icbc-verify.top"])
             for i in range(3)]

    async def scenario() -> list[list[str]]:
        client = redis.asyncio.Redis.from_url(redis_url)
        seen = []
        for _ in range(2):  # the records, then the same records again (a producer's retry)
            sink = await run_stream(client, [*sims, *texts])
            seen.append(sorted(orjson.loads(v)["detector"] for v in sink.on(ALERTS)))
        await client.aclose()
        return seen

    assert asyncio.run(scenario()) == [["phishing_sms", "sim_registration"], []]
