"""The telecom stages against a real Redis, run by the engine (stages, pipeline, checkpoint): the window
store round-trips state and keys expire; the call stage scores, intercepts and warns victims once; link
SMS reach their cell the cross-entity delay later; the same records coming again alert once."""

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from antifraud import blocklist
from antifraud.blocklist import BlockEntry
from antifraud.events.models import CallRecord, CellObservation, GeoPoint, SimRegistration, SmsRecord
from antifraud.events.types import make_id_number
from antifraud.interceptions import decision_id_for, warning_id_for
from antifraud.state import keys
from antifraud.state.store import OwnedStore
from antifraud.state.window import WindowCodec
from antifraud.thresholds import load_thresholds
from detectors.window import EntityChange, EntityState, Seen
from streams.topics import ALERTS, INTERCEPTIONS, VICTIM_WARNINGS
from tests.redis_helpers import on_redis
from tests.stream_helpers import ListSink, run_stream
from tests.test_fraud_number import call, cold_calls

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)
THRESHOLDS = load_thresholds()
DELAY = THRESHOLDS.stream.cross_entity_delay_seconds
CAP = THRESHOLDS.interception.max_victim_warnings_per_number
LISTED = "17012340005"
ENTRY = BlockEntry(number=LISTED, action="block", reason="confirmed", source="case:9", listed_at=T0 - timedelta(days=1))


def produced(sink: ListSink, topic: str) -> list[dict[str, Any]]:
    return [orjson.loads(v) for v in sink.on(topic)]


def test_window_state_written_through_reads_back_and_expires(redis_url: str) -> None:
    state = EntityState(
        groups={
            "h": {"86000000000001": Seen(1.5, "e-1", "31.4 121.1 1 cmcc")},
            "s": {"e 2": Seen(2.0, "e 2", "sender\x1elink")},
        },
        alerted_until=99.0,
    )
    found: dict[str, EntityState] = {}

    async def body(client: Redis) -> None:
        store = OwnedStore(client, WindowCodec(keys.WINDOWS_CELL, ttl_seconds=60))
        await store.ensure(["cell-1"])
        change = EntityChange(
            upserts={(g, k): v for g, seen in state.groups.items() for k, v in seen.items()}, alerted_until=99.0
        )
        store.apply(store.stage("cell-1", state, change).change)
        async with client.pipeline(transaction=True) as pipe:
            store.queue(pipe)
            await pipe.execute()
        store.committed()
        dropped = EntityState(groups={"h": state.groups["h"]}, alerted_until=99.0)
        store.apply(store.stage("cell-1", dropped, EntityChange(removals={("s", "e 2")})).change)
        async with client.pipeline(transaction=True) as pipe:
            store.queue(pipe)
            await pipe.execute()
        again = OwnedStore(client, WindowCodec(keys.WINDOWS_CELL, ttl_seconds=60))
        await again.ensure(["cell-1", "cell-2"])
        found.update(again.states(["cell-1", "cell-2"]))
        assert found == {"cell-1": dropped, "cell-2": EntityState()}
        assert 0 < await client.ttl(keys.WINDOWS_CELL.key("cell-1")) <= 60

    on_redis(redis_url, body)
    assert found["cell-1"].alerted_until == 99.0


