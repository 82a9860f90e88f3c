"""``antifraud replay`` against the real (embedded) broker: order, pace, bad lines, interrupts.

Record timestamps are the send times, so they show both the order and the
pace of sending. Wall-clock checks are lower bounds or ratios: CI is slow.
"""

import gzip
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from antifraud import cli
from antifraud.events.codec import decode_any, encode
from antifraud.events.models import BankTransfer, CallRecord, CardOpening, Event, SmsRecord
from antifraud.events.types import make_id_number as id_number
from antifraud.stack.embedded import Endpoints
from streams import replay
from streams.topics import INPUT_TOPICS
from tests.kafka_helpers import read_all

BASE = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)

FACTORIES: dict[str, Callable[[int, datetime], Event]] = {
    "call_record": lambda n, at: CallRecord(
        event_id=f"call-{n}",
        event_time=at,
        caller=f"1380000{n % 3:04d}",
        callee=f"1390000{n:04d}",
        start=at - timedelta(seconds=30),
        duration_s=30,
        cell_id="cell-1",
        imei="860000000000001",
    ),
    "sms_record": lambda n, at: SmsRecord(
        event_id=f"sms-{n}", event_time=at, sender=f"1370000{n % 2:04d}", receiver="13900000001", cell_id="cell-2"
    ),
    "bank_transfer": lambda n, at: BankTransfer(
        event_id=f"tx-{n}",
        event_time=at,
        channel="online",
        payer_account=f"62220000{n:08d}",
        payer_name="王伟",
        payer_id_number=id_number("320585", "19800101", n % 1000),
        payee_account="6222000099999999",
        payee_name="李娜",
        amount_fen=10_000 + n,
    ),
    "card_opening": lambda n, at: CardOpening(
        event_id=f"card-{n}",
        event_time=at,
        bank="icbc",
        id_number=id_number("320585", "19900101", n % 1000),
        account=f"62220001{n:08d}",
        branch_id="br-1",
        channel="counter",
    ),
}
KINDS = list(FACTORIES)


def mixed_events(count: int, *, step_s: float = 1.0, offsets: Iterable[float] | None = None) -> list[Event]:
    """Valid events cycling through four kinds, ``step_s`` apart (or at ``offsets`` seconds), in event-time order."""
    times = list(offsets) if offsets is not None else [n * step_s for n in range(count)]
    return [FACTORIES[KINDS[n % len(KINDS)]](n, BASE + timedelta(seconds=t)) for n, t in enumerate(times)]


def write_lines(path: Path, lines: Iterable[bytes]) -> Path:
    """An events file written by hand (gzip), so the reader is tested against the format, not its own writer."""
    with gzip.open(path, "wb") as out:
        out.writelines(line + b"\n" for line in lines)
    return path


def shuffled_in_blocks(events: list[Event], block: int) -> list[Event]:
    """Each block of ``block`` events reversed: out of order by at most ``block - 1`` positions."""
    return [e for i in range(0, len(events), block) for e in reversed(events[i : i + block])]


@pytest.fixture
def antifraud(monkeypatch: pytest.MonkeyPatch) -> Callable[..., int]:
    """``antifraud.cli.main`` in-process."""
    return lambda *argv: cli.main([str(a) for a in argv])


def input_records(bootstrap: str) -> list[Any]:
    """Every record on every input topic, sorted by record timestamp (send time), then topic and offset."""
    with ThreadPoolExecutor(len(INPUT_TOPICS)) as pool:
        per_topic = pool.map(lambda t: read_all(bootstrap, t, settle=0.8), INPUT_TOPICS.values())
    return sorted((r for records in per_topic for r in records), key=lambda r: (r.timestamp, r.topic, r.offset))


def ids(records: Iterable[Any]) -> list[str]:
    return [decode_any(r.value).event_id for r in records]


def sent_count(stdout: str) -> int:
    match = re.search(r": (\d+) sent, (\d+) bad lines skipped", stdout)
    assert match, stdout
    return int(match.group(1))


