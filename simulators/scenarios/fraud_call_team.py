"""A fraud call team: cold calls to strangers, victims paying mules, mules moving the money, reports.

Several numbers (often on freshly registered SIMs, some on rented ID numbers)
call many residents in bursts during office hours, rarely anyone twice, from a
SIM box whose handsets (IMEIs) change between sessions. Most calls are short
hang-ups; a victim stays on the line for long. Minutes to hours later the
victim pays most of their savings to a mule account (at a counter, an ATM or
online); mules collect from several victims and pass each receipt on within
minutes. Some victims report to 110, 96110 or a bank counter hours later.
"""

from dataclasses import dataclass

import numpy as np

from simulators.batch import EventBatch, fraud_reports, json_lists
from simulators.city import DISTRICTS
from simulators.clock import DAY, HOUR, MINUTE, by_rhythm
from simulators.identity import CARRIER_SHARE, CARRIERS
from simulators.normal import register_sims
from simulators.scenarios.common import (
    Context,
    Outcome,
    ScenarioType,
    calls_with_callbacks,
    delays,
    outsiders,
    pass_on,
    residents,
    take,
    transfer,
    window,
)

VICTIM_CHANNELS = np.array([b"counter", b"atm", b"online", b"mobile"])
REPORT_SOURCES = np.array([b"110", b"96110", b"counter"])


@dataclass(frozen=True)
class Params:
    numbers: int = 4
    days: float = 2.0
    sessions_per_day: int = 3
    session_minutes: float = 40.0
    calls_per_hour: float = 50.0
    victim_rate: float = 0.02
    """Share of calls that end with a paying victim."""
    mules: int = 3
    next_hops: int = 4
    new_sim_share: float = 0.6
    callback_rate: float = 0.02
    report_rate: float = 0.6
    hangup_share: float = 0.55
    """Share of calls hung up within ten seconds; the others talk for ``talk_median_s`` (heavy-tailed)."""
    talk_median_s: float = 40.0
    repeat_share: float = 0.0
    """Share of calls to a resident the number called before (a second try, a follow-up)."""
    pay_share_min: float = 0.7
    """A victim pays between this share of their balance and 95% of it."""
    pass_on_median_s: float = 360.0
    """How long a mule keeps a receipt before passing it on (median; heavy-tailed)."""


def _numbers(ctx: Context, params: Params, first_call: int) -> tuple[np.ndarray, np.ndarray, EventBatch]:
    """The team's numbers; the new ones registered shortly before, often on other people's ID numbers."""
    rng, city = ctx.rng, ctx.city
    carrier = rng.choice(len(CARRIERS), params.numbers, p=CARRIER_SHARE)
    fresh = rng.random(params.numbers) < params.new_sim_share
    holder = np.where(
        rng.random(params.numbers) < 0.5,
        city.people.id_number[rng.integers(0, len(city.people), params.numbers)],
        outsiders(ctx, params.numbers).id_number,
    )
    when = first_call - delays(rng, params.numbers, 12 * HOUR, 0.8, HOUR, 3 * DAY)
    sims = register_sims(city, rng, when, holder, carrier, rng.random(params.numbers) > 0.4)
    old = city.ids.new_phones(rng, carrier)
    return np.where(fresh, sims.cols["msisdn"], old), carrier, sims.take(np.flatnonzero(fresh))


