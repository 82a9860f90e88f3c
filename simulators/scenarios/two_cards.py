"""Benign: residents who open a second card at another bank within days (a salary card
from a new employer, a mortgage account): two openings, not a card trade.
"""

from dataclasses import dataclass

import numpy as np

from simulators.clock import DAY, by_rhythm
from simulators.identity import BANKS
from simulators.normal import open_cards
from simulators.scenarios.common import Context, Outcome, ScenarioType, window


@dataclass(frozen=True)
class Params:
    people: int = 3
    within_days: float = 4.0


def generate(ctx: Context, params: Params) -> Outcome:
    rng, city = ctx.rng, ctx.city
    person = np.repeat(rng.choice(len(city.people), params.people, replace=False), 2)
    bank = np.concatenate([rng.choice(len(BANKS), 2, replace=False) for _ in range(params.people)])
    begin, end = window(ctx, params.within_days)
    time = by_rhythm(rng, len(person), begin, min(end, begin + int(params.within_days * DAY)), "office")
    cards = open_cards(city, rng, time, person, bank, np.full(len(person), b"counter"))
    out = Outcome([cards])
    out.involve("id_number", city.people.id_number[person].tolist(), "card_opener", False)
    return out


SCENARIO = ScenarioType("two_cards", True, Params, generate, default_count=1)
