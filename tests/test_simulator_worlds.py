"""Simulated worlds: every scenario instance draws its parameters from its world's ranges; ``sim`` is
today's city; the drawn parameters are in the truth and change what the scenario does."""

import dataclasses
import gzip
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from antifraud.events.codec import decode_any
from antifraud.events.models import CallRecord
from simulators.engine import Config, default_counts, default_params, simulate
from simulators.ground_truth import GroundTruth
from simulators.scenarios import SCENARIOS
from simulators.sinks import FileSink
from simulators.worlds import WORLDS, Range, World
from tests.test_simulator_cli import simulate_cli


def test_every_range_names_a_parameter_of_its_scenario_and_fits_its_type() -> None:
    for world in WORLDS.values():
        assert set(world.counts) <= set(SCENARIOS), world.name
        for scenario, ranges in world.ranges.items():
            base = SCENARIOS[scenario].params()
            names = {f.name for f in dataclasses.fields(base)}
            assert set(ranges) <= names, f"{world.name}/{scenario}: {set(ranges) - names}"
            for name, where in ranges.items():
                if isinstance(getattr(base, name), int):
                    assert where.lo >= 1 or name.endswith("_count"), f"{world.name}/{scenario}.{name}"
                if name.endswith(("_share", "_rate", "_min")):
                    assert where.hi <= 1, f"{world.name}/{scenario}.{name} is a share"


def test_a_draw_stays_in_its_range_rounds_integers_and_leaves_fixed_and_unnamed_parameters() -> None:
    world = World(
        "t", "test", ranges={"fraud_call_team": {"numbers": Range(2, 6), "talk_median_s": Range(30, 90, log=True)}}
    )
    base = SCENARIOS["fraud_call_team"].params()
    drawn = [world.draw("fraud_call_team", base, np.random.default_rng(seed)) for seed in range(200)]
    assert {d.numbers for d in drawn} == {2, 3, 4, 5, 6}
    assert all(30 <= d.talk_median_s <= 90 for d in drawn) and len({d.talk_median_s for d in drawn}) == 200
    assert {d.calls_per_hour for d in drawn} == {base.calls_per_hour}, "a parameter without a range keeps its value"
    fixed = world.draw("fraud_call_team", base, np.random.default_rng(0), frozenset({"numbers"}))
    assert fixed.numbers == base.numbers and fixed.talk_median_s == drawn[0].talk_median_s
    assert (
        world.draw("wangiri", SCENARIOS["wangiri"].params(), np.random.default_rng(0)) == SCENARIOS["wangiri"].params()
    )
    with pytest.raises(ValueError, match="bad range"):
        Range(5, 1)


def _simulated(world: str, folder: Path, **config: object) -> tuple[GroundTruth, list[CallRecord]]:
    events = folder / f"{world}.jsonl.gz"
    truth = simulate(Config(seed=3, people=600, days=2, world=world, **config), FileSink(events))  # type: ignore[arg-type]
    calls = [e for e in map(decode_any, gzip.decompress(events.read_bytes()).splitlines()) if isinstance(e, CallRecord)]
    return truth, calls


@pytest.fixture(scope="module")
def hard(tmp_path_factory: pytest.TempPathFactory) -> tuple[GroundTruth, list[CallRecord]]:
    return _simulated("hard", tmp_path_factory.mktemp("hard"), counts=default_counts("hard"))


def test_sim_runs_every_instance_on_its_scenario_defaults(tmp_path: Path) -> None:
    truth, _ = _simulated("sim", tmp_path)
    defaults = {name: dataclasses.asdict(p) for name, p in default_params().items()}
    assert truth.scenarios and all(s.params == defaults[s.scenario] for s in truth.scenarios)
    assert truth.params["world"] == "sim"


def test_instances_of_a_world_differ_and_their_drawn_parameters_show_in_what_they_do(
    hard: tuple[GroundTruth, list[CallRecord]],
) -> None:
    truth, calls = hard
    teams = [s for s in truth.scenarios if s.scenario == "fraud_call_team"]
    assert len(teams) == 3 and len({s.params["calls_per_hour"] for s in teams}) == 3
    for team in teams:
        ranges = WORLDS["hard"].ranges["fraud_call_team"]
        assert all(ranges[k].lo <= team.params[k] <= ranges[k].hi for k in ranges)
        numbers = {e.value for e in team.entities if e.role == "fraud_number"}
        assert len(numbers) == team.params["numbers"]
        ids = set(team.event_ids)
        out = [c for c in calls if c.event_id in ids and c.caller in numbers]
        share = team.params["hangup_share"]
        hung_up = sum(c.duration_s <= 10 for c in out) / len(out)
        assert abs(hung_up - share) < 4 * (share * (1 - share) / len(out)) ** 0.5 + 0.05, "hang-ups as drawn"
        per_number = Counter((c.caller, c.callee) for c in out)
        repeats = sum(n - 1 for n in per_number.values()) / len(out)
        assert repeats > team.params["repeat_share"] / 3, "callees are called again as drawn"
    assert Counter(s.scenario for s in truth.scenarios)["sales_calls"] == WORLDS["hard"].counts["sales_calls"]
    sellers = {e.value for s in truth.scenarios if s.scenario == "sales_calls" for e in s.entities}
    assert sellers and not any(e.target for s in truth.scenarios if s.benign for e in s.entities)


def test_the_cli_takes_a_world_fixes_what_is_set_and_names_the_worlds_it_knows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "w.jsonl.gz"
    code = simulate_cli(
        "--world", "wide", "--people", "300", "--days", "1", "--set", "fraud_call_team.numbers=2", "-o", str(out), "-q"
    )
    assert code == 0
    truth = GroundTruth.read(tmp_path / "w.truth.json")
    teams = [s for s in truth.scenarios if s.scenario == "fraud_call_team"]
    assert len(teams) == WORLDS["wide"].counts["fraud_call_team"]
    assert {s.params["numbers"] for s in teams} == {2}, "a parameter set by hand is not drawn"
    assert len({s.params["talk_median_s"] for s in teams}) == len(teams)
    assert simulate_cli("--world", "moon", "-o", str(out), "-q") == 2
    assert "unknown world 'moon' (known: sim, wide, hard)" in capsys.readouterr().err
