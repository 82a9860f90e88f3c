"""The quick-start demo end to end, and the command line's handling of bad input."""

import io
import subprocess
import sys

from antifraud.demo import run_demo
from antifraud.demo_stream import FRAUD_CALLER


def test_demo_flags_the_fraud_caller_only_and_dead_letters_the_broken_records() -> None:
    out = io.StringIO()
    summary = run_demo(out, timeout=90)
    assert summary["alerts"] == {"call_fanout": 1}
    assert summary["alert_entities"] == [FRAUD_CALLER]
    assert summary["dead_letters"] == {"empty": 0, "malformed_json": 1, "schema_violation": 2}
    printed = out.getvalue()
    assert "ALERT" in printed and "170****0001" in printed
    assert FRAUD_CALLER not in printed, "the console shows masked numbers only"
    assert "dead letters: 3" in printed


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "antifraud", *args], capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", **env},
    )


def test_bad_arguments_say_what_is_wrong() -> None:
    result = run_cli("demo", "--timeout", "soon")
    assert result.returncode == 2
    assert "--timeout: invalid float value: 'soon'" in result.stderr

    result = run_cli("demo", "--fast")
    assert result.returncode == 2
    assert "unrecognised arguments: --fast" in result.stderr


def test_bad_configuration_says_which_variable() -> None:
    result = run_cli("worker", ANTIFRAUD_PARTITIONS="many")
    assert result.returncode == 2
    assert "ANTIFRAUD_PARTITIONS='many' is not an integer" in result.stderr
