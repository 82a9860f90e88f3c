"""A teller escalates a live warning to the police (plan (一)1 item 1): the case of the warning's alert
is marked escalated from the branch, reopened if it was closed, and found by analysts; only the place's
own tellers may, and only for a warning the place was shown."""

import asyncio
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from antifraud.alerts.models import Audience, Entity
from antifraud.audit.service import AuditLog
from antifraud.case.models import Case, open_case, transition
from antifraud.case.views import EscalationFeed
from antifraud.stack.embedded import Endpoints
from antifraud.web.warnings import deliver
from tests.conftest import AUDIT_KEYS
from tests.test_case import NOW
from tests.test_case import alert as case_alert
from tests.test_case_views import fold
from tests.test_web_warnings import alert as warning_alert
from tests.web_helpers import BRANCH, OTHER_BRANCH, as_user, web_client

ANALYST = as_user("analyst")
TELLER = as_user("teller")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ((), "new"),
        (("review",), "in_review"),
        (("review", "confirm"), "confirmed"),
        (("review", "dismiss"), "new"),
        (("review", "dismiss", "close"), "new"),
    ],
)
def test_escalating_keeps_an_open_case_where_it_is_and_reopens_a_finished_one(
    path: tuple[str, ...], expected: str
) -> None:
    case = open_case(case_alert(), NOW)
    for action in path:
        case = transition(case, action, actor="ana", now=NOW)  # type: ignore[arg-type]
    escalated = transition(case, "escalate", actor="teller", now=NOW, escalated_at=NOW, escalated_from=BRANCH)
    assert (escalated.status, escalated.escalated_from, escalated.escalated_at) == (expected, BRANCH, NOW)
    assert escalated.version == case.version + 1


def test_the_console_feed_sends_each_escalation_once_even_one_committed_after_a_later_stamped_one() -> None:
    def escalated(minutes: float, entity: str) -> Case:
        at = NOW + timedelta(minutes=minutes)
        case = open_case(case_alert(entity=Entity(kind="account", value=entity)), NOW)
        return transition(case, "escalate", actor="teller", now=at, escalated_at=at, escalated_from=BRANCH)

    feed = EscalationFeed(NOW)
    first, late, later = (
        escalated(1, "6222000000000101"),
        escalated(0.5, "6222000000000102"),
        escalated(2, "6222000000000103"),
    )
    assert feed.fresh([first]) == [first]
    assert feed.fresh([first]) == [], "read again: not sent twice"
    assert feed.fresh([late, first]) == [late], "stamped before the newest seen, committed after it: still sent"
    assert feed.fresh([later, late, first]) == [later]
    assert feed.since() == NOW + timedelta(minutes=1)  # a minute back from the newest seen
    assert feed.fresh([escalated(2, "6222000000000103")]) == [], "the same escalation read again"


