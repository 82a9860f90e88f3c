"""Learning from analysts: the learned fraud-number score (pure), its fit and file, its shadow place on
alerts, the labels from decided cases, and the sweep's held-out figures for it."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from redis.asyncio import Redis

from antifraud.alerts.models import Entity
from antifraud.case.service import CaseService
from antifraud.evaluation.learn import fit_model, read_labels
from antifraud.evaluation.models import EvaluationReport
from antifraud.evaluation.ranking import EQUAL_WEIGHTS, RANKED_FEATURES, Rarities, fraud_number_baseline, scored_calls
from antifraud.evaluation.sweep import Run, analysts_labels, learn_from_analysts
from antifraud.events.codec import encode
from antifraud.events.models import CallRecord
from antifraud.state.baseline import configured_scoring, load_baseline, load_model, save_baseline, save_model
from antifraud.thresholds import FraudNumberThresholds
from detectors.baseline import fit, relative_score
from detectors.fraud_number import Profile, detect
from detectors.learned import LinearModel
from detectors.transfer_risk import MULE_FEATURES
from tests.conftest import run_cli
from tests.test_case import alert, on_redis
from tests.test_fraud_number import LIMITS, call, call_centre, cold_calls, courier

PEOPLE = fit([{"distinct_callees": float(k % 6), "burst_calls": float(k % 4), "imei_changes": 0.0} for k in range(500)])


def test_a_learned_score_is_the_intercept_plus_each_weight_times_its_rarity() -> None:
    model = LinearModel({"distinct_callees": 2.0, "burst_calls": -0.5}, intercept=-3.0)
    values = {"distinct_callees": 30.0, "burst_calls": 2.0, "imei_changes": 1.0}
    score, parts = model.score(values, PEOPLE)
    rarity = {c.feature: c.contribution for c in relative_score(values, PEOPLE)[1]}
    by = {p.placed.feature: p for p in parts}
    assert by["distinct_callees"].part == pytest.approx(2.0 * rarity["distinct_callees"])
    assert by["burst_calls"].part == pytest.approx(-0.5 * rarity["burst_calls"])
    assert by["imei_changes"].part == 0.0 and rarity["imei_changes"] > 0, "no weight: rare, but adds nothing"
    assert score == pytest.approx(-3.0 + 2.0 * rarity["distinct_callees"] - 0.5 * rarity["burst_calls"])
    equal = EQUAL_WEIGHTS.score(values, PEOPLE)[0]
    assert equal == pytest.approx(relative_score(values, PEOPLE)[0]), "equal weights: the population score"


def test_fit_weighs_the_rarity_that_tells_confirmed_numbers_apart() -> None:
    draw = np.random.default_rng(3)
    rows = draw.uniform(0, 1, size=(2000, len(RANKED_FEATURES)))
    confirmed = draw.uniform(0, 1, 2000) < 0.02
    telling = RANKED_FEATURES.index("callback_ratio_max")
    rows[confirmed, telling] += 2.5  # only confirmed numbers are this rare in callbacks
    model = fit_model(rows, confirmed.tolist())
    weights = model.weights
    assert max(weights, key=lambda name: abs(weights[name])) == "callback_ratio_max"
    assert weights["callback_ratio_max"] > 0
    table = Rarities([f"n{k}" for k in range(2000)], rows, list(range(2000)))
    scores = table.best(model)
    top = sorted(scores, key=scores.__getitem__, reverse=True)[: int(confirmed.sum())]
    assert {e.value for e in top} == {f"n{k}" for k in np.flatnonzero(confirmed)}
    with pytest.raises(ValueError, match="both confirmed numbers and others"):
        fit_model(rows[:10], [False] * 10)


def test_a_model_file_is_versioned_refused_when_edited_and_tied_to_its_baseline(tmp_path: Path) -> None:
    model = LinearModel({"burst_calls": 1.5, "night_share": -0.25}, intercept=-2.0)
    path = tmp_path / "model.json"
    version = save_model(model, path, fitted_on="week", baseline_version="b1", confirmed=3, dismissed=1, samples=90)
    loaded, loaded_version = load_model(path, "b1")
    assert loaded == model and loaded_version == version
    with pytest.raises(ValueError, match="fitted against baseline b1, not the configured b2"):
        load_model(path, "b2")
    data = json.loads(path.read_text())
    data["weights"]["burst_calls"] = 9.0
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="does not match its version"):
        load_model(path, "b1")
    with pytest.raises(ValueError, match="cannot read model"):
        load_model(tmp_path / "none.json", "b1")


def test_a_model_without_its_baseline_is_refused_in_the_thresholds() -> None:
    with pytest.raises(ValueError, match="name the baseline too"):
        FraudNumberThresholds.model_validate(LIMITS.model_dump() | {"model": "m.json", "baseline": ""})


def test_in_shadow_the_learned_score_rides_on_the_alert_and_alerting_stays_by_the_rules() -> None:
    calls = cold_calls(25, switch_at=12)
    model = LinearModel({"distinct_callees": 1.0, "imei_changes": 0.5}, intercept=-1.0)

    def alerts(learned: LinearModel | None) -> list:  # type: ignore[type-arg]
        return detect(calls, {calls[0].caller: Profile(LIMITS)}, lambda n, at: {}, LIMITS, PEOPLE, learned).alerts

    [plain], [shadowed] = alerts(None), alerts(model)
    assert plain.alert_id == shadowed.alert_id and plain.score == shadowed.score
    by = {r.feature: r for r in shadowed.reasons}
    assert by["distinct_callees"].learned_part == pytest.approx(by["distinct_callees"].rarity, abs=1e-3)
    assert by["imei_changes"].learned_part == pytest.approx(0.5 * by["imei_changes"].rarity, abs=1e-3)
    assert by["night_share"].learned_part == 0.0
    values = {r.feature: r.value for r in shadowed.reasons if r.feature not in ("score", "learned_score")}
    assert by["learned_score"].value == pytest.approx(model.score(values, PEOPLE)[0], abs=1e-3)
    assert all(r.learned_part is None for r in plain.reasons) and "learned_score" not in {
        r.feature for r in plain.reasons
    }


def test_labels_file_keeps_phone_decisions_and_names_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text(
        '{"kind": "phone", "value": "13700008888", "confirmed": true}\n\n'
        '{"kind": "phone", "value": "13800001111", "confirmed": false}\n'
        '{"kind": "account", "value": "6222000011112222", "confirmed": true}\n'
    )
    assert read_labels(path) == {"13700008888": True, "13800001111": False}
    path.write_text('{"kind": "phone", "value": "1"}\n')
    with pytest.raises(ValueError, match="line 1: confirmed: Field required"):
        read_labels(path)


def town() -> list[CallRecord]:
    """Six cold callers (20-45 strangers each, short calls) among 150 people calling a few relatives at
    length, a courier and a call centre."""
    calls = [*courier(), *call_centre()]
    for k in range(6):
        calls += cold_calls(20 + 5 * k, 3600.0 * k, caller=f"1370000{k:04d}", first=100 * k, step=90 + 20 * k)
    for p in range(150):
        family = [f"1350000{(p * 7 + j) % 997:04d}" for j in range(2 + p % 5)]
        calls += [
            call(f"p{p}-{i}", f"1360000{p:04d}", family[i % len(family)], 600.0 * p + 1800 * i, 120 + (p * i) % 400)
            for i in range(1 + p % 9)
        ]
    return sorted(calls, key=lambda c: (c.event_time, c.event_id))


def test_model_fit_learns_from_recorded_calls_and_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "week.jsonl.gz"
    events.write_bytes(gzip.compress(b"".join(encode(c) + b"\n" for c in town())))
    scored = list(scored_calls(events, LIMITS))
    baseline_version = save_baseline(fraud_number_baseline(scored), tmp_path / "b.json", fitted_on="week")
    labels = tmp_path / "labels.jsonl"
    labels.write_text(
        '{"kind": "phone", "value": "13700000001", "confirmed": true}\n'
        '{"kind": "phone", "value": "13700000004", "confirmed": true}\n'
        '{"kind": "phone", "value": "4008001234", "confirmed": false}\n'  # the call centre's alert, dismissed
    )
    out_path = tmp_path / "m.json"
    argv = ["fit", str(events), "--labels", str(labels), "--baseline", str(tmp_path / "b.json"), "-o", str(out_path)]
    code, out, err = run_cli(capsys, "model", *argv)
    assert code == 0, err
    model, version = load_model(out_path, baseline_version)
    assert version[:12] in out and "2 confirmed numbers" in out and json.loads(out_path.read_text())["dismissed"] == 1
    scores = {e.value: v for e, v in Rarities.of(scored, load_baseline(tmp_path / "b.json")[0]).best(model).items()}
    unlabelled_fraud = [f"1370000{k:04d}" for k in (0, 2, 3, 5)]
    people = [n for n in scores if n.startswith("136")]
    assert min(scores[n] for n in unlabelled_fraud) > max(scores[n] for n in people), (
        "the cold callers no case decided rank above every person calling relatives"
    )

    labels.write_text('{"kind": "phone", "value": "13700000001"}\n')
    code, _, err = run_cli(capsys, "model", *argv)
    assert code == 2 and "line 1: confirmed: Field required" in err
    labels.write_text("")
    code, _, err = run_cli(capsys, "model", *argv)
    assert code == 2 and "both confirmed numbers and others" in err
    code, _, err = run_cli(capsys, "model", *argv[:4], "-o", str(out_path))
    assert code == 2 and "give --baseline FILE" in err


def test_decided_cases_become_labels(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def body(cases: CaseService, redis: Redis) -> dict[Entity, bool]:
        numbers = [Entity(kind="phone", value=f"1701234000{k}") for k in range(5)]
        opened = [await cases.fold_alert(alert(entity=n)) for n in numbers]
        ids = [c.case_id for c in opened if c is not None]
        for case_id in ids[:4]:
            await cases.review(case_id, actor="ana")
        await cases.confirm(ids[0], actor="ana", reason="cold calls")
        await cases.dismiss(ids[1], actor="ana", reason="a courier")
        await cases.confirm(ids[2], actor="ana", reason="cold calls")
        await cases.close(ids[2], actor="ana")
        await cases.dismiss(ids[3], actor="ana", reason="a call centre")
        await cases.close(ids[3], actor="ana")
        await cases.fold_alert(alert(detector="transfer_risk", entity=Entity(kind="account", value="6222000011112222")))
        return await cases.outcomes("fraud_number")

    decided = on_redis(redis_url, body)
    assert {e.value: v for e, v in decided.items()} == {
        "17012340000": True,
        "17012340001": False,
        "17012340002": True,
        "17012340003": False,
    }, "confirmed, dismissed, closed after each; the case still in review and the mule case say nothing"
    monkeypatch.setenv("REDIS_URL", redis_url)
    code, out, err = run_cli(capsys, "model", "labels", "-o", str(tmp_path / "labels.jsonl"))
    assert code == 0, err
    assert "2 confirmed and 2 dismissed" in out
    assert read_labels(tmp_path / "labels.jsonl") == {e.value: v for e, v in decided.items()}
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    code, _, err = run_cli(capsys, "model", "labels", "-o", str(tmp_path / "labels.jsonl"))
    assert code == 2 and "Redis unavailable" in err


def test_the_stage_loads_the_baseline_and_the_model_fitted_against_it(tmp_path: Path) -> None:
    version = save_baseline(PEOPLE, tmp_path / "b.json", fitted_on="week")
    model = LinearModel({"burst_calls": 1.0}, 0.0)
    save_model(model, tmp_path / "m.json", fitted_on="w", baseline_version=version, confirmed=1, dismissed=0, samples=9)
    assert configured_scoring(str(tmp_path / "b.json"), str(tmp_path / "m.json")) == (PEOPLE, model)
    assert configured_scoring(str(tmp_path / "b.json"), "") == (PEOPLE, None)
    assert configured_scoring("", "") == (None, None)
    save_baseline(fit([{"burst_calls": 1.0}]), tmp_path / "b.json", fitted_on="refitted")
    with pytest.raises(ValueError, match="refit it"):
        configured_scoring(str(tmp_path / "b.json"), str(tmp_path / "m.json"))


def _run(seed: int, callers: list[str], rows: np.ndarray, fraud: set[str], alerted: set[str]) -> Run:
    phone = lambda n: Entity(kind="phone", value=n)  # noqa: E731
    return Run(
        "wide",
        seed,
        EvaluationReport.model_construct(),
        {},
        {"fraud_call_team/fraud_number": {phone(n) for n in fraud}},
        {"phone": Rarities(callers, rows, list(range(len(callers))))},
        {phone(n) for n in alerted},
    )


def test_the_sweep_learns_on_fitting_seeds_and_scores_the_held_out_ones() -> None:
    draw = np.random.default_rng(5)
    runs = []
    for seed in (1, 2, 3, 9):
        callers = [f"{seed}-{k}" for k in range(400)]
        fraud = {c for c in callers[:40]}
        rows = draw.uniform(0, 1, size=(400, len(RANKED_FEATURES)))
        rows[:40, RANKED_FEATURES.index("burst_calls")] += 2.0
        runs.append(_run(seed, callers, rows, fraud, alerted={callers[0], callers[100]}))
    labels = analysts_labels(runs[0], 0.2)
    assert labels == analysts_labels(runs[0], 0.2), "drawn by the run's seed"
    assert labels["1-100"] is False and all(n in runs[0].rarities["phone"].callers[:40] for n, v in labels.items() if v)
    assert 2 <= sum(labels.values()) <= 16
    models = learn_from_analysts(runs, fit_seeds=[1, 2, 3], share=0.2)
    weights = models["wide", "phone"].weights
    assert max(weights, key=lambda f: abs(weights[f])) == "burst_calls"
    held_out = runs[3].scores["learned"]
    top = sorted(held_out, key=held_out.__getitem__, reverse=True)[:40]
    assert len({e.value for e in top} & {f"9-{k}" for k in range(40)}) >= 36
    assert learn_from_analysts(runs, fit_seeds=[1], share=0.0) == {}, "nothing confirmed: no model"


def test_mules_are_learned_from_analysts_decisions_beside_the_numbers() -> None:
    draw = np.random.default_rng(7)
    runs = []
    for seed in (1, 2, 3, 9):
        numbers = [f"{seed}-{k}" for k in range(400)]
        phone_rows = draw.uniform(0, 1, size=(400, len(RANKED_FEATURES)))
        phone_rows[:40, RANKED_FEATURES.index("burst_calls")] += 2.0
        accounts = [f"6222{seed}{k:05d}" for k in range(400)]
        account_rows = draw.uniform(0, 1, size=(400, len(MULE_FEATURES)))
        account_rows[:20, MULE_FEATURES.index("whole_pass_ons")] += 2.0
        run = _run(seed, numbers, phone_rows, set(numbers[:40]), alerted={numbers[100]})
        run.rarities["account"] = Rarities(accounts, account_rows, list(range(400)), MULE_FEATURES, "account")
        run.targets["fraud_call_team/mule"] = {Entity(kind="account", value=a) for a in accounts[:20]}
        run.alerted.add(Entity(kind="account", value=accounts[200]))
        runs.append(run)
    labels = analysts_labels(runs[0], 0.5, "account")
    assert labels[runs[0].rarities["account"].callers[200]] is False, "a dismissed mule alert"
    assert {a for a, v in labels.items() if v} <= set(runs[0].rarities["account"].callers[:20])
    assert "1-100" not in labels, "a number is no account"
    models = learn_from_analysts(runs, fit_seeds=[1, 2, 3], share=0.5)
    assert set(models) == {("wide", "phone"), ("wide", "account")}
    weights = models["wide", "account"].weights
    assert set(weights) == set(MULE_FEATURES) and max(weights, key=lambda f: abs(weights[f])) == "whole_pass_ons"
    held_out = runs[3].scores["learned"]
    accounts_scored = {e: v for e, v in held_out.items() if e.kind == "account"}
    top = sorted(accounts_scored, key=accounts_scored.__getitem__, reverse=True)[:20]
    assert len({e.value for e in top} & set(runs[3].rarities["account"].callers[:20])) >= 18
    assert sum(e.kind == "phone" for e in held_out) == 400, "the numbers' learned scores stay beside them"