def test_stages_alert_once_when_the_same_records_come_again(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTIFRAUD_CELL_REGISTRY", raising=False)
    id_number = make_id_number("320585", "19900101", 321)
    sims = [
        SimRegistration(
            event_id=f"stage-sim-{i}",
            event_time=T0 + timedelta(days=i),
            carrier=c,
            id_number=id_number,
            msisdn=f"1700000{i:04d}",
            real_name_verified=True,
            outlet="o",
        )
        for i, c in enumerate(["cmcc", "unicom", "telecom"])
    ]
    texts = [
        SmsRecord(
            event_id=f"stage-sms-{i}",
            event_time=T0 + timedelta(days=3, minutes=i),
            sender="17100000009",
            receiver=f"1390000{i:04d}",
            cell_id="cell-1",
            link_domains=["icbc-verify.top"],
        )
        for i in range(3)
    ]
    seen: list[list[str]] = []

    async def body(client: Redis) -> None:
        for _ in range(2):  # the records, then the same records again (a producer's retry)
            sink = await run_stream(client, [*sims, *texts])
            seen.append(sorted(a["detector"] for a in produced(sink, ALERTS)))

    on_redis(redis_url, body)
    assert seen == [["phishing_sms", "sim_registration"], []]


def listed_calls() -> list[CallRecord]:
    """The listed number reaching five subscribers, the later ones for longer."""
    return [call(f"l{i}", LISTED, f"1360000{i:04d}", 10 + i, duration=10 * (i + 1)) for i in range(5)]


def test_the_call_stage_scores_intercepts_and_warns_each_victim_once(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTIFRAUD_CELL_REGISTRY", raising=False)
    cold = cold_calls(25, switch_at=12)  # crosses the score at its 20th call
    batch = [*listed_calls(), *cold]
    later = cold_calls(2, 3000, first=50)  # inside the alert's window, in a batch of its own
    sinks: list[ListSink] = []

    async def body(client: Redis) -> None:
        await blocklist.add(client, [ENTRY])
        for events in (batch, batch, later):  # the records, the same again, then the flagged number's next calls
            sinks.append(await run_stream(client, events))

    on_redis(redis_url, body)
    first, again, after = sinks
    crossed = cold[THRESHOLDS.fraud_number.min_distinct_callees - 1]
    assert [(a["detector"], a["trigger"]) for a in produced(first, ALERTS)] == [("fraud_number", crossed.event_id)]
    decisions = [(d["call_event_id"], d["action"], d["basis"]) for d in produced(first, INTERCEPTIONS)]
    assert decisions == (
        [(f"l{i}", "block", "block_list") for i in range(5)] + [(c.event_id, "warn", "fraud_score") for c in cold[19:]]
    )  # from the crossing call on
    warned = [(w["number"], w["victim"]) for w in produced(first, VICTIM_WARNINGS)]
    assert sorted(warned) == sorted({(c.caller, c.callee) for c in batch})  # everyone reached, once
    listed = [
        (w["victim"], w["rank"], w["warning_id"]) for w in produced(first, VICTIM_WARNINGS) if w["number"] == LISTED
    ]
    assert listed == [(f"1360000{i:04d}", 5 - i, warning_id_for(LISTED, f"1360000{i:04d}")) for i in reversed(range(5))]
    # The retry: no new alert, nobody warned again; the decisions are the same ones (same ids).
    assert produced(again, ALERTS) == [] and produced(again, VICTIM_WARNINGS) == []
    assert [d["decision_id"] for d in produced(again, INTERCEPTIONS)] == [
        d["decision_id"] for d in produced(first, INTERCEPTIONS)
    ]
    # Later calls of the flagged number: warned on, and only whom they newly reached is warned.
    assert produced(after, ALERTS) == []
    assert [d["decision_id"] for d in produced(after, INTERCEPTIONS)] == [decision_id_for(c.event_id) for c in later]
    assert sorted(w["victim"] for w in produced(after, VICTIM_WARNINGS)) == sorted(c.callee for c in later)


def test_victim_warnings_stay_within_the_cap_across_batches(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTIFRAUD_CELL_REGISTRY", raising=False)
    reached = [call(f"x{i}", LISTED, f"136{i:08d}", i, duration=1 + i % 50) for i in range(CAP + 5)]
    more = [call(f"y{i}", LISTED, f"137{i:08d}", 5000 + i, duration=600) for i in range(3)]
    warned: list[list[dict[str, Any]]] = []

    async def body(client: Redis) -> None:
        await blocklist.add(client, [ENTRY])
        for events in (reached, more):  # each run is a fresh engine: who was warned is read from Redis
            warned.append(produced(await run_stream(client, events), VICTIM_WARNINGS))

    on_redis(redis_url, body)
    first, second = warned
    assert len(first) == CAP and len({w["victim"] for w in first}) == CAP
    assert second == []  # the cap holds across batches, even for the longest calls yet


def downgrading_cell(cell: str, count: int, start: float) -> list[CellObservation]:
    """Handsets that see ``cell`` offer no ciphering: an anomaly, but too few handsets to be active."""
    return [
        CellObservation(
            event_id=f"obs-{i:04d}",
            event_time=T0 + timedelta(seconds=start + i * 5),
            cell_id=cell,
            lac=20000,
            operator="cmcc",
            signal_dbm=-50,
            encryption_level=0,
            handset_imei=f"8600000{i:07d}",
            location=GeoPoint(lat=31.45, lon=121.10),
        )
        for i in range(count)
    ]


@pytest.mark.parametrize("with_texts", [True, False], ids=["link_sms", "no_sms"])
def test_link_sms_reach_their_cell_the_delay_later(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, with_texts: bool
) -> None:
    monkeypatch.delenv("ANTIFRAUD_CELL_REGISTRY", raising=False)
    limits = THRESHOLDS.fake_base_station
    cell, spammer = "460-00-20000-9", "17100000001"
    observed = downgrading_cell(cell, limits.min_anomaly_handsets + 2, 0)
    texts = [
        SmsRecord(
            event_id=f"fbs-sms-{i}",
            event_time=T0 + timedelta(seconds=100 + i * 10),
            sender=spammer,
            receiver=f"1390000{i:04d}",
            cell_id=cell,
            link_domains=["icbc-verify.top"],
        )
        for i in range(limits.min_link_sms)
    ]
    events: Sequence[CellObservation | SmsRecord] = [*observed, *texts] if with_texts else observed
    newest = max(e.event_time for e in events).timestamp()
    alerts: list[dict[str, Any]] = []

    async def body(client: Redis) -> None:
        sink = await run_stream(client, events, until=newest + DELAY + 1)  # the last text's sighting is due
        alerts.extend(a for a in produced(sink, ALERTS) if a["detector"] == "fake_base_station")

    on_redis(redis_url, body)
    if not with_texts:
        assert alerts == []  # an anomaly without activity
        return
    by_kind = {a["entity"]["kind"]: a for a in alerts}
    assert sorted(by_kind) == ["cell", "phone"] and by_kind["phone"]["entity"]["value"] == spammer
    cell_alert = by_kind["cell"]
    assert cell_alert["entity"]["value"] == cell
    # Raised by the 20th text's sighting, told to the cell the cross-entity delay after it was sent.
    assert cell_alert["trigger"] == texts[-1].event_id
    end = datetime.fromisoformat(cell_alert["window_end"]).timestamp()
    assert end == texts[-1].event_time.timestamp() + DELAY
