"""The cases API: roles, filters, the lifecycle over HTTP with 404/409/422 refusals that write nothing."""

import asyncio

from redis.asyncio import Redis

from antifraud.audit.service import AuditLog
from antifraud.case.models import Case
from antifraud.case.service import CaseService
from antifraud.stack.embedded import Endpoints
from tests.test_case import ACCOUNT, alert
from tests.web_helpers import as_user, web_client

ANALYST = as_user("analyst")


def fold(endpoints: Endpoints, *alerts: object) -> list[Case]:
    async def go() -> list[Case]:
        client = Redis.from_url(endpoints.redis_url)
        try:
            cases = CaseService(client, AuditLog(client))
            return [c for a in alerts if (c := await cases.fold_alert(a)) is not None]  # type: ignore[arg-type]
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_cases_over_http(stack: Endpoints) -> None:
    number, mule = fold(stack, alert(severity="medium"), alert("mule_account", entity=ACCOUNT, minutes=600,
                                                                severity="high"))
    with web_client(stack) as client:
        assert client.get("/api/cases").status_code == 401
        assert client.get("/api/cases", headers=as_user("teller")).status_code == 403
        assert client.get("/api/cases", headers=as_user("credit_officer")).status_code == 403
        listed = client.get("/api/cases", headers=as_user("admin"))
        assert [c["case_id"] for c in listed.json()] == [mule.case_id, number.case_id]
        high = client.get("/api/cases", params={"severity": "high"}, headers=ANALYST).json()
        assert [c["case_id"] for c in high] == [mule.case_id]
        by_detector = client.get("/api/cases", params={"detector": "fraud_number"}, headers=ANALYST).json()
        assert [c["case_id"] for c in by_detector] == [number.case_id]
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

        assert client.post(f"{url}/assign", json={"assignee": "bo"}, headers=ANALYST).json()["assignee"] == "bo"
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
            "case.assign by analyst", "case.review by analyst", "case.note by analyst", "case.confirm by analyst",
            "case.forward by analyst",
        ]
        assert client.post(f"{url}/close", headers=ANALYST).json()["status"] == "closed"
        assert client.post(f"{url}/assign", json={"assignee": "cy"}, headers=ANALYST).status_code == 409
