"""Detector thresholds: packaged defaults, a custom file, and errors that name the file."""

import tomllib
from pathlib import Path

import pytest

import antifraud
from antifraud.thresholds import FraudNumberThresholds, load_thresholds


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "thresholds.toml"
    path.write_text(body, encoding="utf-8")
    return path


PACKAGED = (Path(antifraud.__file__).parent / "thresholds.toml").read_text(encoding="utf-8")
GATE = "min_distinct_callees = 20\n"


def test_packaged_defaults_load() -> None:
    packaged = tomllib.loads(PACKAGED)
    assert load_thresholds().fraud_number == FraudNumberThresholds(**packaged["fraud_number"])


def test_custom_file_loads(tmp_path: Path) -> None:
    path = write(tmp_path, PACKAGED.replace(GATE, "min_distinct_callees = 7\n"))
    assert load_thresholds(path).fraud_number.min_distinct_callees == 7


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(PACKAGED.replace(GATE, GATE + "max_calls = 9\n"), id="unknown_key"),
        pytest.param(PACKAGED + "\n[sms_fanout]\nwindow_seconds = 1\n", id="unknown_section"),
        pytest.param(PACKAGED.replace(GATE, "min_distinct_callees = 0\n"), id="zero_gate"),
        pytest.param(PACKAGED.replace("weight = 0.25\n", "weight = 1.5\n"), id="weight_above_one"),
        pytest.param(PACKAGED.replace(GATE, ""), id="missing_key"),
        pytest.param(PACKAGED.replace("[fraud_number]", "[fraud_number"), id="not_toml"),
    ],
)
def test_invalid_file_raises_naming_the_file(tmp_path: Path, body: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ValueError, match="invalid thresholds in") as caught:
        load_thresholds(path)
    assert str(path) in str(caught.value)


def test_missing_file_raises_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ValueError, match=f"cannot read thresholds file {missing}"):
        load_thresholds(missing)
