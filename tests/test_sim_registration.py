"""Bulk SIM registration as a pure function: each feature, benign look-alikes, quiet periods, replay."""

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone

import pytest

from antifraud.alerts.models import Audience
from antifraud.events.models import SimRegistration
from antifraud.events.types import make_id_number
from antifraud.thresholds import SimRegistrationThresholds
from detectors.sim_registration import DETECTOR, detect
from detectors.window import EntityState, WindowResult
from tests.windowing import ids, replay_checks, run_batches

LIMITS = SimRegistrationThresholds(
    burst_days=7,
    max_sims_burst=2,
    window_days=30,
    max_sims_window=4,
    max_unverified_window=1,
    history_days=365,
    max_sims_per_carrier=5,
    max_tracked=100,
)
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
ID = make_id_number("320585", "19900101", 123)
DAY = 86400


def sim(n: int, days: float, carrier: str = "cmcc", verified: bool = True, id_number: str = ID) -> SimRegistration:
    return SimRegistration(
        event_id=f"sim-{id_number[-6:]}-{n:03d}",
        event_time=T0 + timedelta(days=days),
        carrier=carrier,
        id_number=id_number,
        msisdn=f"1700000{n:04d}",
        real_name_verified=verified,
        outlet="outlet-1",
    )


def run(events: Sequence[SimRegistration], prior: Mapping[str, EntityState] | None = None) -> WindowResult:
    return detect(events, prior or {}, LIMITS)


def feature(result: WindowResult, name: str) -> tuple[float, float]:
    reason = next(r for r in result.alerts[0].reasons if r.feature == name)
    return reason.value, reason.threshold


def test_dealer_registering_at_three_carriers_within_days_alerts() -> None:
    result = run([sim(1, 0, "cmcc"), sim(2, 1, "unicom", verified=False), sim(3, 2.5, "telecom")])
    assert len(result.alerts) == 1
    alert = result.alerts[0]
    assert alert.detector == DETECTOR and alert.entity.kind == "id_number" and alert.entity.value == ID
    assert feature(result, "sims_7d") == (3, 2)
    assert feature(result, "sims_30d") == (3, 4)
    assert feature(result, "sims_one_carrier_365d") == (1, 5)
    assert feature(result, "unverified_sims_30d") == (1, 1)
    assert alert.evidence_event_ids == [f"sim-{ID[-6:]}-001", f"sim-{ID[-6:]}-002", f"sim-{ID[-6:]}-003"]
    assert alert.window_end == T0 + timedelta(days=2.5)
    assert Audience(kind="police") in alert.audience
    assert {a.id for a in alert.audience if a.kind == "carrier"} == {"cmcc", "unicom", "telecom"}


def test_person_with_two_sims_stays_quiet() -> None:
    assert run([sim(1, 0, "cmcc"), sim(2, 0.5, "unicom")]).alerts == []


def test_one_unverified_registration_stays_quiet() -> None:
    assert run([sim(1, 0, verified=False)]).alerts == []


def test_second_unverified_registration_in_window_alerts() -> None:
    result = run([sim(1, 0, verified=False), sim(2, 20, "unicom", verified=False)])
    assert len(result.alerts) == 1
    assert feature(result, "unverified_sims_30d") == (2, 1)


def test_many_sims_in_thirty_days_alerts_even_spread_beyond_the_burst() -> None:
    result = run([sim(n, n * 7.5) for n in range(5)])
    assert len(result.alerts) == 1
    assert feature(result, "sims_30d") == (5, 4)
    assert feature(result, "sims_7d")[0] == 1


def test_more_than_the_legal_cap_at_one_carrier_alerts() -> None:
    result = run([sim(n, n * 40) for n in range(6)])
    assert len(result.alerts) == 1
    assert feature(result, "sims_one_carrier_365d") == (6, 5)
    assert result.alerts[0].window_end == T0 + timedelta(days=200)


def test_registrations_older_than_the_history_are_forgotten() -> None:
    result = run([sim(n, n * 80) for n in range(6)])
    assert result.alerts == []
    assert {key for _, key in result.changes[ID].removals} == {f"sim-{ID[-6:]}-000"}


def test_ids_are_judged_apart() -> None:
    other = make_id_number("320585", "19920202", 567)
    events = [sim(1, 0), sim(2, 1, id_number=other), sim(3, 2), sim(4, 3, id_number=other)]
    assert run(events).alerts == []


def test_quiet_for_the_burst_then_a_new_episode() -> None:
    first = [sim(1, 0), sim(2, 1), sim(3, 2)]
    alerts, state = run_batches(lambda b, p: detect(b, p, LIMITS), [first, [sim(4, 3)]])
    assert len(alerts) == 1
    later, _ = run_batches(lambda b, p: detect(b, p, LIMITS), [[sim(5, 40), sim(6, 41), sim(7, 42)]], state)
    assert len(later) == 1 and later[0].alert_id != alerts[0].alert_id


def test_tracked_registrations_are_bounded() -> None:
    limits = LIMITS.model_copy(update={"max_tracked": 3})
    result = detect([sim(n, n * 40) for n in range(6)], {}, limits)
    assert result.alerts == []
    kept = {key for (_, key) in result.changes[ID].upserts}
    assert kept == {f"sim-{ID[-6:]}-003", f"sim-{ID[-6:]}-004", f"sim-{ID[-6:]}-005"}


def test_the_alert_is_triggered_by_the_registration_that_crosses_the_limit() -> None:
    """Its id follows from that event, so the same stream (which the pipeline hands over in event-time
    order) gives the same id however it is batched."""
    events = [sim(1, 0), sim(2, 1), sim(3, 2)]
    [alert] = run(events).alerts
    assert alert.trigger == events[-1].event_id
    assert ids(run(events[:2]).alerts) == []


def test_replay_safety() -> None:
    replay_checks(lambda b, p: detect(b, p, LIMITS), [sim(1, 0), sim(2, 1, verified=False), sim(3, 2), sim(4, 3)])


def test_windows_must_nest() -> None:
    with pytest.raises(ValueError, match="burst_days <= window_days <= history_days"):
        SimRegistrationThresholds.model_validate({**LIMITS.model_dump(), "burst_days": 40})
