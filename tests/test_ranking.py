"""Scores that rank every number, and the ROC and precision-recall figures computed from them."""

import gzip
from pathlib import Path

import pytest

from antifraud.evaluation.ranking import (
    EQUAL_WEIGHTS,
    Rarities,
    curves,
    fraud_number_baseline,
    fraud_number_scores,
    scored_calls,
)
from antifraud.events.codec import encode
from detectors import fraud_number
from detectors.baseline import fit, rarity, relative_score
from tests.test_fraud_number import LIMITS, call_centre, cold_calls, courier, relative

FULL = {
    "distinct_callees": 40,
    "burst_calls": 40,
    "short_call_share": 1.0,
    "one_ring_share": 1.0,
    "international_share": 1.0,
    "night_share": 1.0,
    "imei_changes": 10,
    "callback_ratio_max": 0.0,
    "repeat_callee_ratio_max": 0.0,
}


def test_the_rank_gives_partial_credit_toward_each_threshold_and_caps_it() -> None:
    weights = sum(rule.weight for rule in fraud_number.rules(LIMITS).values())
    assert fraud_number.rank(FULL, LIMITS) == pytest.approx(1 + weights)
    assert fraud_number.rank({**FULL, "distinct_callees": 400, "burst_calls": 400}, LIMITS) == pytest.approx(
        1 + weights
    ), "past a threshold counts no more"
    half = {**FULL, "distinct_callees": LIMITS.min_distinct_callees / 2}
    assert fraud_number.rank(half, LIMITS) == pytest.approx(0.5 + weights), "below the gate still ranks"
    short = LIMITS.short_call_share
    lower = {**FULL, "short_call_share": short.threshold / 4}
    assert fraud_number.rank(FULL, LIMITS) - fraud_number.rank(lower, LIMITS) == pytest.approx(0.75 * short.weight)
    back = LIMITS.callback_ratio_max
    called_back = {**FULL, "callback_ratio_max": 1.0}
    assert fraud_number.rank(FULL, LIMITS) - fraud_number.rank(called_back, LIMITS) == pytest.approx(back.weight)
    missing = {k: v for k, v in FULL.items() if k != "callback_ratio_max"}
    assert fraud_number.rank(missing, LIMITS) == pytest.approx(1 + weights - back.weight)


def test_ungated_features_exist_for_a_number_with_one_call() -> None:
    profile = fraud_number.Profile(LIMITS)
    profile.add(fraud_number.out_call(cold_calls(1)[0]))
    assert profile.features(lambda callees: 0) is None
    values = profile.features(lambda callees: 0, gated=False)
    assert values is not None and values["distinct_callees"] == 1 and values["callback_ratio_max"] == 0.0


def test_curves_count_ties_half_and_rank_unscored_positives_last() -> None:
    scores = {"a": 0.9, "b": 0.8, "c": 0.8, "d": 0.1, "x": 0.95}
    c = curves(scores, positives={"a", "c", "e"}, excluded={"x"})
    assert (c.positives, c.negatives) == (3, 2)
    # Pairs (positive above negative): a>b, a>d, c~b (half), c>d, e (unscored) below both: 3.5 of 6.
    assert c.roc_auc == pytest.approx(3.5 / 6)
    # Ranks: a (1/1), then b and c tied (2/3 at recall 2/3), d, then e (3/5 at recall 1).
    assert c.pr_auc == pytest.approx((1 / 3) * 1 + (1 / 3) * (2 / 3) + (1 / 3) * (3 / 5))
    assert c.recall[-1] == 1.0 and c.fpr[-1] == 1.0
    perfect = curves({"p": 2.0, "n": 1.0}, positives={"p"})
    assert (perfect.roc_auc, perfect.pr_auc) == (1.0, 1.0)
    assert curves({"n": 1.0}, positives=set()).roc_auc is None
    assert curves({"p": 1.0}, positives={"p"}).roc_auc is None, "no negative: no ROC"


