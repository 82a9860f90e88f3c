"""Benign: a delivery firm's couriers phoning their customers.

Like a fraud number they reach many distinct residents, but in office hours,
with ordinary call lengths, from one handset each, and customers often call
back (a missed courier call is returned).
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
    couriers: int = 3
    days: float = 3.0
    customers_per_day: int = 60
    callback_rate: float = 0.3


def generate(ctx: Context, params: Params) -> Outcome:
    rng, city = ctx.rng, ctx.city
    begin, end = window(ctx, params.days)
    days = max(1, round((end - begin) / DAY))
    carrier = rng.integers(0, len(CARRIERS), params.couriers)
    numbers = city.ids.new_phones(rng, carrier)
    imei = city.ids.new_imeis(rng, params.couriers)
    n = params.couriers * params.customers_per_day * days
    courier = rng.integers(0, params.couriers, n)
    start = by_rhythm(rng, n, begin, end, "office")
    route = rng.integers(0, len(DISTRICTS), (params.couriers, days))
    day = np.minimum((start - begin) // DAY, days - 1)
    cell = city.cells_by_area.pick(rng, city.area(carrier[courier], route[courier, day]))
    duration = durations(rng, n, 35, 0.6)
    duration[rng.random(n) < 0.1] = 0
    calls, _ = calls_with_callbacks(
        ctx,
        start,
        numbers[courier],
        rng.integers(0, len(city.people), n),
        duration,
        city.cells.cell_id[cell],
        imei[courier],
        params.callback_rate,
        30,
    )
    out = Outcome(calls)
    out.involve("phone", numbers.tolist(), "courier", False)
    return out


SCENARIO = ScenarioType("courier_calls", True, Params, generate, default_count=2)
