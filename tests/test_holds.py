"""The ATM hold: its state machine and which transfers are held (pure, no I/O)."""

from datetime import datetime, timedelta, timezone

import pytest

from antifraud.events.models import BankTransfer
from antifraud.holds.models import Hold, IllegalTransition, PayeeFlag, creation, transition
from antifraud.holds.policy import PayeeSide, hold_for, hold_id_for, needs_hold, on_flag, on_held, release
from antifraud.thresholds import load_thresholds

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
DAY = timedelta(hours=load_thresholds().holds.period_hours)


def atm_transfer(
    event_id: str, at: datetime, *, payee_name: str = "李四", channel: str = "atm", payer: str = "6222000000000001"
) -> BankTransfer:
    return BankTransfer(
        event_id=event_id,
        event_time=at,
        channel=channel,
        payer_account=payer,
        payer_name="张三",
        payer_id_number="11010519491231002X",
        payee_account="6222000000000777",
        payee_name=payee_name,
        amount_fen=500_000,
        atm_id="atm-1" if channel == "atm" else None,
        branch_id="br-1" if channel == "counter" else None,
    )


def a_hold(event_id: str = "t-1", at: datetime = T0) -> Hold:
    return hold_for(atm_transfer(event_id, at), DAY)


def test_period_is_24_hours_from_the_transfer_and_the_id_follows_the_transfer() -> None:
    hold = a_hold()
    assert DAY == timedelta(hours=24)
    assert (hold.created_at, hold.due_at, hold.state) == (T0, T0 + DAY, "held")
    assert hold.hold_id == hold_id_for("t-1") == a_hold().hold_id != a_hold("t-2").hold_id


@pytest.mark.parametrize(
    ("channel", "payee_name", "held"),
    [
        ("atm", "李四", True),
        ("atm", "张三", False),
        ("atm", " 张三 ", False),
        ("counter", "李四", False),
        ("mobile", "李四", False),
        ("online", "李四", False),
    ],
)
def test_only_atm_transfers_to_another_name_are_held(channel: str, payee_name: str, held: bool) -> None:
    assert needs_hold(atm_transfer("t", T0, payee_name=payee_name, channel=channel)) is held


def test_names_compare_ignoring_case_and_spacing() -> None:
    transfer = atm_transfer("t", T0).model_copy(update={"payer_name": "Zhang San", "payee_name": "zhang  SAN"})
    assert not needs_hold(transfer)


@pytest.mark.parametrize(
    "path",
    [
        [("released", "system")],
        [("revoked", "sender")],
        [("frozen", "police")],
        [("frozen", "police"), ("released", "police")],
        [("frozen", "police"), ("returned", "police")],
    ],
)
def test_legal_moves_give_events_with_stable_ids(path: list[tuple[str, str]]) -> None:
    hold = a_hold()
    for to, actor in path:
        event = transition(hold, to, at=T0 + DAY, actor=actor, reason="test")
        assert (event.hold_id, event.from_state, event.to_state, event.hold.state) == (hold.hold_id, hold.state, to, to)
        assert transition(hold, to, at=T0 + 2 * DAY, actor=actor, reason="again").transition_id == event.transition_id
        hold = event.hold


@pytest.mark.parametrize(
    ("start", "to", "actor"),
    [
        ("released", "released", "system"),
        ("released", "revoked", "sender"),
        ("released", "frozen", "police"),
        ("revoked", "released", "system"),
        ("returned", "released", "police"),
        ("held", "returned", "police"),
        ("frozen", "revoked", "sender"),
        ("frozen", "released", "system"),
        ("held", "released", "sender"),
        ("held", "frozen", "sender"),
        ("held", "held", "system"),
    ],
)
def test_illegal_moves_are_refused_naming_hold_and_states(start: str, to: str, actor: str) -> None:
    hold = a_hold().model_copy(update={"state": start})
    with pytest.raises(IllegalTransition) as refused:
        transition(hold, to, at=T0, actor=actor, reason="test")
    assert (refused.value.hold_id, refused.value.current, refused.value.attempted) == (hold.hold_id, start, to)
    assert hold.hold_id in str(refused.value) and f"{start} -> {to}" in str(refused.value)


def test_creation_is_at_the_transfer_time() -> None:
    event = creation(a_hold())
    assert (event.from_state, event.to_state, event.at, event.actor) == (None, "held", T0, "system")


def test_release_is_at_the_due_time_by_the_system() -> None:
    event = release(a_hold())
    assert (event.from_state, event.to_state, event.at, event.actor) == ("held", "released", T0 + DAY, "system")


def test_release_refuses_a_hold_that_is_not_held() -> None:
    with pytest.raises(IllegalTransition):
        release(a_hold().model_copy(update={"state": "frozen"}))


HORIZON = timedelta(hours=load_thresholds().holds.payee_flag_hours)


def a_flag(alert_id: str, at: datetime) -> PayeeFlag:
    return PayeeFlag(alert_id=alert_id, detector="transfer_risk", score=1.5, at=at)


def test_a_held_payment_and_a_flag_on_its_payee_meet_once_whichever_comes_first() -> None:
    hold, flag = a_hold(), a_flag("a-1", T0 + timedelta(hours=1))
    held_first = on_flag(on_held(PayeeSide(), hold, T0, HORIZON).side, flag, flag.at, HORIZON)
    flag_first = on_held(on_flag(PayeeSide(), flag, flag.at, HORIZON).side, hold, flag.at, HORIZON)
    assert [w.warning_id for w in held_first.warnings] == [w.warning_id for w in flag_first.warnings]
    assert [(w.hold_id, w.flag.alert_id) for w in held_first.warnings] == [(hold.hold_id, "a-1")]
    assert on_held(PayeeSide(), hold, T0, HORIZON).warnings == []


def test_a_hold_past_due_or_a_flag_past_its_horizon_warns_no_more() -> None:
    hold = a_hold()
    side = on_held(PayeeSide(), hold, T0, HORIZON).side
    assert on_flag(side, a_flag("late", T0 + DAY), T0 + DAY, HORIZON).warnings == []
    old_flag = a_flag("old", T0 - HORIZON - timedelta(minutes=1))
    flagged = on_flag(PayeeSide(), old_flag, old_flag.at, HORIZON).side
    assert on_held(flagged, hold, T0, HORIZON).warnings == []