def test_a_teller_escalates_a_warning_of_their_branch_and_the_police_queue_shows_it(stack: Endpoints) -> None:
    shown = warning_alert("6222000000000666")
    elsewhere = warning_alert("6222000000000777", Audience(kind="branch", id=OTHER_BRANCH))
    with web_client(stack) as client:
        state = client.app.state  # type: ignore[attr-defined]
        for item in (shown, elsewhere):  # as the app's alerts consumer does, on the app's loop
            client.portal.call(deliver, state.warnings, state.recent_warnings, item)  # type: ignore[union-attr]
        url = f"/api/places/{BRANCH}/warnings/{shown.alert_id}/escalate"
        note = {"note": "customer insists on paying a 'prosecutor' 30,000 yuan"}

        assert client.post(url, json=note).status_code == 401
        assert client.post(url, json=note, headers=as_user("other_teller")).status_code == 403
        assert client.post(url, json=note, headers=ANALYST).status_code == 403, "tellers escalate, analysts act"
        assert client.post(url, json={"note": "  "}, headers=TELLER).status_code == 422
        assert client.post(url, json={**note, "extra": 1}, headers=TELLER).status_code == 422
        unknown = client.post(f"/api/places/{BRANCH}/warnings/{elsewhere.alert_id}/escalate", json=note, headers=TELLER)
        assert unknown.status_code == 404 and elsewhere.alert_id in unknown.json()["detail"]
        assert client.get("/api/cases", headers=ANALYST).json() == [], "refusals wrote nothing"

        mark = f"/api/places/{BRANCH}/warnings/{shown.alert_id}/handling"
        assert client.post(mark, json={"state": "seen"}, headers=as_user("other_teller")).status_code == 403
        seen = client.post(mark, json={"state": "seen"}, headers=TELLER)
        assert (seen.status_code, seen.json()["state"], seen.json()["by"]) == (200, "seen", "teller")
        listed = client.get(f"/api/places/{BRANCH}/warnings", headers=TELLER).json()
        assert [(w["alert_id"], w["handling"]["state"]) for w in listed] == [(shown.alert_id, "seen")]
        other = f"/api/places/{BRANCH}/warnings/{elsewhere.alert_id}/handling"
        assert client.post(other, json={"state": "seen"}, headers=TELLER).status_code == 404

        done = client.post(url, json=note, headers=TELLER)  # before the worker folded the alert
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "new" and set(done.json()) == {"case_id", "status", "escalated_at"}
        case_id = done.json()["case_id"]
        repeat = client.post(url, json=note, headers=TELLER)  # a double click
        assert repeat.status_code == 200 and repeat.json() == done.json(), "a repeat changes nothing"
        [marked] = client.get(f"/api/places/{BRANCH}/warnings", headers=TELLER).json()
        assert (marked["handling"]["state"], marked["handling"]["case_id"]) == ("escalated", case_id)
        assert client.post(mark, json={"state": "handled"}, headers=TELLER).status_code == 409, "escalated stays so"

        feed = client.get("/api/escalations", params={"since": "2026-01-01T00:00:00Z"}, headers=ANALYST).json()
        assert [(c["case_id"], c["escalated_from"]) for c in feed] == [(case_id, BRANCH)]
        later = client.get("/api/escalations", params={"since": feed[0]["escalated_at"]}, headers=ANALYST)
        assert later.json() == [], "the feed gives what came after the last one seen"
        escalated = client.get("/api/cases", params={"escalated": "true"}, headers=ANALYST).json()
        assert [(c["case_id"], c["escalated_from"], c["alert_count"]) for c in escalated] == [(case_id, BRANCH, 1)]
        assert client.get("/api/cases", params={"escalated": "false"}, headers=ANALYST).json() == []
        view = client.get(f"/api/cases/{case_id}", headers=ANALYST).json()
        titles = [e["title"] for e in view["timeline"]]
        assert f"escalated from {BRANCH} by teller: {note['note']}" in titles
        assert client.get(f"/api/cases/{case_id}", headers=TELLER).status_code == 403, "a teller reads no case"

        assert fold(stack, shown) == [], "the worker folding the alert later adds nothing"
        for action, body in (("review", None), ("dismiss", {"reason": "customer's own savings account"})):
            assert client.post(f"/api/cases/{case_id}/{action}", json=body, headers=ANALYST).status_code == 200
        again = client.post(url, json={"note": "the customer came back with a second transfer"}, headers=TELLER)
        assert again.json()["status"] == "new", "a dismissed case is reopened by a new escalation"
        notes = client.get(f"/api/cases/{case_id}", headers=ANALYST).json()["timeline"]
        assert sum(t["title"].startswith("escalated from") for t in notes) == 2
        again_feed = client.get("/api/escalations", params={"since": feed[0]["escalated_at"]}, headers=ANALYST).json()
        assert [c["case_id"] for c in again_feed] == [case_id], "a new escalation of the case is in the feed again"


def test_an_escalated_case_and_its_note_survive_in_the_audit_log(stack: Endpoints) -> None:
    shown = warning_alert("6222000000000888")
    with web_client(stack) as client:
        state = client.app.state  # type: ignore[attr-defined]
        client.portal.call(deliver, state.warnings, state.recent_warnings, shown)  # type: ignore[union-attr]
        case_id = client.post(
            f"/api/places/{BRANCH}/warnings/{shown.alert_id}/escalate",
            json={"note": "elderly customer, on the phone with 'police'"},
            headers=TELLER,
        ).json()["case_id"]

    async def records() -> list[tuple[str, str]]:
        client = Redis.from_url(stack.redis_url)
        try:
            log = AuditLog(client, AUDIT_KEYS)
            assert (await log.verify()).ok
            return [(r.action, r.actor) for r in await log.about(f"case:{case_id}")]
        finally:
            await client.aclose()

    assert asyncio.run(records()) == [("case.alert", "system"), ("case.escalate", "teller")]
