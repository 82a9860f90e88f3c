"""Benign: residents whose SIM card moves between two handsets (a work phone and a personal one, a new
phone tried out beside the old): their handset changes again and again, as a fraud team's SIM box does,
but they call their own circle, at their usual length, and are called back.
"""

from dataclasses import dataclass

from simulators.clock import DAY, by_rhythm
from simulators.normal import durations, serving_cell
from simulators.scenarios.common import Context, Outcome, ScenarioType, calls_with_callbacks, window


@dataclass(frozen=True)
class Params:
    people: int = 6
    days: float = 3.0
    calls_per_day: int = 12
    """Calls each makes a day from the second handset, on top of their everyday calls from the first."""
    callback_rate: float = 0.4


def generate(ctx: Context, params: Params) -> Outcome:
    rng, city = ctx.rng, ctx.city
    p = city.people
    person = rng.choice(len(p), params.people, replace=False)
    second = city.ids.new_imeis(rng, params.people)
    begin, end = window(ctx, params.days)
    n = int(params.people * params.calls_per_day * max(1.0, (end - begin) / DAY))
    who = rng.integers(0, params.people, n)
    start = by_rhythm(rng, n, begin, end, "call")
    calls, _ = calls_with_callbacks(
        ctx,
        start,
        p.phone[person[who]],
        city.contacts.pick(rng, person[who]),
        durations(rng, n, 45),
        city.cells.cell_id[serving_cell(city, person[who], start)],
        second[who],
        params.callback_rate,
        60,
    )
    out = Outcome(calls)
    out.involve("phone", p.phone[person].tolist(), "handset_switcher", False)
    return out


SCENARIO = ScenarioType("two_handsets", True, Params, generate, default_count=0)
