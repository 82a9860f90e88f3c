"""What every scenario is given and returns, and the moves several scenarios share:
calls that get (rarely or often) called back, money passed on by mules, outsiders'
accounts, windows of activity, delays.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulators.batch import EventBatch, bank_transfers, call_records
from simulators.city import City
from simulators.clock import DAY, local_midnight
from simulators.ground_truth import TruthEntity
from simulators.identity import BANK_SHARE, BANKS, OTHER_REGIONS, names
from simulators.normal import places, serving_cell

PASS_ON_CHANNELS = np.array([b"mobile", b"online", b"atm"])


@dataclass(frozen=True)
class Context:
    city: City
    rng: np.random.Generator
    t0: int
    """Start of the simulated period (epoch seconds)."""
    t1: int
    """Its end (exclusive)."""


@dataclass
class Outcome:
    """A scenario's events, the entities involved, and cells it added to the carrier's registry."""

    batches: list[EventBatch] = field(default_factory=list)
    entities: list[TruthEntity] = field(default_factory=list)
    new_cells: list[dict[str, object]] = field(default_factory=list)

    def involve(self, kind: str, values: Iterable[bytes], role: str, target: bool) -> None:
        """List entities once each, in first-seen order."""
        seen: set[tuple[str, str]] = {(e.kind, e.value) for e in self.entities}
        for value in values:
            text = value.decode()
            if (kind, text) not in seen:
                seen.add((kind, text))
                self.entities.append(TruthEntity(kind=kind, value=text, role=role, target=target))


@dataclass(frozen=True)
class ScenarioType:
    name: str
    benign: bool
    params: type
    """A frozen dataclass of the scenario's parameters, all with defaults."""
    generate: Callable[[Context, Any], Outcome]
    default_count: int
    """Instances in a default simulation."""


@dataclass(frozen=True)
class Holders:
    """Account holders (residents or outsiders) as the columns a transfer needs."""

    account: np.ndarray
    name: np.ndarray
    id_number: np.ndarray
    bank: np.ndarray
    phone: np.ndarray | None = None
    """Residents' mobiles (the bank knows its customers'); None for outsiders and companies."""

    def __len__(self) -> int:
        return len(self.account)


def residents(city: City, person: np.ndarray) -> Holders:
    p = city.people
    return Holders(p.account[person], p.name[person], p.id_number[person], p.bank[person], p.phone[person])


def outsiders(ctx: Context, n: int) -> Holders:
    """People from elsewhere with accounts at the city's banks (mules' names, next hops)."""
    bank = ctx.rng.choice(len(BANKS), n, p=BANK_SHARE)
    ids = ctx.city.ids
    return Holders(
        ids.new_accounts(ctx.rng, bank),
        names(ctx.rng, n),
        ids.new_id_numbers(ctx.rng, n, OTHER_REGIONS),
        bank.astype(np.int64),
    )


def window(ctx: Context, days: float) -> tuple[int, int]:
    """A random run of ``days`` local days inside the simulated period (all of it if shorter)."""
    length = int(days * DAY)
    first = local_midnight(ctx.t0)
    last = max(first, ctx.t1 - length)
    start = max(ctx.t0, local_midnight(int(ctx.rng.integers(first, last + 1))))
    return start, min(ctx.t1, start + length)


def delays(rng: np.random.Generator, n: int, median_s: float, sigma: float, lo: int, hi: int) -> np.ndarray:
    """Heavy-tailed waiting times in seconds, clipped to ``[lo, hi]``."""
    return np.clip(np.round(rng.lognormal(np.log(median_s), sigma, n)), lo, hi).astype(np.int64)


def transfer(
    ctx: Context, time: np.ndarray, payer: Holders, payee: Holders, amount: np.ndarray, channel: np.ndarray
) -> EventBatch:
    """Transfers between holders (rows aligned), placed at the payer's bank for counter and ATM."""
    branch, atm = places(ctx.city, ctx.rng, channel, payer.bank)
    return bank_transfers(
        time,
        channel=channel,
        payer_account=payer.account,
        payer_name=payer.name,
        payer_id_number=payer.id_number,
        payee_account=payee.account,
        payee_name=payee.name,
        amount_fen=amount,
        branch_id=branch,
        atm_id=atm,
        payer_phone=b"" if payer.phone is None else payer.phone,
    )


def take(holders: Holders, rows: np.ndarray) -> Holders:
    return Holders(
        holders.account[rows],
        holders.name[rows],
        holders.id_number[rows],
        holders.bank[rows],
        None if holders.phone is None else holders.phone[rows],
    )


def pass_on(
    ctx: Context,
    received_at: np.ndarray,
    amount: np.ndarray,
    mule: Holders,
    next_hop: Holders,
    atm_share: float = 0.3,
    median_s: float = 6 * 60,
) -> EventBatch:
    """Each receipt moves on after a heavy-tailed wait (minutes by default), nearly whole, to a random
    next-hop account.

    ``mule`` is aligned with the receipts; ATM transfers are how mules cash out.
    """
    n = len(received_at)
    rng = ctx.rng
    channel = np.where(rng.random(n) < atm_share, b"atm", PASS_ON_CHANNELS[rng.integers(0, 2, n)])
    kept = np.round(amount * rng.uniform(0.005, 0.03, n)).astype(np.int64)
    return transfer(
        ctx,
        received_at + delays(rng, n, median_s, 0.6, 60, max(30 * 60, int(median_s * 5))),
        mule,
        take(next_hop, rng.integers(0, len(next_hop), n)),
        amount - kept,
        channel,
    )


def calls_with_callbacks(
    ctx: Context,
    start: np.ndarray,
    caller: np.ndarray,
    callee: np.ndarray,
    duration: np.ndarray,
    cell: np.ndarray,
    imei: np.ndarray,
    callback_rate: float,
    callback_median_s: float,
    international: bool = False,
) -> tuple[list[EventBatch], np.ndarray]:
    """Calls to residents (``callee`` indexes people) and the calls some of them return later.

    Returns the batches and the residents who called back.
    """
    city, rng = ctx.city, ctx.rng
    p = city.people
    calls = call_records(
        start,
        caller=caller,
        callee=p.phone[callee],
        duration_s=duration,
        cell_id=cell,
        imei=imei,
        international=international,
    )
    back = np.flatnonzero(rng.random(len(start)) < callback_rate)
    at = start[back] + duration[back] + delays(rng, len(back), 20 * 60, 1.2, 60, 12 * 3600)
    person = callee[back]
    returned = call_records(
        at,
        caller=p.phone[person],
        callee=caller[back],
        duration_s=delays(rng, len(back), callback_median_s, 0.8, 0, 1800),
        cell_id=city.cells.cell_id[serving_cell(city, person, at)],
        imei=p.imei[person],
        international=international,
    )
    return [calls, returned], person
