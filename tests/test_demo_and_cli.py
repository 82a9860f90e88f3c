"""The quick-start demo end to end, and the command line's handling of bad input."""

import io
import re
import subprocess
import sys

import pytest

from antifraud.demo import run_demo


@pytest.mark.kafka
def test_demo_streams_a_city_through_the_worker_and_evaluates_it() -> None:
    out = io.StringIO()
    result = run_demo(out, people=600, days=1.0, timeout=240)
    printed = out.getvalue()

    assert result.dead_letters == {
        "empty": 0,
        "oversized": 0,
        "malformed_json": 1,
        "schema_violation": 2,
        "event_time_out_of_range": 0,
        "wrong_partition": 0,
        "processing_failed": 0,
    }
    consumed = int(re.search(r"produced (\d+) records", printed).group(1))  # type: ignore[union-attr]
    assert sum(result.events_consumed.values()) == consumed
    assert all(result.events_consumed.values()), "every input topic carries simulated events"
    report = result.evaluation
    assert report.alerts.distinct == len(result.alerts) > 0
    assert sum(d.alerts for d in report.detectors.values()) == len(result.alerts)
    assert set(report.scenarios) >= {"fraud_call_team", "card_dealer", "fake_base_station", "wangiri"}
    for alert in result.alerts:
        if alert.entity.kind != "cell":  # cells are infrastructure, not personal data
            assert alert.entity.value not in printed, "the console shows masked identifiers only"
    assert "dead letters: 3" in printed and "evaluation against the simulator's ground truth" in printed
    log = result.worker_log
    assert re.search(r"alert [0-9a-f]{12} \w+ \w+ \S*\*{4}\S* score=", log), "alerts are logged, masked"
    for alert in result.alerts:
        if alert.entity.kind != "cell":
            assert alert.entity.value not in log, f"the worker logged a {alert.entity.kind} in full"
    assert not re.findall(r"\b1[3-9]\d{9}\b|\b\d{17}[\dX]\b|\b62\d{14,17}\b", log), "no phone, ID or card number"


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "antifraud", *args],
        capture_output=True,
        text=True,
        timeout=60,
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
    assert "ANTIFRAUD_PARTITIONS='many': input should be a valid integer" in result.stderr
