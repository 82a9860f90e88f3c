"""``antifraud detect``: the runner that feeds detector stages from a file without Kafka."""

import asyncio
import gzip
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

from antifraud.alerts.models import Alert, Audience, Entity, Reason
from antifraud.events.codec import encode
from antifraud.events.models import CallRecord, Event, SmsRecord
from streams.batch import Outcome
from streams.offline import detect_file

BASE = datetime(2026, 3, 2, tzinfo=timezone.utc)


def call(n: int) -> CallRecord:
    at = BASE + timedelta(seconds=n)
    return CallRecord(event_id=f"call-{n}", event_time=at, caller="13800000001", callee=f"1390000{n:04d}",
                      start=at, duration_s=5, cell_id="c1", imei="860000000000001")


def sms(n: int) -> SmsRecord:
    return SmsRecord(event_id=f"sms-{n}", event_time=BASE + timedelta(seconds=n), sender="13700000001",
                     receiver="13900000001", cell_id="c1")


class RecordingStage:
    """Alerts on every tenth event it sees and logs what happened, in order."""

    def __init__(self, log: list[str], batches: list[list[str]]) -> None:
        self.log = log
        self.batches = batches

    async def __call__(self, events: Sequence[Event]) -> Outcome:
        self.log.append("batch")
        self.batches.append([e.event_id for e in events])
        alerts = [
            Alert.create(detector="every_tenth", entity=Entity(kind="phone", value="13800000001"),
                         window_start=e.event_time, window_end=e.event_time, severity="low", score=1.0,
                         reasons=[Reason(feature="n", value=1, threshold=1)], evidence_event_ids=[e.event_id],
                         audience=[Audience(kind="police")])
            for e in events if e.event_id.endswith("0")
        ]

        async def flush() -> None:
            self.log.append("flush")

        return Outcome(alerts=alerts, flush_state=flush)


def test_feeds_each_kind_in_event_time_chunks_and_flushes_after_alerts(tmp_path: Path) -> None:
    events: list[Event] = sorted([*(call(n) for n in range(25)), *(sms(n) for n in range(3))],
                                 key=lambda e: (e.event_time, e.event_id))
    path = tmp_path / "events.jsonl.gz"
    with gzip.open(path, "wb") as out:
        out.write(encode(events[0]) + b"\n" + b"not json\n")
        out.writelines(encode(e) + b"\n" for e in events[1:])
    log: list[str] = []
    batches: list[list[str]] = []
    report = asyncio.run(detect_file(path, {"call_record": [RecordingStage(log, batches)]},
                                     lambda alert: log.append(f"alert {alert.evidence_event_ids[0]}"), chunk_size=10))

    assert report.events == {"call_record": 25, "sms_record": 3}
    assert report.bad_lines == 1
    assert report.alerts == {"every_tenth": 3}
    assert len(batches) == 3, "28 valid lines in chunks of 10: three batches of calls, SMS have no stage"
    assert sum(batches, []) == [f"call-{n}" for n in range(25)], "each call once, in event-time order"
    # Every batch's alerts are handed over before its state is flushed.
    assert log.index("alert call-0") < log.index("flush") and log[-1] == "flush"
    assert log.index("alert call-10") < [i for i, entry in enumerate(log) if entry == "flush"][1]


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "antifraud", "detect", str(tmp_path / "none.gz"), "-o",
                             str(tmp_path / "a.jsonl")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"no events file {tmp_path / 'none.gz'}" in result.stderr
