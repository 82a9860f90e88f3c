"""Bulk card opening as a pure function: each feature, benign look-alikes (two_cards), quiet periods, replay."""

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone

from antifraud.alerts.models import Audience
from antifraud.events.models import CardOpening
from antifraud.events.types import make_id_number
from antifraud.thresholds import load_thresholds
from detectors.card_opening import DETECTOR, detect, flagged
from detectors.window import EntityState, WindowResult
from tests.windowing import replay_checks, run_batches

LIMITS = load_thresholds().card_opening
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
ID = make_id_number("320585", "19900101", 123)
BANKS = ["icbc", "ccb", "abc", "boc", "bocom", "cmb"]


def card(n: int, days: float, bank: str, channel: str = "counter", id_number: str = ID) -> CardOpening:
    return CardOpening(
        event_id=f"card-{id_number[-6:]}-{n:03d}",
        event_time=T0 + timedelta(days=days),
        bank=bank,
        id_number=id_number,
        account=f"62220000{n:08d}",
        branch_id=f"{bank}-br-{n}",
        channel=channel,
    )


def run(events: Sequence[CardOpening], prior: Mapping[str, EntityState] | None = None) -> WindowResult:
    return detect(events, prior or {}, LIMITS)


def features(result: WindowResult) -> dict[str, tuple[float, float]]:
    return {r.feature: (r.value, r.threshold) for r in result.alerts[0].reasons}


def test_defaults_follow_the_documented_basis() -> None:
    assert (LIMITS.burst_days, LIMITS.window_days, LIMITS.history_days) == (7, 30, 365)
    assert LIMITS.max_counter_cards_per_bank == 1


def test_dealer_opening_at_five_banks_within_three_days_alerts_banks_and_police() -> None:
    openings = [card(i, i * 0.7, BANKS[i]) for i in range(5)]
    result = run(openings)
    assert len(result.alerts) == 1
    alert = result.alerts[0]
    assert alert.detector == DETECTOR and alert.entity.kind == "id_number" and alert.entity.value == ID
    # Crossed at the third card: three cards at three banks within the week.
    assert alert.window_end == openings[2].event_time
    assert features(result) == {
        "cards_7d": (3, 2),
        "banks_7d": (3, 2),
        "cards_30d": (3, 4),
        "cards_365d": (3, 6),
        "counter_cards_one_bank_365d": (1, 1),
    }
    assert alert.severity == "high"
    assert alert.evidence_event_ids == [o.event_id for o in openings[:3]]
    assert Audience(kind="police") in alert.audience
    assert {a.id for a in alert.audience if a.kind == "bank_risk"} == set(BANKS[:3])


def test_two_cards_at_two_banks_within_days_stay_quiet() -> None:
    """The two_cards look-alike: a salary card and a mortgage account at two banks."""
    result = run([card(1, 0, "icbc"), card(2, 3.5, "ccb")])
    assert result.alerts == []
    assert flagged(result.alerts) == {}


def test_flagged_ids_are_known_from_the_opening_that_crossed_the_first_limit() -> None:
    """Card trade judges the dealer's cards against this time; a later episode does not move it."""
    first = [card(i, i * 0.7, BANKS[i]) for i in range(4)]
    openings = first + [card(9, 20, "cmb"), card(10, 20.5, "boc"), card(11, 21, "abc")]
    alerts = run(openings).alerts
    assert len(alerts) == 2
    assert flagged(alerts) == {ID: first[2].event_time.timestamp()}
    assert flagged(list(reversed(alerts))) == flagged(alerts)


def test_second_counter_account_at_one_bank_within_a_year_alerts() -> None:
    result = run([card(1, 0, "icbc"), card(2, 200, "icbc")])
    assert len(result.alerts) == 1
    assert features(result)["counter_cards_one_bank_365d"] == (2, 1)
    assert result.alerts[0].severity == "medium"


def test_e_account_beside_a_counter_account_at_one_bank_stays_quiet() -> None:
    """Mobile and online openings are class II/III e-accounts, allowed beside a class-I account."""
    assert run([card(1, 0, "icbc"), card(2, 10, "icbc", "mobile"), card(3, 40, "icbc", "online")]).alerts == []


def test_steady_openings_over_a_month_cross_the_30_day_limit() -> None:
    openings = [card(i, i * 7.2, BANKS[i]) for i in range(5)]
    result = run(openings)
    assert len(result.alerts) == 1
    found = features(result)
    assert found["cards_30d"] == (5, 4) and found["cards_7d"][0] <= 2


def test_openings_spread_over_a_year_cross_the_yearly_limit_only() -> None:
    openings = [card(i, i * 50, BANKS[i % len(BANKS)], "mobile") for i in range(7)]
    result = run(openings)
    assert len(result.alerts) == 1
    assert features(result)["cards_365d"] == (7, 6)
    assert result.alerts[0].window_end == openings[-1].event_time


def test_one_alert_per_episode_then_again_after_the_quiet_period() -> None:
    first = [card(i, i * 0.5, BANKS[i]) for i in range(5)]
    later = [card(10 + i, 8 + i * 0.5, BANKS[i], "mobile") for i in range(3)]
    alerts, state = run_batches(lambda events, prior: detect(events, prior, LIMITS), [first, later])
    assert [a.window_end for a in alerts] == [first[2].event_time, later[0].event_time]
    assert state[ID].alerted_until == later[0].event_time.timestamp() + 7 * 86400


def test_ids_are_judged_apart() -> None:
    other = make_id_number("320585", "19851212", 456)
    openings = [card(1, 0, "icbc"), card(2, 1, "ccb", id_number=other), card(3, 2, "abc", id_number=other)]
    assert run(openings).alerts == []


def test_replay_safe() -> None:
    replay_checks(lambda events, prior: detect(events, prior, LIMITS), [card(i, i * 0.7, BANKS[i]) for i in range(5)])
