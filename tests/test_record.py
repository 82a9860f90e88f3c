"""``antifraud record`` against the real (embedded) broker, and the record -> replay round trip."""

import gzip
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from antifraud.events.codec import decode_any, encode
from antifraud.stack.embedded import Endpoints
from streams.eventfile import read_lines
from streams.io import EventProducer
from streams.topics import INPUT_TOPICS
from tests.test_replay import (
    BAD_ID,
    BAD_LINES,
    antifraud,  # noqa: F401  (fixture)
    input_records,
    mixed_events,
    shuffled_in_blocks,
    write_lines,
)

CALLS = INPUT_TOPICS["call_record"]


def events_in(path: Path) -> list[str]:
    return [decode_any(raw).event_id for _, raw in read_lines(path)]


def produce(bootstrap: str, events: list, raw: list[tuple[str, bytes]] = ()) -> None:  # type: ignore[type-arg]
    producer = EventProducer(bootstrap)
    for event in events:
        producer.send(event)
    for topic, value in raw:
        producer.send_raw(topic, b"k", value)
    producer.flush()
    producer.close()


def test_a_recording_replays_to_the_same_records(
    stack: Endpoints, antifraud: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = mixed_events(24, step_s=3)
    original = write_lines(tmp_path / "original.jsonl.gz", (encode(e) for e in shuffled_in_blocks(events, 4)))
    assert antifraud("replay", original, "--bootstrap", stack.kafka_bootstrap) == 0
    first = input_records(stack.kafka_bootstrap)
    capsys.readouterr()

    recording = tmp_path / "recording.jsonl.gz"
    code = antifraud("record", "all-inputs", recording, "--idle-timeout", 1.5, "--bootstrap", stack.kafka_bootstrap)
    assert code == 0
    assert (
        "24 events written, 0 invalid records skipped, 0 late; stopped by --idle-timeout 1.5 s"
        in capsys.readouterr().out
    )
    assert recording.read_bytes()[:2] == b"\x1f\x8b"
    assert events_in(recording) == [e.event_id for e in events], "partitions interleaved, file in event-time order"

    assert antifraud("replay", recording, "--bootstrap", stack.kafka_bootstrap) == 0
    both = input_records(stack.kafka_bootstrap)
    second = [
        r for r in both if (r.topic, r.partition, r.offset) not in {(f.topic, f.partition, f.offset) for f in first}
    ]

    def per_partition(records: list) -> dict:  # type: ignore[type-arg]
        ordered = sorted(records, key=lambda r: (r.topic, r.partition, r.offset))
        return {
            (r.topic, r.partition): [
                (x.key, x.value) for x in ordered if (x.topic, x.partition) == (r.topic, r.partition)
            ]
            for r in ordered
        }

    assert len(second) == 24
    assert per_partition(second) == per_partition(first)


def test_invalid_records_are_counted_and_skipped_with_where_and_why_only(
    stack: Endpoints, antifraud: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    call, sms = mixed_events(2)
    produce(stack.kafka_bootstrap, [call], raw=[(CALLS, BAD_LINES[0]), (CALLS, BAD_LINES[1]), (CALLS, encode(sms))])
    path = tmp_path / "calls.jsonl"
    assert antifraud("record", CALLS, path, "--idle-timeout", 1, "--bootstrap", stack.kafka_bootstrap) == 0
    captured = capsys.readouterr()
    assert "1 events written, 3 invalid records skipped" in captured.out
    warnings = re.findall(r"antifraud\.call-records\[\d\]@\d+: (\w+): .* \(skipped\)", captured.err)
    assert sorted(warnings) == ["malformed_json", "schema_violation", "schema_violation"]
    assert "kind: Input should be 'call_record'" in captured.err, "an SMS on the calls topic is not a call"
    assert BAD_ID not in captured.err + captured.out
    assert path.read_bytes()[:1] == b"{", "a .jsonl name writes plain lines"
    assert events_in(path) == [call.event_id]


def test_max_records_stops_after_reading_that_many(
    stack: Endpoints, antifraud: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = mixed_events(20)[::4]  # call records only, all on one topic
    produce(stack.kafka_bootstrap, calls)
    path = tmp_path / "three.jsonl.gz"
    assert antifraud("record", CALLS, path, "--max-records", 3, "--bootstrap", stack.kafka_bootstrap) == 0
    assert "3 events written" in capsys.readouterr().out
    assert len(events_in(path)) == 3 and set(events_in(path)) < {c.event_id for c in calls}


def test_from_end_records_only_new_records_and_ctrl_c_leaves_a_whole_file(stack: Endpoints, tmp_path: Path) -> None:
    calls = mixed_events(20)[::4]
    for old in calls[:3]:  # one record per batch: Tansu reports a partition's end as its last batch's first offset + 1
        produce(stack.kafka_bootstrap, [old])
    path = tmp_path / "live.jsonl.gz"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "antifraud",
            "record",
            CALLS,
            str(path),
            "--from-end",
            "--bootstrap",
            stack.kafka_bootstrap,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    assert "recording 1 topic(s) from the end" in proc.stderr.readline(), "positions are resolved before this line"
    produce(stack.kafka_bootstrap, calls[3:])
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)

    assert proc.returncode == 130, err
    assert "2 events written, 0 invalid records skipped, 0 late; stopped by SIGINT" in out
    gzip.decompress(path.read_bytes())  # raises on a missing trailer
    assert events_in(path) == [c.event_id for c in calls[3:]]


def test_a_topic_that_does_not_exist_is_named(
    stack: Endpoints, antifraud: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        antifraud("record", "no-such-topic", tmp_path / "x.jsonl.gz", "--bootstrap", stack.kafka_bootstrap)
    assert exit_.value.code == 2
    assert "topic 'no-such-topic' does not exist" in capsys.readouterr().err
