"""The events file and the reorder buffer, without Kafka."""

import gzip
import math
from pathlib import Path

import pytest

from antifraud.events.codec import decode_any
from streams.eventfile import EventFileError, EventFileWriter, ReorderBuffer, read_lines
from tests.test_replay import mixed_events


def released(buffer: ReorderBuffer[str], pushes: list[tuple[float, str]]) -> tuple[list[str], list[float]]:
    """Push all, taking what is ready after each push, then drain: (release order, lateness per push)."""
    out: list[str] = []
    lateness = []
    for time, item in pushes:
        lateness.append(buffer.push(time, item))
        out += [i for _, i in buffer.ready()]
    out += [i for _, i in buffer.drain()]
    return out, lateness


def test_disorder_within_the_window_comes_out_sorted_and_holds_only_one_window() -> None:
    buffer: ReorderBuffer[str] = ReorderBuffer(window=5)
    pushes = [(0, "a"), (3, "c"), (1, "b"), (9, "e"), (6, "d"), (20, "f")]
    order, lateness = released(buffer, pushes)
    assert order == ["a", "b", "c", "d", "e", "f"]
    assert lateness == [0] * 6
    buffer.push(30, "g")
    assert len(buffer) == 1 and buffer.released == 20


def test_an_item_older_than_one_released_is_reported_late_and_released_next() -> None:
    order, lateness = released(ReorderBuffer(window=2), [(0, "a"), (10, "c"), (4, "b"), (11, "d")])
    assert order == ["a", "b", "c", "d"]  # 10 released only 'a' (up to 10 - 2), so 4 was still in time
    assert lateness == [0, 0, 0, 0]

    order, lateness = released(ReorderBuffer(window=2), [(0, "a"), (10, "c"), (13, "d"), (4, "b")])
    assert order == ["a", "c", "b", "d"]
    assert lateness == [0, 0, 0, 6.0]


def test_window_zero_keeps_input_order_and_infinite_window_sorts_everything() -> None:
    pushes = [(5.0, "x"), (1.0, "y"), (3.0, "z"), (3.0, "w")]
    assert released(ReorderBuffer(window=0), pushes)[0] == ["x", "y", "z", "w"]
    assert released(ReorderBuffer(window=math.inf), pushes)[0] == ["y", "z", "w", "x"]  # ties keep push order


@pytest.mark.parametrize("name", ["events.jsonl.gz", "events.jsonl", "events.gz"])
def test_writer_and_reader_round_trip_gzip_and_plain(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    events = mixed_events(6)
    with EventFileWriter(path) as out:
        for event in events:
            out.write(event)
    is_gzip = path.read_bytes()[:2] == b"\x1f\x8b"
    assert is_gzip == (not name.endswith(".jsonl"))
    lines = list(read_lines(path))
    assert [n for n, _ in lines] == [1, 2, 3, 4, 5, 6]
    assert [decode_any(raw) for _, raw in lines] == events
    if is_gzip:
        assert gzip.decompress(path.read_bytes()).splitlines() == [raw for _, raw in lines], "standard gzip"


def test_the_same_events_make_the_same_bytes(tmp_path: Path) -> None:
    files = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        files.append(tmp_path / folder / "events.jsonl.gz")
        with EventFileWriter(files[-1]) as out:
            for event in mixed_events(6):
                out.write(event)
    assert files[0].read_bytes() == files[1].read_bytes(), "no name or time in the gzip header"


def test_a_truncated_gzip_file_reads_up_to_the_cut_then_says_where(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(b'{"line": %d}\n' % i for i in range(1, 2001)))[:-40])
    numbers = []
    with pytest.raises(EventFileError, match=r"cut.jsonl.gz is unreadable after line \d+"):
        for number, _ in read_lines(path):
            numbers.append(number)
    assert 0 < len(numbers) <= 2000 and numbers == list(range(1, len(numbers) + 1))


def test_corrupt_gzip_data_says_where_it_became_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl.gz"
    data = gzip.compress(b"".join(b'{"line": %d}\n' % i for i in range(1, 20001)))
    path.write_bytes(data[:200] + bytes(50) + data[250:])
    with pytest.raises(EventFileError, match=r"bad.jsonl.gz is unreadable after line \d+"):
        list(read_lines(path))
