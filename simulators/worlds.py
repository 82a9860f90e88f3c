"""Simulated worlds: how widely each scenario instance's parameters vary.

One simulated fraud team that always dials 50 calls an hour is a world a detector can be tuned to without
learning anything. A world gives parameter ranges per scenario, and every instance draws its own
parameters from them (intensity, call durations, callee reuse, amounts, how long money sits), so a detector
is judged on fraud and benign look-alikes that differ from instance to instance and overlap each other:

- ``sim``: today's city, every instance with its scenario's default parameters;
- ``wide``: fraud from timid to brazen, benign heavy callers from light to heavy;
- ``hard``: fraud that looks ordinary (few calls an hour, long talks, callbacks, repeat callees, small
  amounts, money that sits for hours to days) beside benign callers busier than it and people whose SIM
  moves between two handsets.

A parameter set on the command line (``--set SCENARIO.FIELD=VALUE``) is fixed in every world. The drawn
parameters are recorded per instance in the ground truth.
"""

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulators.clock import DAY, HOUR, MINUTE


@dataclass(frozen=True)
class Range:
    """Where one parameter is drawn: uniformly in ``[lo, hi]``, or log-uniformly for scale parameters."""

    lo: float
    hi: float
    log: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.lo <= self.hi or (self.log and self.lo == 0):
            raise ValueError(f"bad range [{self.lo}, {self.hi}]")

    def draw(self, rng: np.random.Generator) -> float:
        if self.log:
            return math.exp(rng.uniform(math.log(self.lo), math.log(self.hi)))
        return float(rng.uniform(self.lo, self.hi))


@dataclass(frozen=True)
class World:
    name: str
    description: str
    ranges: Mapping[str, Mapping[str, Range]] = field(default_factory=dict)
    """Scenario -> parameter -> its range; parameters not named keep their value."""
    counts: Mapping[str, int] = field(default_factory=dict)
    """Instances per scenario where they differ from the scenario's default count."""

    def draw(self, scenario: str, base: Any, rng: np.random.Generator, fixed: frozenset[str] = frozenset()) -> Any:
        """``base`` (a scenario's parameter dataclass) with this world's parameters for it drawn by ``rng``,
        except those named in ``fixed``; integer parameters are rounded (at least 1 where the range is)."""
        drawn: dict[str, Any] = {}
        for name, where in sorted(self.ranges.get(scenario, {}).items()):
            value = where.draw(rng)  # drawn even when fixed, so fixing one parameter leaves the others' draws
            if name in fixed:
                continue
            if isinstance(getattr(base, name), int):
                drawn[name] = max(round(value), math.ceil(where.lo))
            else:
                drawn[name] = round(value, 6)
        return dataclasses.replace(base, **drawn)


_FRAUD_TEAM_WIDE = {
    "numbers": Range(1, 8),
    "sessions_per_day": Range(1, 5),
    "session_minutes": Range(10, 120, log=True),
    "calls_per_hour": Range(5, 60, log=True),
    "hangup_share": Range(0.1, 0.7),
    "talk_median_s": Range(20, 150, log=True),
    "repeat_share": Range(0, 0.3),
    "callback_rate": Range(0.01, 0.1),
    "victim_rate": Range(0.01, 0.05),
    "new_sim_share": Range(0, 1),
    "mules": Range(1, 6),
    "next_hops": Range(2, 8),
    "pay_share_min": Range(0.05, 0.7),
    "pass_on_median_s": Range(5 * MINUTE, DAY, log=True),
}
_FRAUD_TEAM_HARD = {
    **_FRAUD_TEAM_WIDE,
    "sessions_per_day": Range(1, 3),
    "session_minutes": Range(10, 60, log=True),
    "calls_per_hour": Range(3, 20, log=True),
    "hangup_share": Range(0.05, 0.35),
    "talk_median_s": Range(60, 240, log=True),
    "repeat_share": Range(0.1, 0.4),
    "callback_rate": Range(0.05, 0.15),
    "new_sim_share": Range(0, 0.3),
    "pay_share_min": Range(0.02, 0.3),
    "pass_on_median_s": Range(HOUR, 2 * DAY, log=True),
}

WORLDS: dict[str, World] = {
    w.name: w
    for w in (
        World("sim", "every instance with its scenario's default parameters (today's city)"),
        World(
            "wide",
            "fraud from timid to brazen; benign heavy callers from light to heavy",
            ranges={
                "fraud_call_team": _FRAUD_TEAM_WIDE,
                "wangiri": {
                    "calls_per_number": Range(50, 600, log=True),
                    "hours": Range(2, 24, log=True),
                    "callback_rate": Range(0.01, 0.1),
                },
                "card_dealer": {
                    "cards": Range(2, 8),
                    "sims": Range(1, 5),
                    "opening_days": Range(1, 10),
                    "mule_after_days": Range(0.5, 7),
                    "payers_per_card": Range(1, 8),
                },
                "call_centre": {"calls_per_day": Range(100, 800, log=True), "callback_rate": Range(0.05, 0.3)},
                "courier_calls": {"customers_per_day": Range(30, 150, log=True), "callback_rate": Range(0.1, 0.4)},
                "sales_calls": {"calls_per_day": Range(30, 150, log=True), "callback_rate": Range(0.02, 0.15)},
                "two_handsets": {"people": Range(3, 12), "calls_per_day": Range(4, 30, log=True)},
            },
            counts={"fraud_call_team": 3, "sales_calls": 3, "two_handsets": 6},
        ),
        World(
            "hard",
            "fraud that looks ordinary beside benign callers busier than it",
            ranges={
                "fraud_call_team": _FRAUD_TEAM_HARD,
                "wangiri": {
                    "calls_per_number": Range(30, 200, log=True),
                    "hours": Range(6, 48, log=True),
                    "callback_rate": Range(0.05, 0.15),
                },
                "card_dealer": {
                    "cards": Range(2, 4),
                    "sims": Range(1, 2),
                    "opening_days": Range(5, 14),
                    "mule_after_days": Range(2, 10),
                    "payers_per_card": Range(1, 4),
                },
                "call_centre": {"calls_per_day": Range(200, 1500, log=True), "callback_rate": Range(0.02, 0.1)},
                "courier_calls": {"customers_per_day": Range(60, 200, log=True), "callback_rate": Range(0.05, 0.2)},
                "sales_calls": {"calls_per_day": Range(60, 250, log=True), "callback_rate": Range(0.01, 0.08)},
                "two_handsets": {"people": Range(5, 15), "calls_per_day": Range(6, 40, log=True)},
            },
            counts={"fraud_call_team": 3, "sales_calls": 4, "call_centre": 2, "two_handsets": 10},
        ),
    )
}
"""The presets ``antifraud simulate --world`` and ``antifraud evaluate --world`` take."""
