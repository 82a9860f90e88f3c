"""The cases API: roles, filters, the lifecycle over HTTP with 404/409/422 refusals that write nothing; a
corrupt stored case is the server's error (500, nothing echoed); a failed follow-up retried by an analyst."""

import asyncio

from fastapi.testclient import TestClient
from redis.asyncio import Redis

from antifraud.alerts.models import Entity
from antifraud.audit.service import AuditLog
from antifraud.case.followups import FollowUp
from antifraud.case.models import Case
from antifraud.case.service import CaseService, case_key
from antifraud.stack.embedded import Endpoints
from antifraud.web.app import create_app
from tests.conftest import AUDIT_KEYS
from tests.test_case import ACCOUNT, NOW, PHONE, alert, runner
from tests.test_case_followups import BAD_ID
from tests.web_helpers import as_user, make_auth, settings_for, web_client

ANALYST = as_user("analyst")


def fold(endpoints: Endpoints, *alerts: object) -> list[Case]:
    async def go() -> list[Case]:
        client = Redis.from_url(endpoints.redis_url)
        try:
            cases = CaseService(client, AuditLog(client, AUDIT_KEYS))
            return [c for a in alerts if (c := await cases.fold_alert(a)) is not None]  # type: ignore[arg-type]
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_cases_over_http(stack: Endpoints) -> None:
    number, mule = fold(
        stack, alert(severity="medium"), alert("mule_account", entity=ACCOUNT, minutes=600, severity="high")
    )
    with web_client(stack) as client:
        assert client.get("/api/cases").status_code == 401
        assert client.get("/api/cases", headers=as_user("teller")).status_code == 403
        assert client.get("/api/cases", headers=as_user("credit_officer")).status_code == 403
        listed = client.get("/api/cases", headers=as_user("admin"))
        assert [c["case_id"] for c in listed.json()] == [mule.case_id, number.case_id]
        second = client.get("/api/cases", params={"limit": 1, "offset": 1}, headers=ANALYST).json()
        assert [c["case_id"] for c in second] == [number.case_id], "a page of the queue"
        high = client.get("/api/cases", params={"severity": "high"}, headers=ANALYST).json()
        assert [c["case_id"] for c in high] == [mule.case_id]
        by_detector = client.get("/api/cases", params={"detector": "fraud_number"}, headers=ANALYST).json()
        assert [c["case_id"] for c in by_detector] == [number.case_id]
        by_account = client.get("/api/cases", params={"account": ACCOUNT.value}, headers=ANALYST).json()
        assert [c["case_id"] for c in by_account] == [mule.case_id], "an account's cases, found by its number"
        by_phone = client.get("/api/cases", params={"phone": PHONE.value, "severity": "high"}, headers=ANALYST)
        assert by_phone.json() == [], "the other filters still apply"
        both = client.get("/api/cases", params={"account": ACCOUNT.value, "phone": PHONE.value}, headers=ANALYST)
        assert both.status_code == 422 and "at most one" in both.json()["detail"]
        bad = client.get("/api/cases", params={"status": "open", "since": "yesterday"}, headers=ANALYST)
        assert bad.status_code == 422 and "status" in bad.json()["message"] and "since" in bad.json()["message"]

        url = f"/api/cases/{mule.case_id}"
        refused = client.post(f"{url}/confirm", json={"reason": "mule"}, headers=ANALYST)
        assert refused.status_code == 409 and "confirm refused while new" in refused.json()["detail"]
        assert client.post(f"{url}/confirm", json={"reason": "  "}, headers=ANALYST).status_code == 422
        assert client.post("/api/cases/" + "0" * 32 + "/review", headers=ANALYST).status_code == 404
        assert client.post("/api/cases/not-an-id/review", headers=ANALYST).status_code == 422
        assert client.post(f"{url}/review", headers=as_user("teller")).status_code == 403
        assert client.get(url, headers=ANALYST).json()["case"]["status"] == "new", "refusals wrote nothing"

        assert client.post(f"{url}/assign", json={"assignee": "admin"}, headers=ANALYST).json()["assignee"] == "admin"
        for nobody in ("ghost", "teller", "credit_officer"):
            refused = client.post(f"{url}/assign", json={"assignee": nobody}, headers=ANALYST)
            assert refused.status_code == 422 and f"no analyst is called {nobody!r}" in refused.json()["detail"]
        assert client.post(f"{url}/review", headers=ANALYST).json()["status"] == "in_review"
        note = client.post(f"{url}/notes", json={"text": "victims in three districts"}, headers=ANALYST)
        assert note.status_code == 201 and note.json()["author"] == "analyst"
        confirmed = client.post(f"{url}/confirm", json={"reason": "collects from five victims"}, headers=ANALYST)
        assert confirmed.json()["status"] == "confirmed" and confirmed.json()["decided_by"] == "analyst"

        deliveries = client.get(f"{url}/deliveries", headers=ANALYST).json()
        assert sorted(d["target"] for d in deliveries) == ["bank", "police"]
        assert all(d["state"] == "pending" for d in deliveries)
        retry = client.post(f"/api/deliveries/{deliveries[0]['delivery_id']}/retry", headers=ANALYST)
        assert retry.status_code == 409 and "retry refused while pending" in retry.json()["detail"]
        wrong = client.post(f"{url}/forward", json={"targets": ["carrier"]}, headers=ANALYST)
        assert wrong.status_code == 422 and "cannot go to carrier" in wrong.json()["detail"]
        again = client.post(f"{url}/forward", json={}, headers=ANALYST).json()
        assert {d["delivery_id"] for d in again} == {d["delivery_id"] for d in deliveries}

        shown = client.get(url, headers=ANALYST).json()
        kinds = [e["kind"] for e in shown["timeline"]]
        assert kinds.count("alert") == 1 and kinds.count("delivery") == 2
        assert [e["title"] for e in shown["timeline"] if e["kind"] == "action"] == [
            "case.assign by analyst",
            "case.review by analyst",
            "note by analyst: victims in three districts",  # the note itself, in the timeline
            "case.confirm by analyst",
            "case.forward by analyst",
        ]
        assert shown["actions"] == ["close", "assign", "note"], "forwarded to all its targets: not again"
        assert client.get("/api/analysts", headers=ANALYST).json() == ["admin", "analyst"]
        assert client.post(f"{url}/close", headers=ANALYST).json()["status"] == "closed"
        assert client.post(f"{url}/assign", json={"assignee": "analyst"}, headers=ANALYST).status_code == 409


