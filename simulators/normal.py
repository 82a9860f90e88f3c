"""Everyday life in the city for one slice of time: calls, texts, payments, new cards and
SIMs, handsets seen by cells. Each slice is drawn on its own, so memory stays bounded.

Rates are per resident per day and follow the local daily rhythm. Calls stay
mostly within one's circle; payments go mostly to merchants and family.
"""

from dataclasses import dataclass

import numpy as np

from simulators.batch import (
    EventBatch,
    bank_transfers,
    call_records,
    card_openings,
    cell_observations,
    json_lists,
    sim_registrations,
    sms_records,
)
from simulators.city import DISTRICTS, City
from simulators.clock import expected, local_hour, uniform
from simulators.identity import BANK_SHARE, BANKS, CARRIER_SHARE, CARRIERS

CHANNELS = np.array([b"mobile", b"online", b"counter", b"atm"])
CHANNEL_SHARE = (0.55, 0.25, 0.1, 0.1)
OPENING_CHANNELS = np.array([b"counter", b"mobile", b"online"])


@dataclass(frozen=True)
class Rates:
    """Per resident per day."""

    calls: float = 4.0
    sms: float = 2.0
    service_sms: float = 0.5
    transfers: float = 0.6
    cell_observations: float = 8.0
    card_openings: float = 0.0008
    sim_registrations: float = 0.0005


