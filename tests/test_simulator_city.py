"""The synthetic city and its everyday life look like the real thing, without giveaways."""

import numpy as np
import pytest

from antifraud.events.types import id_check_char
from simulators.city import City, build_city
from simulators.clock import DAY, HOUR, local_hour
from simulators.engine import rng_for
from simulators.identity import BANKS, CARRIER_PREFIXES
from simulators.normal import Rates, everyday


@pytest.fixture(scope="module")
def city() -> City:
    return build_city(rng_for(5, 0), 3000)


def luhn_ok(number: str) -> bool:
    total = 0
    for i, d in enumerate(int(c) for c in reversed(number)):
        total += d if i % 2 == 0 else (d * 2 // 10 + d * 2 % 10)
    return total % 10 == 0


def test_identifiers_are_valid_and_unique(city: City) -> None:
    p = city.people
    ids = [x.decode() for x in p.id_number.tolist()]
    assert all(id_check_char(x[:17]) == x[17] for x in ids) and len(set(ids)) == len(ids)
    assert sum(x.startswith("320585") for x in ids) > 0.7 * len(ids), "most residents are from Taicang"
    phones = [x.decode() for x in p.phone.tolist()]
    assert len(set(phones)) == len(phones)
    assert all(ph[:3] in CARRIER_PREFIXES[c] and len(ph) == 11 for ph, c in zip(phones, p.carrier.tolist()))
    accounts = [x.decode() for x in p.account.tolist()]
    assert len(set(accounts)) == len(accounts)
    for account, bank in zip(accounts, p.bank.tolist()):
        assert account.startswith(BANKS[bank].bin) and len(account) == BANKS[bank].length and luhn_ok(account)
    assert 16 <= min(map(len, accounts)) and max(map(len, accounts)) <= 19
    assert all(len(i) == 15 and luhn_ok(i.decode()) for i in p.imei.tolist())


def test_circles_are_small_with_a_heavy_tail_and_exclude_oneself(city: City) -> None:
    degree = city.contacts.size(np.arange(len(city.people)))
    assert np.median(degree) <= 8 and degree.max() >= 10 * np.median(degree)
    owner = np.repeat(np.arange(len(city.people)), degree)
    assert not (city.contacts.members == owner).any()


def test_everyday_life_follows_the_day_and_stays_mostly_in_circles(city: City) -> None:
    rng = rng_for(5, 2)
    start = 1772380800  # local midnight, 2026-03-02
    batches = [b for h in range(24) for b in everyday(city, rng, start + h * HOUR, start + (h + 1) * HOUR, Rates())]
    calls = [b for b in batches if b.kind == "call_record"]
    call_time = np.concatenate([b.time for b in calls])
    assert call_time.min() >= start and call_time.max() < start + DAY
    hour = local_hour(call_time)
    assert (hour < 5).sum() * 10 < ((hour >= 9) & (hour < 14)).sum(), "few calls at night"
    friends = {
        (city.people.phone[o], city.people.phone[c])
        for o, c in zip(
            np.repeat(np.arange(len(city.people)), city.contacts.size(np.arange(len(city.people)))),
            city.contacts.members,
        )
    }
    pairs = [(a, b) for batch in calls for a, b in zip(batch.cols["caller"], batch.cols["callee"])]
    assert 0.75 < sum(p in friends for p in pairs) / len(pairs) < 0.95
    duration = np.concatenate([b.cols["duration_s"] for b in calls])
    assert np.percentile(duration, 99) > 8 * np.median(duration), "heavy-tailed durations"
    transfers = [b for b in batches if b.kind == "bank_transfer"]
    channel = np.concatenate([b.cols["channel"] for b in transfers])
    branch = np.concatenate([b.cols["branch_id"] for b in transfers])
    assert ((channel == b"counter") == (branch != b"")).all()
    assert (channel == b"mobile").mean() > 0.4
    observations = [b for b in batches if b.kind == "cell_observation"]
    assert set(np.concatenate([b.cols["encryption_level"] for b in observations]).tolist()) == {2, 3}
    registered = set(city.cells.cell_id.tolist())
    assert set(np.concatenate([b.cols["cell_id"] for b in observations]).tolist()) <= registered
