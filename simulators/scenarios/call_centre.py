"""Benign: a company's call centre (a Suzhou landline) phoning customers all day.

Many distinct callees like a fraud team, but from one number and line, in office
hours, with longer conversations, and customers often return missed calls.
"""

from dataclasses import dataclass

import numpy as np

from simulators.clock import DAY, by_rhythm
from simulators.normal import durations
from simulators.scenarios.common import Context, Outcome, ScenarioType, calls_with_callbacks, window


@dataclass(frozen=True)
class Params:
    days: float = 2.0
    calls_per_day: int = 400
    callback_rate: float = 0.15


def generate(ctx: Context, params: Params) -> Outcome:
    rng, city = ctx.rng, ctx.city
    number = np.array([b"0512%08d" % int(rng.integers(5300_0000, 5399_9999))])
    line = city.ids.new_imeis(rng, 1)
    cell = city.cells.cell_id[rng.integers(0, len(city.cells.cell_id))]
    begin, end = window(ctx, params.days)
    n = int(params.calls_per_day * max(1.0, (end - begin) / DAY))
    duration = durations(rng, n, 90, 0.8)
    duration[rng.random(n) < 0.15] = 0
    calls, _ = calls_with_callbacks(
        ctx,
        by_rhythm(rng, n, begin, end, "office"),
        np.repeat(number, n),
        rng.integers(0, len(city.people), n),
        duration,
        cell,
        line[0],
        params.callback_rate,
        120,
    )
    out = Outcome(calls)
    out.involve("phone", number.tolist(), "call_centre", False)
    return out


SCENARIO = ScenarioType("call_centre", True, Params, generate, default_count=1)
