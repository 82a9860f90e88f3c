"""``antifraud simulate`` on the command line: outputs, and bad arguments told clearly."""

import argparse
import gzip
from collections import Counter
from pathlib import Path

import pytest

from antifraud.events.codec import decode_any
from simulators.cli import add_command
from simulators.ground_truth import GroundTruth


def simulate_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="antifraud")
    add_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["simulate", *argv])
    return int(args.run(args))


def test_writes_events_truth_and_cell_registry_with_the_parameters_given(tmp_path: Path) -> None:
    out = tmp_path / "town.jsonl.gz"
    code = simulate_cli(
        "--people",
        "200",
        "--days",
        "0.5",
        "--seed",
        "7",
        "--start",
        "2026-05-01T06:00",
        "--count",
        "wangiri=2",
        "--count",
        "call_centre=0",
        "--set",
        "wangiri.calls_per_number=50",
        "--set",
        "everyday.calls=1",
        "-o",
        str(out),
        "-q",
    )
    assert code == 0
    truth = GroundTruth.read(tmp_path / "town.truth.json")
    assert truth.seed == 7 and truth.params["cell_registry"] == "town.cells.json"
    assert (tmp_path / "town.cells.json").is_file()
    assert truth.start.isoformat() == "2026-04-30T22:00:00+00:00", "a start without zone is local time (UTC+8)"
    assert Counter(s.scenario for s in truth.scenarios)["wangiri"] == 2
    assert "call_centre" not in {s.scenario for s in truth.scenarios}
    lines = gzip.decompress(out.read_bytes()).splitlines()
    assert len(lines) == truth.event_count
    rings = [e for e in map(decode_any, lines) if getattr(e, "international", False) and e.duration_s <= 2]
    assert len(rings) >= 2 * 50 * 0.9


def test_plain_jsonl_output_is_not_compressed(tmp_path: Path) -> None:
    out = tmp_path / "town.jsonl"
    assert simulate_cli("--people", "150", "--days", "0.1", "-o", str(out), "-q") == 0
    assert out.read_bytes().startswith(b'{"event_id":')


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--count", "phishing=2"], "unknown scenario 'phishing'"),
        (["--count", "wangiri=many"], "--count wangiri='many': not an integer"),
        (["--set", "wangiri.rings=3"], "has no parameter 'rings'"),
        (["--set", "wangiri.numbers=two"], "numbers='two' is not a valid int"),
        (["--set", "everyday.calls=-1"], "calls cannot be negative"),
        (["--set", "nothing=1"], "expected everyday.FIELD or SCENARIO.FIELD"),
        (["--people", "10"], "--people must be at least 100"),
        (["--days", "0"], "days must be positive"),
        (["--seed", "-3"], "seed must be a non-negative integer"),
        (["-o", "/no/such/folder/x.jsonl.gz"], "folder /no/such/folder does not exist"),
    ],
)
def test_bad_values_exit_2_with_a_message(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if "-o" not in argv:
        argv = [*argv, "-o", str(tmp_path / "x.jsonl.gz")]
    assert simulate_cli(*argv, "-q") == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl.gz").exists()


def test_no_destination_and_malformed_options_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert simulate_cli("-q") == 2
    assert "give -o/--output FILE, --kafka BOOTSTRAP, or both" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        simulate_cli("--start", "yesterday", "-o", "x.jsonl.gz")
    assert exit_.value.code == 2
    assert "not an ISO date or time: 'yesterday'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        simulate_cli("--count", "wangiri", "-o", "x.jsonl.gz")
    assert "expected NAME=VALUE, got 'wangiri'" in capsys.readouterr().err
