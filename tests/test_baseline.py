"""The fraud-number population baseline: fitted from recorded calls, kept as a versioned file, and placing
each reason of an alert in the population."""

import gzip
import json
from pathlib import Path

import pytest

from antifraud.events.codec import encode
from antifraud.state.baseline import load_baseline, save_baseline
from detectors.baseline import fit
from detectors.fraud_number import Profile, detect
from tests.conftest import run_cli
from tests.test_fraud_number import LIMITS, cold_calls, courier, relative


def test_a_baseline_file_keeps_the_quantiles_and_is_refused_when_edited(tmp_path: Path) -> None:
    population = fit([{"calls": float(v), "share": v / 10} for v in range(10)], quantiles=5)
    path = tmp_path / "baseline.json"
    version = save_baseline(population, path, fitted_on="week.jsonl.gz")
    loaded, loaded_version = load_baseline(path)
    assert loaded == population and loaded_version == version
    assert save_baseline(population, tmp_path / "again.json", fitted_on="other") == version, "content decides"

    data = json.loads(path.read_text())
    data["features"]["calls"]["points"][-1] = 99.0
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="do not match its version"):
        load_baseline(path)
    path.write_text('{"version": "x"}')
    with pytest.raises(ValueError, match="is not a baseline file: fitted_on: Field required"):
        load_baseline(path)
    with pytest.raises(ValueError, match="cannot read baseline .*nope.json: No such file"):
        load_baseline(tmp_path / "nope.json")


def test_with_a_baseline_every_rule_reason_says_how_far_out_the_number_is() -> None:
    people = [{"distinct_callees": float(k % 6), "burst_calls": float(k % 4), "imei_changes": 0.0} for k in range(500)]
    population = fit(people)
    calls = cold_calls(25, switch_at=12)
    [alert] = detect(calls, {calls[0].caller: Profile(LIMITS)}, lambda n, at: {}, LIMITS, population).alerts
    by_feature = {r.feature: r for r in alert.reasons}
    assert by_feature["distinct_callees"].population_share == 0.0 and by_feature["distinct_callees"].rarity == 2.699
    assert by_feature["imei_changes"].population_share == 0.0, "no one in the population changed handsets"
    assert by_feature["night_share"].population_share == 1.0 and by_feature["night_share"].rarity == 0.0
    assert by_feature["score"].population_share is None
    [plain] = detect(calls, {calls[0].caller: Profile(LIMITS)}, lambda n, at: {}, LIMITS).alerts
    assert all(r.population_share is None and r.rarity is None for r in plain.reasons)
    assert [(r.feature, r.value) for r in plain.reasons] == [(r.feature, r.value) for r in alert.reasons]


def test_fit_writes_a_baseline_of_one_sample_per_number_and_day(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "week.jsonl.gz"
    calls = sorted(
        [*courier(), *courier(day=86400), *relative(), *cold_calls(30)], key=lambda c: (c.event_time, c.event_id)
    )
    events.write_bytes(gzip.compress(b"".join(encode(c) + b"\n" for c in calls)))
    code, out, err = run_cli(capsys, "baseline", "fit", str(events), "-o", str(tmp_path / "b.json"))
    assert code == 0, err
    population, version = load_baseline(tmp_path / "b.json")
    days = {(c.caller, int(c.event_time.timestamp() // 86400)) for c in calls}
    assert population.count == len(days) and f"{len(days)} samples" in out and version[:12] in out

    code, _, err = run_cli(capsys, "baseline", "fit", str(tmp_path / "none.jsonl.gz"), "-o", str(tmp_path / "b.json"))
    assert code == 2 and "no events file" in err
    (tmp_path / "empty.jsonl").write_text("")
    code, _, err = run_cli(capsys, "baseline", "fit", str(tmp_path / "empty.jsonl"), "-o", str(tmp_path / "b.json"))
    assert code == 2 and "has no call records to fit on" in err
    code, _, err = run_cli(capsys, "baseline", "fit", str(events), "-o", str(tmp_path / "no" / "b.json"))
    assert code == 2 and "does not exist" in err
