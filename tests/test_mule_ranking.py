"""Mules judged against the population's money flows: a mule that holds a victim's money for a day and
passes it on nearly whole, at any amount, ranks above ordinary accounts, payroll and family transfers."""

import gzip
from pathlib import Path

from antifraud.alerts.models import Entity
from antifraud.evaluation.ranking import ScoredAccounts, curves
from antifraud.events.codec import encode
from detectors.transfer_risk import Flow, mule_features, passed_on
from tests.test_transfer_risk import LIMITS, MULE, NEXT_HOP, transfer

HOUR = 3600.0
DAY = 24 * HOUR


def flow(event_id: str, hours: float, other: str, yuan: int, own: bool = False) -> Flow:
    return Flow(event_id, hours * HOUR, other, yuan * 100, "mobile", own)


def test_an_outflow_moves_on_the_earliest_earlier_inflow_it_is_nearly_whole_of() -> None:
    received = [flow("in1", 0, "a", 10_000), flow("in2", 1, "b", 10_000), flow("in3", 2, "c", 500)]
    paid = [flow("out1", 5, "x", 9_800), flow("out2", 6, "y", 9_000), flow("out3", 7, "z", 490)]
    taken, others = passed_on(received, paid, LIMITS.whole_share)
    assert [f.event_id for f in taken] == ["in1", "in3"], "each inflow once, the earliest first; any amount"
    assert others == 1, "9,000 of 10,000 keeps more than a cut"


def test_money_passed_on_before_it_arrived_is_not_passed_on() -> None:
    taken, others = passed_on([flow("in", 5, "a", 10_000)], [flow("out", 4, "x", 9_900)], LIMITS.whole_share)
    assert taken == [] and others == 1


def test_a_mule_that_holds_a_victims_money_for_a_day_shows_it_in_every_feature() -> None:
    inflows = [flow("in", 0, "victim", 12_000)]
    outflows = [flow("out", 20, NEXT_HOP, 11_800)]
    values = mule_features(inflows, outflows, 20 * HOUR, LIMITS)
    assert values == {
        "pass_on_share": 1.0,
        "whole_pass_ons": 1.0,
        "passed_amount_fen": 1_200_000.0,
        "fan_in_payers": 1.0,
        "other_outflows_max": 0.0,
    }


def test_an_ordinary_account_pays_shops_and_friends_from_what_it_receives() -> None:
    inflows = [flow("wage", 0, "employer", 8_000)]
    outflows = [flow("rent", 2, "landlord", 3_000), flow("shop", 5, "shop", 120), flow("friend", 9, "friend", 500)]
    values = mule_features(inflows, outflows, 10 * HOUR, LIMITS)
    assert values["pass_on_share"] == 0.0 and values["whole_pass_ons"] == 0.0
    assert values["other_outflows_max"] == 3.0


def test_flows_past_the_window_or_in_ones_own_name_do_not_count() -> None:
    window = LIMITS.pass_on_window_seconds / HOUR
    inflows = [flow("old", 0, "a", 10_000), flow("mine", window + 1, "me", 5_000, own=True)]
    outflows = [flow("out", window + 2, "x", 9_900), flow("to-me", window + 3, "me", 4_990, own=True)]
    values = mule_features(inflows, outflows, (window + 3) * HOUR, LIMITS)
    assert values["fan_in_payers"] == 0.0 and values["pass_on_share"] == 0.0
    assert values["other_outflows_max"] == 1.0, "the inflow it moved on is older than the window"


def account(n: int) -> str:
    return f"6222001{n:09d}"


def test_a_slow_mule_outranks_ordinary_accounts_payroll_and_family(tmp_path: Path) -> None:
    events = []
    for day in range(3):  # a city: people paying shops and friends, a few times a day each
        for person in range(30):
            for k in range(3):
                at = (day * 24 + 8 + 4 * k) * 60 + person
                shop = 1000 + (person + k) % 5
                payee, payee_name = (account(shop), "商店") if k else (account((person + 1) % 30), f"人{person + 1}")
                amount = 50 + 97 * ((person * 7 + k) % 13)
                events.append(
                    transfer(
                        f"d{day}p{person}k{k}",
                        at,
                        account(person),
                        payee,
                        amount,
                        payer_name=f"人{person}",
                        payee_name=payee_name,
                    )
                )
    # payroll: an employer pays everyone their wage; a parent sends money home and the child pays rent
    employer, parent = account(2000), account(2001)
    events += [
        transfer(f"wage{p}", 60 + p, employer, account(p), 6_500, payer_name="公司", payee_name=f"人{p}")
        for p in range(30)
    ]
    events.append(transfer("home", 600, parent, account(3), 2_000, payer_name="父亲", payee_name="人3"))
    # the mule: a victim's savings in, held for 20 hours, 98.5% passed on
    events.append(transfer("victim", 700, account(9), MULE, 8_000, payer_name="人9", payee_name="赵六"))
    events.append(transfer("pass-on", 700 + 20 * 60, MULE, NEXT_HOP, 7_880, payer_name="赵六", payee_name="钱七"))
    path = tmp_path / "events.jsonl.gz"
    with gzip.open(path, "wb") as out:
        for event in sorted(events, key=lambda e: e.event_time):
            out.write(encode(event) + b"\n")
    scores = ScoredAccounts.of(path, LIMITS).scores()
    mule = Entity(kind="account", value=MULE)
    population = curves(scores["population"], [mule])
    assert population.roc_auc == 1.0 and population.pr_auc == 1.0, "first among every account"
    assert scores["rules"][mule] < LIMITS.mule_alert_score, "the worker's rule misses a mule that waits a day"