def serving_cell(city: City, person: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Where a resident's handset is: at work in office hours, else at home."""
    hour = local_hour(t)
    at_work = (hour >= 9) & (hour < 18)
    return np.where(at_work, city.people.work_cell[person], city.people.home_cell[person])


def durations(rng: np.random.Generator, n: int, median_s: float, sigma: float = 1.1) -> np.ndarray:
    """Heavy-tailed call durations, clipped to three hours."""
    return np.minimum(np.round(rng.lognormal(np.log(median_s), sigma, n)), 3 * 3600).astype(np.int64) + 1


def amounts(rng: np.random.Generator, n: int, median_fen: float, sigma: float = 1.0) -> np.ndarray:
    return np.maximum(np.round(rng.lognormal(np.log(median_fen), sigma, n)), 100).astype(np.int64)


def _calls(city: City, rng: np.random.Generator, t0: int, t1: int, rate: float) -> EventBatch:
    p = city.people
    n = rng.poisson(expected(rate, len(p), t0, t1, "call"))
    caller = p.sample(rng, n)
    end = uniform(rng, n, t0, t1)
    kind = rng.random(n)
    service = kind >= 0.92
    callee = np.where(kind < 0.85, p.phone[city.contacts.pick(rng, caller)], p.phone[rng.integers(0, len(p), n)])
    callee = np.where(service, city.service_number[rng.integers(0, len(city.service_number), n)], callee)
    duration = np.where(service, durations(rng, n, 150), durations(rng, n, 45))
    duration[rng.random(n) < 0.06] = 0  # not answered
    start = end - duration
    return call_records(
        start,
        caller=p.phone[caller],
        callee=callee,
        duration_s=duration,
        cell_id=city.cells.cell_id[serving_cell(city, caller, start)],
        imei=p.imei[caller],
    )


def _sms(city: City, rng: np.random.Generator, t0: int, t1: int, rate: float, service_rate: float) -> list[EventBatch]:
    p = city.people
    n = rng.poisson(expected(rate, len(p), t0, t1, "sms"))
    sender = p.sample(rng, n)
    time = uniform(rng, n, t0, t1)
    receiver = np.where(rng.random(n) < 0.9, city.contacts.pick(rng, sender), rng.integers(0, len(p), n))
    personal = sms_records(
        time,
        sender=p.phone[sender],
        receiver=p.phone[receiver],
        cell_id=city.cells.cell_id[serving_cell(city, sender, time)],
    )
    m = rng.poisson(expected(service_rate, len(p), t0, t1, "sms"))
    service = rng.integers(0, len(city.service_number), m)
    to = rng.integers(0, len(p), m)
    at = uniform(rng, m, t0, t1)
    links = np.concatenate([json_lists([[d] for d in city.service_domain.tolist()]), [b"[]"]])
    link = np.where(rng.random(m) < 0.3, service, len(city.service_domain))
    notices = sms_records(
        at,
        sender=city.service_number[service],
        receiver=p.phone[to],
        cell_id=city.cells.cell_id[serving_cell(city, to, at)],
        link_domains=links[link],
    )
    return [personal, notices]


def places(
    city: City, rng: np.random.Generator, channel: np.ndarray, bank: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``branch_id`` for counter and ``atm_id`` for ATM transfers (``b""`` otherwise), at the payer's bank."""
    branch = np.where(channel == b"counter", city.branch_id[city.branches_by_bank.pick(rng, bank)], b"")
    atm = np.where(channel == b"atm", city.atm_id[city.atms_by_bank.pick(rng, bank)], b"")
    return branch, atm


def _transfers(city: City, rng: np.random.Generator, t0: int, t1: int, rate: float) -> EventBatch:
    p, shops = city.people, city.merchants
    n = rng.poisson(expected(rate, len(p), t0, t1, "transfer"))
    payer = p.sample(rng, n)
    to_shop = rng.random(n) < 0.6
    shop = shops.sample(rng, n)
    friend = city.contacts.pick(rng, payer)
    channel = CHANNELS[rng.choice(len(CHANNELS), n, p=CHANNEL_SHARE)]
    branch, atm = places(city, rng, channel, p.bank[payer])
    return bank_transfers(
        uniform(rng, n, t0, t1),
        channel=channel,
        payer_account=p.account[payer],
        payer_name=p.name[payer],
        payer_id_number=p.id_number[payer],
        payee_account=np.where(to_shop, shops.account[shop], p.account[friend]),
        payee_name=np.where(to_shop, shops.name[shop], p.name[friend]),
        amount_fen=np.where(to_shop, amounts(rng, n, 12_000), amounts(rng, n, 80_000)),
        branch_id=branch,
        atm_id=atm,
        payer_phone=p.phone[payer],
    )


def open_cards(
    city: City, rng: np.random.Generator, time: np.ndarray, person: np.ndarray, bank: np.ndarray, channel: np.ndarray
) -> EventBatch:
    """New cards for people (fresh numbers, a branch of the bank)."""
    return card_openings(
        time,
        bank=city.bank_codes[bank],
        id_number=city.people.id_number[person],
        account=city.ids.new_accounts(rng, bank),
        branch_id=city.branch_id[city.branches_by_bank.pick(rng, bank)],
        channel=channel,
    )


def register_sims(
    city: City,
    rng: np.random.Generator,
    time: np.ndarray,
    id_number: np.ndarray,
    carrier: np.ndarray,
    verified: np.ndarray,
) -> EventBatch:
    """New SIMs with fresh numbers, registered at an outlet of the carrier."""
    return sim_registrations(
        time,
        carrier=np.array([c.encode() for c in CARRIERS])[carrier],
        id_number=id_number,
        msisdn=city.ids.new_phones(rng, carrier),
        real_name_verified=verified,
        outlet=city.outlet_id[city.outlets_by_carrier.pick(rng, carrier)],
    )


def _openings(city: City, rng: np.random.Generator, t0: int, t1: int, rates: Rates) -> list[EventBatch]:
    p = city.people
    n = rng.poisson(expected(rates.card_openings, len(p), t0, t1, "transfer"))
    cards = open_cards(
        city,
        rng,
        uniform(rng, n, t0, t1),
        rng.integers(0, len(p), n),
        rng.choice(len(BANKS), n, p=BANK_SHARE),
        OPENING_CHANNELS[rng.choice(3, n, p=(0.7, 0.2, 0.1))],
    )
    m = rng.poisson(expected(rates.sim_registrations, len(p), t0, t1, "transfer"))
    sims = register_sims(
        city,
        rng,
        uniform(rng, m, t0, t1),
        p.id_number[rng.integers(0, len(p), m)],
        rng.choice(len(CARRIERS), m, p=CARRIER_SHARE),
        rng.random(m) > 0.01,
    )
    return [cards, sims]


def observe(city: City, rng: np.random.Generator, time: np.ndarray, cell: np.ndarray, imei: np.ndarray) -> EventBatch:
    """Handsets seen by registered cells: ordinary signal, the cell's own cipher, near the cell."""
    c = city.cells
    n = len(time)
    signal = np.clip(np.round(rng.normal(-88, 9, n)), -125, -55).astype(np.int64)
    jitter = np.round(rng.normal(0, 1500, (n, 2))).astype(np.int64)
    return cell_observations(
        time,
        cell_id=c.cell_id[cell],
        lac=c.lac[cell],
        operator=np.array([o.encode() for o in CARRIERS])[c.operator[cell]],
        signal_dbm=signal,
        encryption_level=c.encryption[cell],
        handset_imei=imei,
        location=np.stack([c.lat_u[cell], c.lon_u[cell]], axis=1) + jitter,
    )


def _observations(city: City, rng: np.random.Generator, t0: int, t1: int, rate: float) -> EventBatch:
    p = city.people
    n = rng.poisson(expected(rate, len(p), t0, t1, "cell"))
    person = rng.integers(0, len(p), n)
    time = uniform(rng, n, t0, t1)
    roaming = city.cells_by_area.pick(rng, city.area(p.carrier[person], rng.integers(0, len(DISTRICTS), n)))
    cell = np.where(rng.random(n) < 0.2, roaming, serving_cell(city, person, time))
    return observe(city, rng, time, cell, p.imei[person])


def everyday(city: City, rng: np.random.Generator, t0: int, t1: int, rates: Rates) -> list[EventBatch]:
    """All everyday events with event time in ``[t0, t1)`` (one local hour at most)."""
    return [
        _calls(city, rng, t0, t1, rates.calls),
        *_sms(city, rng, t0, t1, rates.sms, rates.service_sms),
        _transfers(city, rng, t0, t1, rates.transfers),
        *_openings(city, rng, t0, t1, rates),
        _observations(city, rng, t0, t1, rates.cell_observations),
    ]
