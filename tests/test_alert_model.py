"""The alert model: a stable id derived from detector, entity and window, and its invariants."""

import re
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from antifraud.alerts.models import Alert, Audience, Entity, Reason, alert_id_for

START = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
PHONE = Entity(kind="phone", value="17012340001")


def make_alert(**changes: object) -> Alert:
    """A valid call-fan-out alert built with ``Alert.create``, with ``changes`` applied."""
    fields: dict[str, object] = {
        "detector": "call_fanout",
        "entity": PHONE,
        "window_start": START,
        "window_end": START + timedelta(minutes=10),
        "severity": "medium",
        "score": 1.2,
        "reasons": [Reason(feature="distinct_callees_600s", value=6, threshold=5)],
        "evidence_event_ids": ["call-1", "call-2"],
        "audience": [Audience(kind="police"), Audience(kind="branch", id="br-loudong")],
    }
    merged = {**fields, **changes}
    merged.setdefault("trigger", f"event-at-{merged['window_start'].timestamp()}")  # type: ignore[attr-defined]
    return Alert.create(**merged)  # type: ignore[arg-type]


TRIGGER = f"event-at-{START.timestamp()}"


def test_alert_id_is_stable() -> None:
    first = alert_id_for("call_fanout", PHONE, "call-1")
    assert first == alert_id_for("call_fanout", Entity(kind="phone", value="17012340001"), "call-1")
    assert re.fullmatch(r"[0-9a-f]{32}", first)


@pytest.mark.parametrize(
    ("detector", "entity", "trigger"),
    [
        pytest.param("sms_fanout", PHONE, "call-1", id="detector"),
        pytest.param("call_fanout", Entity(kind="phone", value="17012340002"), "call-1", id="entity_value"),
        pytest.param("call_fanout", Entity(kind="account", value="17012340001"), "call-1", id="entity_kind"),
        pytest.param("call_fanout", PHONE, "call-2", id="trigger"),
    ],
)
def test_alert_id_differs(detector: str, entity: Entity, trigger: str) -> None:
    assert alert_id_for(detector, entity, trigger) != alert_id_for("call_fanout", PHONE, "call-1")


def test_create_derives_the_id_from_the_trigger_not_from_what_the_alert_says() -> None:
    alert = make_alert()
    assert alert.alert_id == alert_id_for("call_fanout", PHONE, TRIGGER)
    assert make_alert(score=9.0, evidence_event_ids=["other"]).alert_id == alert.alert_id


def test_two_incidents_in_the_same_second_have_two_ids() -> None:
    """Two transfers to one payee in one second: the window is the same, the triggering events differ."""
    first, second = make_alert(trigger="pay-1"), make_alert(trigger="pay-2")
    assert first.window_start == second.window_start and first.alert_id != second.alert_id


def test_raised_at_is_not_part_of_the_content() -> None:
    alert = make_alert()
    raised = alert.model_copy(update={"raised_at": START + timedelta(hours=1)})
    assert raised.content() == alert.content() and raised.model_dump()["raised_at"] is not None


def test_mismatched_alert_id_is_refused() -> None:
    fields = make_alert().model_dump()
    with pytest.raises(ValidationError, match="alert_id does not match"):
        Alert(**{**fields, "alert_id": alert_id_for("call_fanout", PHONE, "another-event")})


def test_window_end_before_start_is_refused() -> None:
    with pytest.raises(ValidationError, match="window_end is before window_start"):
        make_alert(window_end=START - timedelta(seconds=1))


def test_window_of_zero_length_is_accepted() -> None:
    assert make_alert(window_end=START).window_end == START


@pytest.mark.parametrize("branch_id", [None, ""], ids=["missing", "empty"])
def test_branch_audience_needs_an_id(branch_id: str | None) -> None:
    with pytest.raises(ValidationError, match="branch audience needs the branch id"):
        Audience(kind="branch", id=branch_id)


@pytest.mark.parametrize("field", ["reasons", "evidence_event_ids", "audience"])
def test_empty_lists_are_refused(field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        make_alert(**{field: []})
    assert caught.value.errors()[0]["loc"] == (field,)


def test_naive_window_is_refused() -> None:
    with pytest.raises(ValidationError):
        make_alert(window_start=START.replace(tzinfo=None), window_end=START.replace(tzinfo=None))


def test_alert_json_round_trip() -> None:
    alert = make_alert()
    again = Alert.model_validate_json(alert.model_dump_json())
    assert again == alert
    assert again.alert_id == alert.alert_id
    assert again.audience[1] == Audience(kind="branch", id="br-loudong")
