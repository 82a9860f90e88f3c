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
    return Alert.create(**{**fields, **changes})  # type: ignore[arg-type]


def test_alert_id_is_stable() -> None:
    first = alert_id_for("call_fanout", PHONE, START)
    assert first == alert_id_for("call_fanout", Entity(kind="phone", value="17012340001"), START)
    assert re.fullmatch(r"[0-9a-f]{32}", first)


@pytest.mark.parametrize(
    ("detector", "entity", "window_start"),
    [
        pytest.param("sms_fanout", PHONE, START, id="detector"),
        pytest.param("call_fanout", Entity(kind="phone", value="17012340002"), START, id="entity_value"),
        pytest.param("call_fanout", Entity(kind="account", value="17012340001"), START, id="entity_kind"),
        pytest.param("call_fanout", PHONE, START + timedelta(seconds=1), id="window_start"),
    ],
)
def test_alert_id_differs(detector: str, entity: Entity, window_start: datetime) -> None:
    assert alert_id_for(detector, entity, window_start) != alert_id_for("call_fanout", PHONE, START)


def test_create_derives_the_id() -> None:
    alert = make_alert()
    assert alert.alert_id == alert_id_for("call_fanout", PHONE, START)
    assert make_alert(score=9.0, evidence_event_ids=["other"]).alert_id == alert.alert_id


def test_same_instant_in_another_offset_gives_the_same_alert() -> None:
    # The id hashes the instant, not its written offset: +08:00 and UTC give one id.
    beijing = timezone(timedelta(hours=8))
    alert = make_alert(window_start=START.astimezone(beijing), window_end=START.astimezone(beijing))
    assert alert.alert_id == make_alert(window_end=START).alert_id


def test_mismatched_alert_id_is_refused() -> None:
    fields = make_alert().model_dump()
    with pytest.raises(ValidationError, match="alert_id does not match"):
        Alert(**{**fields, "alert_id": alert_id_for("call_fanout", PHONE, START + timedelta(seconds=1))})


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
