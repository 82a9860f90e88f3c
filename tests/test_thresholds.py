"""Detector thresholds: packaged defaults, a custom file, and errors that name the file."""

import tomllib
from pathlib import Path

import pytest

import antifraud
from antifraud.thresholds import CallFanoutThresholds, load_thresholds


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "thresholds.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_packaged_defaults_load() -> None:
    packaged = tomllib.loads((Path(antifraud.__file__).parent / "thresholds.toml").read_text(encoding="utf-8"))
    assert load_thresholds().call_fanout == CallFanoutThresholds(**packaged["call_fanout"])


def test_custom_file_loads(tmp_path: Path) -> None:
    path = write(tmp_path, "[call_fanout]\nwindow_seconds = 300\nmax_distinct_callees = 7\n")
    assert load_thresholds(path).call_fanout == CallFanoutThresholds(window_seconds=300, max_distinct_callees=7)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("[call_fanout]\nwindow_seconds = 600\nmax_distinct_callees = 5\nmax_calls = 9\n", id="unknown_key"),
        pytest.param(
            "[call_fanout]\nwindow_seconds = 600\nmax_distinct_callees = 5\n[sms_fanout]\nwindow_seconds = 1\n",
            id="unknown_section",
        ),
        pytest.param("[call_fanout]\nwindow_seconds = 0\nmax_distinct_callees = 5\n", id="zero_window"),
        pytest.param("[call_fanout]\nwindow_seconds = 600\nmax_distinct_callees = -1\n", id="negative_max"),
        pytest.param("[call_fanout]\nwindow_seconds = 600\n", id="missing_key"),
        pytest.param("[call_fanout\nwindow_seconds = 600\n", id="not_toml"),
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