def _sessions(ctx: Context, params: Params, begin: int, end: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Call start times, the calling number (index) and the session of each call, in bursts."""
    rng = ctx.rng
    days = max(1, round((end - begin) / DAY))
    n_sessions = params.numbers * params.sessions_per_day * days
    number = np.repeat(np.arange(params.numbers), params.sessions_per_day * days)
    session_start = by_rhythm(rng, n_sessions, begin, end, "office")
    length = int(params.session_minutes * MINUTE)
    per_session = rng.poisson(params.calls_per_hour * params.session_minutes / 60, n_sessions)
    session = np.repeat(np.arange(n_sessions), per_session)
    start = session_start[session] + rng.integers(0, length, len(session))
    return start, number[session], session


def _strangers(rng: np.random.Generator, number_of: np.ndarray, population: int, repeat_share: float) -> np.ndarray:
    """Residents each number calls, working down a shuffled list: nobody twice until it runs out, except
    a ``repeat_share`` of calls that go again to someone the number called earlier."""
    callee = np.empty(len(number_of), dtype=np.int64)
    for number in np.unique(number_of).tolist():
        rows = np.flatnonzero(number_of == number)
        rounds = -(-len(rows) // population)
        callee[rows] = np.concatenate([rng.permutation(population) for _ in range(rounds)])[: len(rows)]
        if repeat_share > 0 and len(rows) > 1:
            again = np.flatnonzero(rng.random(len(rows) - 1) < repeat_share) + 1
            earlier = (rng.random(len(again)) * again).astype(np.int64)
            callee[rows[again]] = callee[rows[earlier]]
    return callee


def generate(ctx: Context, params: Params) -> Outcome:
    rng, city = ctx.rng, ctx.city
    p = city.people
    begin, end = window(ctx, params.days)
    start, number_of, session = _sessions(ctx, params, begin, end)
    numbers, carrier, sims = _numbers(ctx, params, int(start.min()) if len(start) else begin)
    imeis = city.ids.new_imeis(rng, params.numbers * 3).reshape(params.numbers, 3)
    box = city.cells_by_area.pick(rng, city.area(carrier, rng.integers(0, len(DISTRICTS), params.numbers)))
    n = len(start)
    callee = _strangers(rng, number_of, len(p), params.repeat_share)
    hung_up = rng.random(n) < params.hangup_share
    short = rng.integers(0, 11, n)
    duration = np.where(
        hung_up, short, delays(rng, n, params.talk_median_s, 0.8, 11, max(300, int(7.5 * params.talk_median_s)))
    )
    victim_call = np.flatnonzero(rng.random(n) < params.victim_rate)
    victim_call = victim_call[np.unique(callee[victim_call], return_index=True)[1]]
    duration[victim_call] = delays(rng, len(victim_call), 20 * MINUTE, 0.5, 6 * MINUTE, 90 * MINUTE)
    calls, called_back = calls_with_callbacks(
        ctx,
        start,
        numbers[number_of],
        callee,
        duration,
        city.cells.cell_id[box[number_of]],
        imeis[number_of, session % 3],
        params.callback_rate,
        15,
    )

    victim = callee[victim_call]
    paid_at = (
        start[victim_call]
        + duration[victim_call]
        + delays(rng, len(victim_call), 40 * MINUTE, 0.9, 3 * MINUTE, 6 * HOUR)
    )
    amount = np.round(p.balance[victim] * rng.uniform(params.pay_share_min, 0.95, len(victim))).astype(np.int64)
    mules = outsiders(ctx, params.mules)
    mule_of = rng.integers(0, params.mules, len(victim))
    channel = VICTIM_CHANNELS[rng.choice(len(VICTIM_CHANNELS), len(victim), p=(0.35, 0.2, 0.15, 0.3))]
    payments = transfer(ctx, paid_at, residents(city, victim), take(mules, mule_of), amount, channel)
    next_hops = outsiders(ctx, params.next_hops)
    moved = pass_on(ctx, paid_at, amount, take(mules, mule_of), next_hops, median_s=params.pass_on_median_s)

    reporting = np.flatnonzero(rng.random(len(victim)) < params.report_rate)
    who = victim[reporting]
    reports = fraud_reports(
        paid_at[reporting] + delays(rng, len(reporting), 3 * HOUR, 1.0, 10 * MINUTE, 2 * DAY),
        victim_id_number=p.id_number[who],
        victim_phone=p.phone[who],
        reported_numbers=json_lists([[x] for x in numbers[number_of[victim_call[reporting]]].tolist()]),
        payee_accounts=json_lists([[x] for x in mules.account[mule_of[reporting]].tolist()]),
        amount_fen=amount[reporting],
        fraud_time=paid_at[reporting],
        source=REPORT_SOURCES[rng.choice(3, len(reporting), p=(0.45, 0.35, 0.2))],
        victim_account=p.account[who],
    )
    out = Outcome([sims, *calls, payments, moved, reports])
    out.involve("phone", numbers.tolist(), "fraud_number", True)
    out.involve("account", mules.account.tolist(), "mule", True)
    out.involve("account", next_hops.account.tolist(), "next_hop", True)
    out.involve("phone", p.phone[victim].tolist(), "victim", False)
    out.involve("account", p.account[victim].tolist(), "victim", False)
    out.involve("phone", p.phone[called_back].tolist(), "called_back", False)
    out.involve("phone", p.phone[callee].tolist(), "reached", False)
    return out


SCENARIO = ScenarioType("fraud_call_team", False, Params, generate, default_count=2)
