"""Benign: salespeople (insurance, property, training courses) cold-calling residents from their mobiles.

The closest benign look-alike of a fraud team: many strangers a day, office hours, a third of the calls
hung up at once, rarely anyone twice. But each seller keeps one handset and one neighbourhood, talks for a
minute or two when someone listens, and some of those called return the call.
"""

from dataclasses import dataclass

import numpy as np

from simulators.city import DISTRICTS
from simulators.clock import DAY, by_rhythm
from simulators.identity import CARRIERS
from simulators.normal import durations
from simulators.scenarios.common import Context, Outcome, ScenarioType, calls_with_callbacks, window


@dataclass(frozen=True)
class Params:
    sellers: int = 2
    days: float = 3.0
    calls_per_day: int = 80
    hangup_share: float = 0.35
    callback_rate: float = 0.05


def generate(ctx: Context, params: Params) -> Outcome:
    rng, city = ctx.rng, ctx.city
    begin, end = window(ctx, params.days)
    carrier = rng.integers(0, len(CARRIERS), params.sellers)
    numbers = city.ids.new_phones(rng, carrier)
    imei = city.ids.new_imeis(rng, params.sellers)
    office = city.cells_by_area.pick(rng, city.area(carrier, rng.integers(0, len(DISTRICTS), params.sellers)))
    n = int(params.sellers * params.calls_per_day * max(1.0, (end - begin) / DAY))
    seller = rng.integers(0, params.sellers, n)
    duration = durations(rng, n, 75, 0.7)
    hung_up = np.flatnonzero(rng.random(n) < params.hangup_share)
    duration[hung_up] = rng.integers(0, 8, len(hung_up))
    calls, _ = calls_with_callbacks(
        ctx,
        by_rhythm(rng, n, begin, end, "office"),
        numbers[seller],
        rng.permutation(len(city.people))[np.arange(n) % len(city.people)],
        duration,
        city.cells.cell_id[office[seller]],
        imei[seller],
        params.callback_rate,
        60,
    )
    out = Outcome(calls)
    out.involve("phone", numbers.tolist(), "sales", False)
    return out


SCENARIO = ScenarioType("sales_calls", True, Params, generate, default_count=0)
