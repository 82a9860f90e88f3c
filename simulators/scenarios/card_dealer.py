"""A card dealer: one ID number opens cards at several banks and SIMs at several carriers
within days, then the cards are used by others as mule accounts.

The cards stay in the dealer's name, so the payee names match; what gives them
away is that unrelated residents pay into them and every receipt leaves within
minutes for accounts elsewhere.
"""

from dataclasses import dataclass

import numpy as np

from simulators.clock import DAY, HOUR, by_rhythm
from simulators.identity import BANKS, CARRIERS
from simulators.normal import amounts, open_cards, register_sims
from simulators.scenarios.common import (
    Context,
    Holders,
    Outcome,
    ScenarioType,
    outsiders,
    pass_on,
    residents,
    take,
    transfer,
    window,
)

PAYER_CHANNELS = np.array([b"mobile", b"online", b"counter", b"atm"])


@dataclass(frozen=True)
class Params:
    cards: int = 5
    """At as many different banks (at most one card per bank)."""
    sims: int = 3
    opening_days: float = 3.0
    unverified_share: float = 0.3
    mule_after_days: float = 2.0
    payers_per_card: int = 4
    next_hops: int = 3


def generate(ctx: Context, params: Params) -> Outcome:
    rng, city = ctx.rng, ctx.city
    dealer = int(rng.integers(0, len(city.people)))
    begin, end = window(ctx, params.opening_days + params.mule_after_days + 1)
    opened_by = begin + int(params.opening_days * DAY)
    n_cards = min(params.cards, len(BANKS))
    bank = rng.choice(len(BANKS), n_cards, replace=False)
    cards = open_cards(
        city,
        rng,
        np.sort(by_rhythm(rng, n_cards, begin, opened_by, "office")),
        np.full(n_cards, dealer),
        bank,
        np.where(rng.random(n_cards) < 0.8, b"counter", b"mobile"),
    )
    sims = register_sims(
        city,
        rng,
        np.sort(by_rhythm(rng, params.sims, begin, opened_by, "office")),
        np.full(params.sims, city.people.id_number[dealer]),
        np.arange(params.sims) % len(CARRIERS),
        rng.random(params.sims) >= params.unverified_share,
    )
    card = Holders(
        cards.cols["account"],
        np.full(n_cards, city.people.name[dealer]),
        np.full(n_cards, city.people.id_number[dealer]),
        bank.astype(np.int64),
    )

    n = n_cards * params.payers_per_card
    card_of = np.repeat(np.arange(n_cards), params.payers_per_card)
    used_from = opened_by + int(params.mule_after_days * DAY)
    received_at = np.maximum(cards.time[card_of] + HOUR, by_rhythm(rng, n, min(used_from, end - 1), end, "transfer"))
    payer = rng.integers(0, len(city.people), n)
    amount = amounts(rng, n, 1_500_000, 0.8)
    channel = PAYER_CHANNELS[rng.choice(len(PAYER_CHANNELS), n, p=(0.5, 0.2, 0.2, 0.1))]
    paid = transfer(ctx, received_at, residents(city, payer), take(card, card_of), amount, channel)
    next_hops = outsiders(ctx, params.next_hops)
    moved = pass_on(ctx, received_at, amount, take(card, card_of), next_hops)

    out = Outcome([cards, sims, paid, moved])
    out.involve("id_number", [city.people.id_number[dealer]], "dealer_id", True)
    out.involve("account", card.account.tolist(), "sold_card", True)
    out.involve("account", next_hops.account.tolist(), "next_hop", True)
    out.involve("phone", sims.cols["msisdn"].tolist(), "sold_sim", False)
    out.involve("account", city.people.account[payer].tolist(), "payer", False)
    return out


SCENARIO = ScenarioType("card_dealer", False, Params, generate, default_count=2)
