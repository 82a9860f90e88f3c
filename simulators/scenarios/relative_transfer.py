"""Benign: a family member phones, and soon after the resident sends them money.

A call followed within the hour by a large transfer is the fraud pattern too;
here the caller is family and the payee is that family member's own account.
"""

from dataclasses import dataclass

import numpy as np

from simulators.batch import call_records
from simulators.clock import MINUTE, by_rhythm
from simulators.normal import amounts, serving_cell
from simulators.scenarios.common import Context, Outcome, ScenarioType, delays, residents, transfer, window

CHANNELS = np.array([b"mobile", b"counter", b"atm", b"online"])


@dataclass(frozen=True)
class Params:
    families: int = 6
    days: float = 7.0


def generate(ctx: Context, params: Params) -> Outcome:
    rng, city = ctx.rng, ctx.city
    p = city.people
    sender = rng.choice(len(p), params.families, replace=False)
    relative = city.contacts.members[city.contacts.ptr[sender] + rng.integers(0, 2, params.families)]
    begin, end = window(ctx, params.days)
    start = by_rhythm(rng, params.families, begin, end, "transfer")
    duration = delays(rng, params.families, 6 * MINUTE, 0.5, 60, 40 * MINUTE)
    call = call_records(
        start,
        caller=p.phone[relative],
        callee=p.phone[sender],
        duration_s=duration,
        cell_id=city.cells.cell_id[serving_cell(city, relative, start)],
        imei=p.imei[relative],
    )
    channel = CHANNELS[rng.choice(len(CHANNELS), params.families, p=(0.5, 0.25, 0.15, 0.1))]
    paid_at = call.time + delays(rng, params.families, 20 * MINUTE, 0.7, 2 * MINUTE, 3 * 3600)
    money = transfer(
        ctx,
        paid_at,
        residents(city, sender),
        residents(city, relative),
        amounts(rng, params.families, 1_000_000, 0.8),
        channel,
    )
    out = Outcome([call, money])
    out.involve("account", p.account[sender].tolist(), "sender", False)
    out.involve("phone", p.phone[relative].tolist(), "relative", False)
    out.involve("account", p.account[relative].tolist(), "relative", False)
    return out


SCENARIO = ScenarioType("relative_transfer", True, Params, generate, default_count=2)
