"""``antifraud detect``: the runner that feeds detector stages from a file without Kafka."""

import asyncio
import gzip
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import redis.asyncio

from antifraud.alerts.models import Alert
from antifraud.events.codec import encode
from antifraud.events.models import CallRecord, Event, SmsRecord
from antifraud.state.store import Store
from antifraud.thresholds import load_thresholds
from streams.offline import DetectReport, batches, detect_file
from streams.pipeline import StageResult
from streams.records import Input, Item, Timer
from tests.test_pipeline import event_alert

BASE = datetime(2026, 3, 2, tzinfo=timezone.utc)


def call(n: int) -> CallRecord:
    at = BASE + timedelta(seconds=n)
    return CallRecord(
        event_id=f"call-{n}",
        event_time=at,
        caller="13800000001",
        callee=f"1390000{n:04d}",
        start=at,
        duration_s=5,
        cell_id="c1",
        imei="860000000000001",
    )


def sms(n: int) -> SmsRecord:
    return SmsRecord(
        event_id=f"sms-{n}",
        event_time=BASE + timedelta(seconds=n),
        sender="13700000001",
        receiver="13900000001",
        cell_id="c1",
    )


class RecordingStage:
    """Alerts on every tenth call it runs and logs the items it was given, piece by piece."""

    name = "recording"
    kinds = frozenset({"call_record", "sms_record"})
    timer_kinds: frozenset[str] = frozenset()
    stores: Sequence[Store] = ()

    def __init__(self) -> None:
        self.pieces: list[list[str]] = []

    async def prefetch(self, inputs: Sequence[Input], timers: Sequence[Timer], bound: float) -> None:
        pass

    async def run(self, items: Sequence[Item]) -> StageResult:
        events = [i.event for i in items if isinstance(i, Input)]
        self.pieces.append([e.event_id for e in events])
        return StageResult(
            alerts=[
                event_alert("every_tenth", "13800000001", e, "n", 1)
                for e in events
                if e.kind == "call_record" and e.event_id.endswith("0")
            ]
        )


def test_feeds_every_kind_in_event_time_order_skips_bad_lines_and_writes_the_alerts(
    tmp_path: Path, redis_url: str
) -> None:
    events: list[Event] = sorted(
        [*(call(n) for n in range(25)), *(sms(n) for n in range(3))], key=lambda e: (e.event_time, e.event_id)
    )
    path = tmp_path / "events.jsonl.gz"
    with gzip.open(path, "wb") as out:
        out.write(encode(events[0]) + b"\n" + b"not json\n")
        out.writelines(encode(e) + b"\n" for e in events[1:])
    stage = RecordingStage()
    written: list[bytes] = []

    async def run() -> DetectReport:
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            return await detect_file(path, client, load_thresholds(), written.append, chunk_size=10, stages=[stage])
        finally:
            await client.aclose()

    report = asyncio.run(run())
    assert report.events == {"call_record": 25, "sms_record": 3}
    assert report.bad_lines == 1
    assert report.alerts == {"every_tenth": 3}
    assert [Alert.model_validate_json(raw).trigger for raw in written] == ["call-0", "call-10", "call-20"]
    seen = sum(stage.pieces, [])
    assert seen == [e.event_id for e in events], "each event once, both kinds, in event-time order"


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "antifraud", "detect", str(tmp_path / "none.gz"), "-o", str(tmp_path / "a.jsonl")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"no events file {tmp_path / 'none.gz'}" in result.stderr


def test_a_file_a_little_out_of_order_is_cut_where_every_earlier_event_is_in(tmp_path: Path) -> None:
    """Batches end only where the next event is later than every event before it: each batch's events are
    older than its bound (a pipeline refuses a batch that is not), and every event is run once."""
    order = [0, 2, 1, 3, 5, 4, 8, 6, 7, 9, 12, 10, 11, 13]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(encode(call(n)) + b"\n" for n in order))
    report = DetectReport()
    cut = list(batches(path, 2, 30.0, report))
    assert [[int(i.event.event_id.split("-")[1]) for i in b] for b, _ in cut] == [
        [0, 2, 1],
        [3, 5, 4],
        [8, 6, 7],
        [9, 12, 10, 11],
        [13],
    ]
    assert all(i.at < bound for b, bound in cut for i in b)
    assert sum(report.events.values()) == len(order)