def test_out_of_order_lines_are_sent_in_event_time_order_to_each_kinds_topic(
    stack: Endpoints, antifraud: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = mixed_events(16)
    file_order = shuffled_in_blocks(events, 5)
    assert file_order != events
    path = write_lines(tmp_path / "shuffled.jsonl.gz", (encode(e) for e in file_order))

    assert antifraud("replay", path, "--speed", 20, "--bootstrap", stack.kafka_bootstrap) == 0
    out = capsys.readouterr().out
    assert "16 sent, 0 bad lines skipped, 0 late, 0 failed" in out

    records = input_records(stack.kafka_bootstrap)
    assert len({r.timestamp for r in records}) == 16, "50 ms apart at speed 20: every send time distinct"
    assert ids(records) == [e.event_id for e in events], "global send order is event-time order"
    by_id = {e.event_id: e for e in events}
    for r in records:
        event = by_id[decode_any(r.value).event_id]
        assert r.topic == INPUT_TOPICS[event.kind]
        assert r.key == event.partition_key().encode()
    for topic in INPUT_TOPICS.values():
        on_topic = sorted((r for r in records if r.topic == topic), key=lambda r: (r.partition, r.offset))
        for partition in {r.partition for r in on_topic}:
            times = [by_id[i].event_time for i in ids(r for r in on_topic if r.partition == partition)]
            assert times == sorted(times), f"{topic}[{partition}] in event-time order"


def test_an_event_older_than_one_already_sent_is_reported_and_still_sent(
    stack: Endpoints, antifraud: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = mixed_events(5, step_s=10)  # event times 0, 10, 20, 30, 40 s
    file_order = [events[0], events[2], events[4], events[1], events[3]]
    path = write_lines(tmp_path / "late.jsonl.gz", (encode(e) for e in file_order))

    assert antifraud("replay", path, "--reorder-window", 15, "--bootstrap", stack.kafka_bootstrap) == 0
    captured = capsys.readouterr()
    assert "5 sent, 0 bad lines skipped, 1 late" in captured.out
    # line 3 (40 s) lets everything up to 25 s go, so 20 s is sent before line 4 (10 s) is read; 30 s is in time
    assert "line 4: event time 10.000 s before an event already sent" in captured.err
    assert "line 5" not in captured.err
    assert sorted(ids(input_records(stack.kafka_bootstrap))) == sorted(e.event_id for e in events)


def test_speed_n_spaces_sends_by_event_time_over_n_and_max_is_far_faster(
    stack: Endpoints, antifraud: Callable[..., int], tmp_path: Path
) -> None:
    offsets = [0, 2, 7, 8, 15, 22, 30]
    events = mixed_events(len(offsets), offsets=offsets)
    path = write_lines(tmp_path / "paced.jsonl.gz", (encode(e) for e in events))

    started = time.monotonic()
    assert antifraud("replay", path, "--speed", 10, "--bootstrap", stack.kafka_bootstrap) == 0
    assert time.monotonic() - started >= 3.0
    assert antifraud("replay", path, "--max", "--bootstrap", stack.kafka_bootstrap) == 0

    records = input_records(stack.kafka_bootstrap)
    paced, fastest = records[:7], records[7:]
    assert ids(paced) == [e.event_id for e in events]
    assert sorted(ids(fastest)) == sorted(e.event_id for e in events)  # send times tie at --max: no order to see
    sent_at = [(r.timestamp - paced[0].timestamp) / 1000 for r in paced]
    for offset, actual in zip(offsets, sent_at):
        # The reference is the first record's producer timestamp, taken after kafka-python's first
        # metadata fetch, so it can be a few ms late: the others may then look a few ms early.
        assert offset / 10 - 0.02 <= actual <= offset / 10 + 0.25, (offsets, sent_at)
    span_paced = sent_at[-1]
    span_fastest = (fastest[-1].timestamp - fastest[0].timestamp) / 1000
    assert span_fastest < span_paced / 5, (span_fastest, span_paced)


def test_pace_options_parse_to_a_speed(antifraud: Callable[..., int]) -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["replay", "f"]).speed is None
    assert parser.parse_args(["replay", "f", "--realtime"]).speed == 1.0
    assert parser.parse_args(["replay", "f", "--speed", "2.5"]).speed == 2.5
    with pytest.raises(SystemExit):
        parser.parse_args(["replay", "f", "--speed", "0"])
    with pytest.raises(SystemExit):
        parser.parse_args(["replay", "f", "--max", "--realtime"])


BAD_ID = id_number("320585", "19700101", 7)[:17] + "Y"
BAD_LINES = [
    b"this is not json",
    (
        b'{"kind": "card_opening", "event_id": "card-bad", "event_time": "2026-03-01T08:00:00Z", "bank": "icbc",'
        b' "id_number": "%s", "account": "62220001000000", "branch_id": "br-1", "channel": "counter"}' % BAD_ID.encode()
    ),
]


def file_with_bad_lines(tmp_path: Path) -> tuple[Path, list[Event]]:
    """Lines 1 and 4 valid, 2 not JSON, 3 an invalid event carrying an ID number."""
    good = mixed_events(2)
    return write_lines(tmp_path / "bad.jsonl.gz", [encode(good[0]), *BAD_LINES, encode(good[1])]), good


def test_bad_lines_are_reported_by_number_and_reason_without_values_and_skipped(
    stack: Endpoints, antifraud: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, good = file_with_bad_lines(tmp_path)
    assert antifraud("replay", path, "--bootstrap", stack.kafka_bootstrap) == 0
    captured = capsys.readouterr()
    assert "line 2: malformed_json: " in captured.err
    assert "line 3: schema_violation: card_opening.id_number: " in captured.err
    assert BAD_ID not in captured.err + captured.out
    assert "2 sent, 2 bad lines skipped" in captured.out
    assert ids(input_records(stack.kafka_bootstrap)) == [e.event_id for e in good]


def test_strict_stops_at_the_first_bad_line_with_exit_1(
    stack: Endpoints, antifraud: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, good = file_with_bad_lines(tmp_path)
    code = antifraud("replay", path, "--strict", "--reorder-window", 0, "--bootstrap", stack.kafka_bootstrap)
    assert code == 1
    captured = capsys.readouterr()
    assert "line 2: malformed_json" in captured.err and "stopping: --strict" in captured.err
    assert "line 3" not in captured.err
    assert "stopped by bad line 2 (--strict) at line 1" in captured.out
    assert ids(input_records(stack.kafka_bootstrap)) == [good[0].event_id]


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupt_flushes_what_was_sent_reports_how_far_and_exits_non_zero(
    stack: Endpoints, tmp_path: Path, signum: signal.Signals, exit_code: int
) -> None:
    events = mixed_events(100)
    path = write_lines(tmp_path / "long.jsonl.gz", (encode(e) for e in events))
    proc = subprocess.Popen(
        [sys.executable, "-m", "antifraud", "replay", str(path), "--speed", "10", "--bootstrap", stack.kafka_bootstrap],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while len(read_all(stack.kafka_bootstrap, INPUT_TOPICS["call_record"], settle=0.3)) < 3:
        assert time.monotonic() < deadline and proc.poll() is None, "replay never got going"
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)

    assert proc.returncode == exit_code, err
    sent = sent_count(out)
    assert 9 <= sent < 100
    last = sorted(events, key=lambda e: e.event_time)[sent - 1]
    assert f"stopped by {signum.name} at line {sent}, event time {replay.iso(last.event_time)}" in out
    assert sorted(ids(input_records(stack.kafka_bootstrap))) == sorted(e.event_id for e in events[:sent])


def test_without_a_bootstrap_it_says_how_to_give_one(
    antifraud: Callable[..., int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP", raising=False)
    with pytest.raises(SystemExit) as exit_:
        antifraud("replay", write_lines(tmp_path / "one.jsonl.gz", [encode(mixed_events(1)[0])]))
    assert exit_.value.code == 2
    assert "pass --bootstrap HOST:PORT or set KAFKA_BOOTSTRAP" in capsys.readouterr().err
