"""Benign: a cell commissioned during the period. Its id is new, like a fake base
station's, but it is in the carrier's registry at its real location, uses normal
ciphering and signal, and handsets move onto it gradually over days.
"""

from dataclasses import dataclass

import numpy as np

from simulators.batch import cell_observations
from simulators.city import DISTRICTS, MICRO
from simulators.clock import DAY, by_rhythm
from simulators.identity import CARRIERS
from simulators.scenarios.common import Context, Outcome, ScenarioType, window


@dataclass(frozen=True)
class Params:
    days: float = 5.0
    first_day_observations: int = 40
    """Observations on the first day; each later day adds as many again."""


def generate(ctx: Context, params: Params) -> Outcome:
    rng, city = ctx.rng, ctx.city
    people = city.people
    operator = int(rng.integers(0, len(CARRIERS)))
    district = int(rng.integers(0, len(DISTRICTS)))
    cell_id, lac = city.unregistered_cell(rng, operator, district)
    site = np.round(
        np.array([DISTRICTS[district][1], DISTRICTS[district][2]]) * MICRO + rng.normal(0, 0.01 * MICRO, 2)
    ).astype(np.int64)
    begin, end = window(ctx, params.days)
    days = max(1, round((end - begin) / DAY))
    per_day = params.first_day_observations * np.arange(1, days + 1)
    time = np.concatenate(
        [
            by_rhythm(rng, int(k), begin + d * DAY, min(end, begin + (d + 1) * DAY), "cell")
            for d, k in enumerate(per_day.tolist())
            if begin + d * DAY < end
        ]
    )
    nearby = np.flatnonzero((people.carrier == operator) & (people.district == district))
    handset = rng.choice(nearby, len(time))
    n = len(time)
    observations = cell_observations(
        time,
        cell_id=cell_id,
        lac=lac,
        operator=CARRIERS[operator].encode(),
        signal_dbm=np.clip(np.round(rng.normal(-85, 8, n)), -120, -55).astype(np.int64),
        encryption_level=3,
        handset_imei=people.imei[handset],
        location=site + np.round(rng.normal(0, 1500, (n, 2))).astype(np.int64),
    )
    out = Outcome([observations])
    out.new_cells.append(
        {
            "cell_id": cell_id.decode(),
            "operator": CARRIERS[operator],
            "lac": lac,
            "lat": int(site[0]) / MICRO,
            "lon": int(site[1]) / MICRO,
            "district": DISTRICTS[district][0],
            "commissioned": int(begin),
        }
    )
    out.involve("cell", [cell_id], "new_cell", False)
    return out


SCENARIO = ScenarioType("new_cell_tower", True, Params, generate, default_count=1)
