"""``antifraud evaluate --seeds --world``: every (world, seed) simulated, detected and evaluated, pooled per
world and role; bad arguments told in plain words."""

from pathlib import Path

import orjson
import pytest

from antifraud.alerts.models import Entity
from antifraud.evaluation.models import AlertCounts, EvaluationReport, RoleScore
from antifraud.evaluation.sweep import Run, choose_operating_points, pool
from simulators.scenarios import SCENARIOS
from tests.test_evaluation import Cli, cli  # noqa: F401  (the fixture)


def report(roles: dict[str, tuple[int, int, int]]) -> EvaluationReport:
    """A report with only role figures: name -> (targets, alerted targets, false-positive entities)."""
    return EvaluationReport(
        scenarios={},
        roles={
            name: RoleScore(
                scenario=name.split("/")[0],
                role=name.split("/")[1],
                targets=targets,
                alerted_targets=alerted,
                false_positive_entities=fp,
                precision=alerted / (alerted + fp) if alerted + fp else None,
                recall=alerted / targets,
                median_seconds_to_detect=None,
                median_own_events_to_detect=None,
                detected_before_acting=None,
            )
            for name, (targets, alerted, fp) in roles.items()
        },
        detectors={},
        alerts=AlertCounts(received=0, distinct=0, duplicates=0),
        alerted_entities=0,
        false_positive_entities=0,
        benign_false_positive_entities={},
        events_known=False,
        instances=[],
    )


def test_pooling_weighs_every_target_alike_and_keeps_each_seeds_recall() -> None:
    pooled = pool(
        [
            Run("wide", 1, report({"team/fraud_number": (4, 4, 0), "team/mule": (2, 0, 0)})),
            Run("wide", 2, report({"team/fraud_number": (16, 4, 2)})),
            Run("hard", 1, report({"team/fraud_number": (8, 2, 6)})),
        ]
    )
    assert list(pooled) == ["wide", "hard"] and pooled["wide"].seeds == [1, 2]
    numbers = pooled["wide"].roles["team/fraud_number"]
    assert (numbers.targets, numbers.alerted, numbers.false_positives) == (20, 8, 2)
    assert numbers.recall == 0.4, "pooled over targets, not the mean of the seeds' 1.0 and 0.25"
    assert numbers.precision == 0.8 and numbers.recalls == [1.0, 0.25]
    mules = pooled["wide"].roles["team/mule"]
    assert mules.precision is None and mules.recall == 0.0
    assert pooled["hard"].roles["team/fraud_number"].precision == 0.25
    assert pooled["wide"].ranking == {}, "no scores, no curves"


def phone(value: str) -> Entity:
    return Entity(kind="phone", value=value)


def test_ranking_pools_the_seeds_scores_telling_their_entities_apart() -> None:
    role = "fraud_call_team/fraud_number"
    empty = report({})
    # The same number value in two seeds' cities is two entities: a fraud number in seed 1, a person in seed 2.
    rules = {phone("1"): 0.9, phone("2"): 0.2, phone("m"): 5.0}
    population = {phone("1"): 0.1, phone("2"): 0.2}
    first = Run("w", 1, empty, {"rules": rules, "population": population}, {role: {phone("1")}, "t/mule": {phone("m")}})
    second = Run("w", 2, empty, {"rules": {phone("1"): 0.5, phone("3"): 0.7}}, {role: {phone("3")}})
    ranking = pool([first, second])["w"].ranking
    assert set(ranking) == {f"{role} by rules", f"{role} by population"}, "a role without targets gets no curve"
    # By population, seed 1's fraud number scores under its one negative and seed 2's is not scored.
    assert ranking[f"{role} by population"].roc_auc == 0.0
    curve = ranking[f"{role} by rules"]
    assert (curve.positives, curve.negatives) == (2, 2), "another role's target counts neither way"
    # Positives 0.9 and 0.7 against negatives 0.5 and 0.2: every pair ordered.
    assert curve.roc_auc == 1.0 and curve.pr_auc == 1.0


