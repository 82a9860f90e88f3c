"""Wangiri ("one ring and cut"): international numbers ring many residents for a second or
two so they call back a premium-rate line; those who do are charged.
"""

from dataclasses import dataclass

import numpy as np

from simulators.clock import HOUR, uniform
from simulators.normal import serving_cell
from simulators.scenarios.common import Context, Outcome, ScenarioType, calls_with_callbacks, window

COUNTRY_CODES = ("216", "373", "882", "675", "222", "252", "963", "269")
"""Country codes seen in one-ring campaigns: premium-rate and satellite ranges."""


@dataclass(frozen=True)
class Params:
    numbers: int = 2
    calls_per_number: int = 300
    hours: float = 6.0
    callback_rate: float = 0.05


def generate(ctx: Context, params: Params) -> Outcome:
    rng, city = ctx.rng, ctx.city
    people = city.people
    code = np.array([c.encode() for c in COUNTRY_CODES])[rng.integers(0, len(COUNTRY_CODES), params.numbers)]
    numbers = np.strings.add(np.strings.add(b"+", code), rng.integers(10**7, 10**9, params.numbers).astype("S9"))
    gateway = city.ids.new_imeis(rng, params.numbers)
    begin, end = window(ctx, 1)
    first = int(rng.integers(begin, max(begin + 1, end - int(params.hours * HOUR))))
    n = params.numbers * params.calls_per_number
    number_of = np.repeat(np.arange(params.numbers), params.calls_per_number)
    callee = np.concatenate(
        [
            rng.choice(len(people), params.calls_per_number, replace=len(people) < params.calls_per_number)
            for _ in range(params.numbers)
        ]
    )
    start = uniform(rng, n, first, min(end, first + int(params.hours * HOUR)))
    calls, charged = calls_with_callbacks(
        ctx,
        start,
        numbers[number_of],
        callee,
        rng.integers(0, 3, n),
        city.cells.cell_id[serving_cell(city, callee, start)],
        gateway[number_of],
        params.callback_rate,
        90,
        international=True,
    )
    out = Outcome(calls)
    out.involve("phone", numbers.tolist(), "one_ring_number", True)
    out.involve("phone", people.phone[charged].tolist(), "called_back", False)
    return out


SCENARIO = ScenarioType("wangiri", False, Params, generate, default_count=1)