def test_a_corrupt_case_is_a_500_and_a_failed_follow_up_is_retried_by_an_analyst(stack: Endpoints) -> None:
    async def failed_follow_up() -> FollowUp:
        client = Redis.from_url(stack.redis_url)
        try:
            cases = CaseService(client, AuditLog(client, AUDIT_KEYS), clock=lambda: NOW)
            case = await cases.fold_alert(alert("card_opening", entity=Entity(kind="id_number", value=BAD_ID)))
            assert case is not None
            await cases.review(case.case_id, actor="ana")
            await cases.confirm(case.case_id, actor="ana", reason="opened cards at six banks")
            assert await runner(cases, client).run_once() == 1
            [followup] = await cases.followups.for_case(case.case_id)
            stored = await client.get(case_key(case.case_id))
            corrupt = stored.replace(b'"status":"confirmed"', f'"status":"{BAD_ID}"'.encode())
            await client.set(case_key("f" * 32), corrupt)
            return followup
        finally:
            await client.aclose()

    followup = asyncio.run(failed_follow_up())
    assert followup.state == "failed"
    with TestClient(create_app(settings_for(stack), make_auth()), raise_server_exceptions=False) as client:
        corrupt = client.get("/api/cases/" + "f" * 32, headers=ANALYST)
        assert corrupt.status_code == 500, "a document that no longer reads is not the client's fault"
        assert BAD_ID not in corrupt.text

        url = f"/api/followups/{followup.followup_id}/retry"
        assert client.post(url, headers=as_user("teller")).status_code == 403
        retried = client.post(url, headers=ANALYST)
        assert retried.status_code == 200 and (retried.json()["state"], retried.json()["retries"]) == ("pending", 1)
        again = client.post(url, headers=ANALYST)
        assert again.status_code == 409 and "retry refused while pending" in again.json()["detail"]
        assert client.post("/api/followups/" + "0" * 32 + "/retry", headers=ANALYST).status_code == 404
        timeline = client.get(f"/api/cases/{followup.case_id}", headers=ANALYST).json()["timeline"]
        assert "followup.retry by analyst" in [e["title"] for e in timeline]