def test_cold_callers_outrank_a_courier_and_a_relative_below_the_gate_too(tmp_path: Path) -> None:
    busy = cold_calls(30, 40000, caller="13700008888")
    timid = cold_calls(12, 40000, caller="13700009999", switch_at=6)  # below the gate: never alerted
    events = sorted([*busy, *timid, *courier(), *call_centre(), *relative()], key=lambda c: (c.event_time, c.event_id))
    path = tmp_path / "calls.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(encode(c) + b"\n" for c in events) + b"not json\n"))
    scored = list(scored_calls(path, LIMITS))
    scores = {e.value: v for e, v in fraud_number_scores(scored, LIMITS).items()}
    assert max(scores, key=scores.__getitem__) == "13700008888"
    assert scores["13700009999"] > scores["13800001111"] > scores["13900002222"], "timid fraud, courier, relative"
    assert scores["13900002222"] < 0.6, "a relative's few long calls to family score little"
    assert timid[0].callee not in scores, "who only receives calls is not ranked as a caller"
    called_back = courier()[1].caller
    assert called_back in scores, "a customer who called back made a call: ranked"
    population = fraud_number_baseline(scored)
    assert population.count == len(scores), "one sample per caller and day (the calls span one day)"
    rare = {e.value: v for e, v in Rarities.of(scored, population).best(EQUAL_WEIGHTS).items()}
    assert rare.keys() == scores.keys()
    assert rare["13700008888"] > rare["13800001111"] > rare["13900002222"]
    assert rare["13700009999"] > rare["13900002222"]


def test_the_threshold_for_a_target_precision_is_the_lowest_that_reaches_it() -> None:
    # Highest first: p1 (1/1), n1 (1/2), p2 (2/3), p3 (3/4), n2 (3/5).
    c = curves({"p1": 5.0, "n1": 4.0, "p2": 3.0, "p3": 2.0, "n2": 1.0}, positives={"p1", "p2", "p3"})
    assert c.thresholds == [5.0, 4.0, 3.0, 2.0, 1.0]
    assert c.threshold_for(0.75) == 2.0, "3 of 4 at or above 2.0: the most recall at 75%"
    assert c.threshold_for(0.9) == 5.0 and c.threshold_for(1.0) == 5.0
    assert curves({"n": 3.0, "p": 1.0}, positives={"p"}).threshold_for(0.9) is None
    assert c.at(2.5) == (2 / 3, 2 / 3), "between two scores: those at or above it"
    assert c.at(9.0) == (None, 0.0) and c.at(0.0) == (3 / 5, 1.0)


def test_a_baseline_tells_the_share_of_the_population_as_far_out_or_further() -> None:
    population = fit([{"calls": float(v)} for v in range(1, 101)], quantiles=100)  # 1..100
    assert population.count == 100
    assert population.beyond("calls", 91) == pytest.approx(0.10), "91..100 are at or above 91"
    assert population.beyond("calls", 1000) == 0.0 and population.beyond("calls", 1) == 1.0
    assert population.beyond("calls", 10, low_is_unusual=True) == pytest.approx(0.10), "1..10 at or below"
    assert population.beyond("unknown", 5.0) == 1.0, "a feature never fitted makes nothing rare"
    zeros = fit([{"changes": 0.0}] * 95 + [{"changes": 1.0}] * 5, quantiles=100)
    assert zeros.beyond("changes", 0.0) == 1.0, "the commonest value is not rare at all"
    assert zeros.beyond("changes", 1.0) == pytest.approx(0.05)
    assert rarity(0.01, 1000) == pytest.approx(2.0) and rarity(0.0, 1000) == pytest.approx(3.0)
    assert rarity(1.0, 1000) == 0.0


def test_the_population_score_adds_how_rare_each_feature_is_and_shows_each_part() -> None:
    people = [{"distinct_callees": float(k % 8), "callback_ratio_max": 0.5 + (k % 5) / 10} for k in range(1000)]
    population = fit(people)
    ordinary, parts = relative_score({"distinct_callees": 3.0, "callback_ratio_max": 0.7}, population)
    cold, cold_parts = relative_score({"distinct_callees": 40.0, "callback_ratio_max": 0.0}, population)
    assert cold == pytest.approx(6.0), "beyond everyone on two features: one in a thousand, twice"
    assert ordinary < 1 < cold
    by_feature = {p.feature: p for p in cold_parts}
    assert by_feature["callback_ratio_max"].beyond == 0.0 and by_feature["callback_ratio_max"].value == 0.0
    assert by_feature["distinct_callees"].contribution == pytest.approx(3.0)
    assert {p.feature for p in parts} == {"distinct_callees", "callback_ratio_max"}
