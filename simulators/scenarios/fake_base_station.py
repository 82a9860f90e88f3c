"""A fake base station (伪基站): a car-borne transmitter in one town poses as a carrier cell.

Its cell id is well-formed but in no registry; handsets nearby attach briefly
because its signal is strong, and it offers no or weak ciphering. While they
are attached it pushes texts from spoofed numbers with links to look-alike
bank and government sites.
"""

from dataclasses import dataclass

import numpy as np

from simulators.batch import cell_observations, json_lists, sms_records
from simulators.city import DISTRICTS, MICRO
from simulators.clock import HOUR, by_rhythm, uniform
from simulators.identity import CARRIERS
from simulators.scenarios.common import Context, Outcome, ScenarioType, window

LEGIT = (
    "icbc.com.cn",
    "ccb.com",
    "abchina.com",
    "boc.cn",
    "bankcomm.com",
    "cmbchina.com",
    "10086.cn",
    "chinatax.gov.cn",
    "12123.gov.cn",
    "suzhou.gov.cn",
)
LURES = ("verify", "kefu", "vip", "jf", "etc", "secure", "95588", "login")
TLDS = ("top", "cc", "xyz", "vip", "com", "net", "cn.com")


def lookalikes(rng: np.random.Generator, n: int) -> list[bytes]:
    """Domains that imitate a bank's or office's: a swapped letter, or the name with a lure and odd TLD."""
    out = []
    for base in rng.choice(LEGIT, n).tolist():
        label = base.split(".")[0]
        if rng.random() < 0.4:
            spoofed = label.replace("i", "1", 1).replace("o", "0", 1).replace("m", "rn", 1)
            label = spoofed if spoofed != label else label + label[-1]
            out.append(f"{label}.{base.split('.', 1)[1]}".encode())
        else:
            out.append(f"{label}-{rng.choice(LURES)}.{rng.choice(TLDS)}".encode())
    return out


@dataclass(frozen=True)
class Params:
    hours: float = 2.0
    handsets: int = 300
    sms: int = 400
    senders: int = 3


def generate(ctx: Context, params: Params) -> Outcome:
    rng, city = ctx.rng, ctx.city
    people = city.people
    operator = 0  # posing as the biggest carrier reaches the most handsets
    district = int(rng.choice(len(DISTRICTS), p=np.array([d[3] for d in DISTRICTS])))
    cell_id, lac = city.unregistered_cell(rng, operator, district)
    centre = np.array([DISTRICTS[district][1], DISTRICTS[district][2]]) * MICRO
    begin, end = window(ctx, 1)
    start = int(by_rhythm(rng, 1, begin, end, "office")[0])
    stop = min(end, start + int(params.hours * HOUR))

    nearby = np.flatnonzero((people.carrier == operator) & (people.district == district))
    handset = rng.choice(nearby, min(params.handsets, len(nearby)), replace=False)
    seen = np.repeat(handset, rng.integers(1, 3, len(handset)))
    time = uniform(rng, len(seen), start, stop)
    position = np.round(centre + rng.normal(0, 0.003 * MICRO, (len(seen), 2))).astype(np.int64)
    observations = cell_observations(
        time,
        cell_id=cell_id,
        lac=lac,
        operator=CARRIERS[operator].encode(),
        signal_dbm=rng.integers(-60, -39, len(seen)),
        encryption_level=np.where(rng.random(len(seen)) < 0.6, 0, 1),
        handset_imei=people.imei[seen],
        location=position,
    )
    senders = city.ids.new_phones(rng, rng.integers(0, len(CARRIERS), params.senders))
    receiver = rng.choice(handset, params.sms)
    texts = sms_records(
        uniform(rng, params.sms, start, stop),
        sender=senders[rng.integers(0, params.senders, params.sms)],
        receiver=people.phone[receiver],
        cell_id=cell_id,
        link_domains=json_lists([[d] for d in lookalikes(rng, params.sms)]),
    )
    out = Outcome([observations, texts])
    out.involve("cell", [cell_id], "fake_cell", True)
    out.involve("phone", senders.tolist(), "sms_sender", True)
    return out


SCENARIO = ScenarioType("fake_base_station", False, Params, generate, default_count=1)