def test_a_role_is_ranked_among_entities_of_its_own_kind_only() -> None:
    mule = Entity(kind="account", value="6222000000000666")
    scores = {"population": {phone("1"): 9.0, phone("2"): 0.5, mule: 7.0, Entity(kind="account", value="1"): 1.0}}
    targets = {"fraud_call_team/fraud_number": {phone("1")}, "fraud_call_team/mule": {mule}}
    ranking = pool([Run("w", 1, report({}), scores, targets)])["w"].ranking
    numbers, mules = (
        ranking["fraud_call_team/fraud_number by population"],
        ranking["fraud_call_team/mule by population"],
    )
    assert (numbers.positives, numbers.negatives) == (1, 1), "an account is no negative among phones"
    assert (mules.positives, mules.negatives) == (1, 1) and mules.roc_auc == 1.0, "a phone scoring 9 is not above it"


@pytest.mark.redis
def test_a_sweep_simulates_detects_and_pools_each_world(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    code, out, err = cli(
        "--seeds", "1-2", "--world", "sim", "--people", "400", "--days", "1", "--json", "--plots", str(tmp_path)
    )
    assert code == 0, err
    data = orjson.loads(out)
    assert data["plots"] == [str(tmp_path / "curves-sim.png")]
    assert (tmp_path / "curves-sim.png").read_bytes().startswith(b"\x89PNG")
    sim = data["worlds"]["sim"]
    assert sim["seeds"] == [1, 2]
    team = SCENARIOS["fraud_call_team"]
    numbers = sim["roles"]["fraud_call_team/fraud_number"]
    assert numbers["targets"] == 2 * team.default_count * team.params().numbers
    assert len(numbers["recall_per_seed"]) == 2 and numbers["alerted_targets"] > 0
    for score in ("rules", "population"):
        ranked = sim["ranking"][f"fraud_call_team/fraud_number by {score}"]
        assert ranked["positives"] == numbers["targets"] and ranked["negatives"] > 100
        assert 0.5 < ranked["roc_auc"] <= 1 and 0 < ranked["pr_auc"] <= 1


def test_an_operating_point_is_chosen_on_the_fitting_seeds_and_reported_on_the_others() -> None:
    role = "fraud_call_team/fraud_number"
    empty = report({})

    def run(seed: int, fraud: dict[str, float], others: dict[str, float]) -> Run:
        scores = {phone(k): v for k, v in {**fraud, **others}.items()}
        return Run("w", seed, empty, {"rules": scores}, {role: {phone(k) for k in fraud}})

    fitted = pool([run(1, {"a": 0.9, "b": 0.6}, {"x": 0.7, "y": 0.2})])  # 0.6: 2 of 3; 0.9: 1 of 1
    reported = pool([run(2, {"c": 0.95, "d": 0.5}, {"z": 0.92})])
    choose_operating_points(fitted, reported, 0.9)
    point = reported["w"].operating[f"{role} by rules"]
    assert (point.fit_seeds, point.threshold) == ([1], 0.9)
    assert (point.precision, point.recall) == (0.5, 0.5), "on seed 2, 0.9 lets through c and z"
    choose_operating_points(fitted, reported, 0.6)
    assert reported["w"].operating[f"{role} by rules"].threshold == 0.6
    unreachable = pool([run(3, {"e": 0.1}, {"v": 0.8})])
    choose_operating_points(unreachable, reported, 0.9)
    assert reported["w"].operating[f"{role} by rules"].threshold is None
    assert reported["w"].operating[f"{role} by rules"].recall == 0.0


def test_bad_sweep_arguments_say_what_is_wrong(cli: Cli) -> None:  # noqa: F811
    code, _, err = cli("--world", "wide")
    assert code == 2 and "--world needs --seeds" in err
    code, _, err = cli("--seeds", "1-3", "--truth", "t.json")
    assert code == 2 and "--seeds simulates and detects by itself: it takes no --truth" in err
    code, _, err = cli("--seeds", "one")
    assert code == 2 and "invalid seed range (like 1-5 or 1,4,9) value: 'one'" in err
    code, _, err = cli("--seeds", "1", "--world", "moon")
    assert code == 2 and "unknown world 'moon' (known: sim, wide, hard)" in err
    code, _, err = cli("--seeds", "1-3", "--fit-seeds", "3-4")
    assert code == 2 and "--fit-seeds and --seeds must not share a seed" in err
    code, _, err = cli("--seeds", "1", "--target-precision", "1.5")
    assert code == 2 and "--target-precision is a share: at most 1" in err
    code, _, err = cli()
    assert code == 2 and "give --truth PATH (one run's ground truth), or --seeds" in err
