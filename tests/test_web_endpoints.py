"""Every endpoint of the HTTP API: who may call it, what bad input gets, and that neither writes anything.

``ACCESS`` is the API's access table, one row per route. The first test fails when a route is added
without a row (or a row outlives its route), so a new endpoint cannot ship without saying who may call
it; the walk then holds the running app to the table: no credentials 401, each role left out 403, each
role listed let through. A refused caller sends a valid request for a real warning, hold, case,
delivery, follow-up and listing, so a missing role check would act, and Redis would show it; bad input
to every endpoint is refused with what is wrong, writing nothing either.
"""

import asyncio
import re
from typing import Any, NamedTuple

import httpx
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from antifraud.audit.service import AuditLog
from antifraud.case.service import CaseService
from antifraud.clock import utcnow
from antifraud.config import ForwardingSettings
from antifraud.credit.models import ObjectionFiling
from antifraud.credit.service import CreditBlacklist
from antifraud.forwarding.service import DeliveryLoop
from antifraud.holds.models import HUMAN_MOVES
from antifraud.holds.service import HoldLedger
from antifraud.stack.embedded import Endpoints
from antifraud.thresholds import load_thresholds
from antifraud.web.app import create_app
from antifraud.web.pages import PAGES
from antifraud.web.warnings import deliver
from tests.conftest import AUDIT_KEYS
from tests.credit_helpers import OTHER_PERSON, PERSON, draft, listing_fields
from tests.test_case import ACCOUNT, alert
from tests.test_credit_views import REPAIR
from tests.test_holds import hold_id_for
from tests.test_holds_actions import hold_some
from tests.test_web_api import CHECK
from tests.test_web_warnings import alert as warning_alert
from tests.web_helpers import BRANCH, as_user, make_auth, serve, settings_for, web_client

THRESHOLDS = load_thresholds()
ROLES = ("teller", "analyst", "credit_officer", "admin")
TELLER, ANALYST, OFFICER, ADMIN = ROLES
UNKNOWN = "0" * 32
WINDOW = {"since": "2026-03-01T00:00:00Z", "until": "2026-03-02T00:00:00Z"}
REPORT = {
    "victim_account": "6222000000000001",
    "start": "2026-03-02T08:00:00Z",
    "end": "2026-03-02T10:00:00Z",
    "reason": "96110 report",
}


class Access(NamedTuple):
    """Who may call a route (``None``: anyone, signed in or not), and a valid request a refused caller sends."""

    roles: frozenset[str] | None
    json: Any = None
    params: dict[str, str] | None = None


def _only(*roles: str, json: Any = None, params: dict[str, str] | None = None) -> Access:
    return Access(frozenset(roles), json, params)


ACCESS: dict[tuple[str, str], Access] = {
    ("POST", "/api/session"): Access(None, {"token": "x"}),
    ("DELETE", "/api/session"): _only(*ROLES),
    ("GET", "/api/me"): _only(*ROLES),
    ("POST", "/api/check"): _only(TELLER, ANALYST, json=CHECK),
    ("GET", "/api/places/{place}/warnings"): _only(TELLER, ANALYST),
    ("GET", "/api/places/{place}/warnings/stream"): _only(TELLER, ANALYST),
    ("POST", "/api/places/{place}/warnings/{alert_id}/escalate"): _only(TELLER, json={"note": "insists on paying"}),
    ("POST", "/api/places/{place}/warnings/{alert_id}/handling"): _only(TELLER, json={"state": "seen"}),
    ("GET", "/api/trail"): _only(ANALYST, params={"account": ACCOUNT.value, **WINDOW}),
    ("GET", "/api/blacklist"): _only(OFFICER, ANALYST, params={"id_number": PERSON}),
    ("GET", "/api/blacklist/worklist"): _only(OFFICER, ANALYST),
    ("GET", "/api/blacklist/check"): _only(OFFICER, ANALYST, TELLER, params={"id_number": PERSON}),
    ("POST", "/api/blacklist"): _only(OFFICER, json=listing_fields(case_id="case-2")),
    ("POST", "/api/blacklist/proposals"): _only(OFFICER, json=listing_fields(case_id="case-2")),
    ("GET", "/api/blacklist/proposals"): _only(OFFICER),
    ("POST", "/api/blacklist/proposals/{proposal_id}/approve"): _only(OFFICER),
    ("GET", "/api/blacklist/{listing_id}"): _only(OFFICER, ANALYST),
    ("GET", "/api/blacklist/{listing_id}/history"): _only(OFFICER, ANALYST),
    ("POST", "/api/blacklist/{listing_id}/objections"): _only(
        OFFICER, TELLER, json={"party_id": PERSON, "grounds": "stolen ID"}
    ),
    ("POST", "/api/blacklist/{listing_id}/objections/{objection_id}/decision"): _only(
        OFFICER, json={"decision": "correct", "note": "theft confirmed"}
    ),
    ("POST", "/api/blacklist/{listing_id}/repair"): _only(OFFICER, json=REPAIR),
    ("GET", "/api/holds"): _only(ANALYST),
    ("GET", "/api/holds/{hold_id}/moves"): _only(TELLER, ANALYST),
    ("GET", "/api/holds/by-payer"): _only(TELLER, ANALYST, params={"account": "6222000000000001"}),
    ("GET", "/api/holds/{hold_id}"): _only(ANALYST, TELLER),
    ("POST", "/api/holds/{hold_id}/revoke"): _only(TELLER, json={"reason": "the sender asked"}),
    ("POST", "/api/holds/{hold_id}/freeze"): _only(ANALYST, json={"reason": "order 17"}),
    ("POST", "/api/holds/{hold_id}/release"): _only(ANALYST, json={"reason": "order lifted"}),
    ("POST", "/api/holds/{hold_id}/return"): _only(ANALYST, json={"reason": "court order"}),
    ("POST", "/api/holds/reports"): _only(ANALYST, json=REPORT),
    ("GET", "/api/cases"): _only(ANALYST),
    ("GET", "/api/escalations"): _only(ANALYST, params={"since": "2026-03-01T00:00:00Z"}),
    ("GET", "/api/cases/{case_id}"): _only(ANALYST),
    ("GET", "/api/analysts"): _only(ANALYST),
    ("GET", "/api/escalations/stream"): _only(ANALYST),
    ("POST", "/api/cases/{case_id}/assign"): _only(ANALYST, json={"assignee": "analyst"}),
    ("POST", "/api/cases/{case_id}/review"): _only(ANALYST),
    ("POST", "/api/cases/{case_id}/confirm"): _only(ANALYST, json={"reason": "collects from victims"}),
    ("POST", "/api/cases/{case_id}/dismiss"): _only(ANALYST, json={"reason": "payroll"}),
    ("POST", "/api/cases/{case_id}/forward"): _only(ANALYST, json={}),
    ("POST", "/api/cases/{case_id}/close"): _only(ANALYST),
    ("POST", "/api/cases/{case_id}/notes"): _only(ANALYST, json={"text": "victims in three districts"}),
    ("GET", "/api/cases/{case_id}/deliveries"): _only(ANALYST),
    ("POST", "/api/deliveries/{delivery_id}/retry"): _only(ANALYST),
    ("POST", "/api/followups/{followup_id}/retry"): _only(ANALYST),
}
"""(method, path) -> who may call it. Admins pass every role check (``antifraud.web.auth.require``)."""

NOT_API = {"/", *(f"/{page}" for page in PAGES), "/static", "/i18n/{language}.json", "/openapi.json", "/metrics"}
"""Everything the app serves outside /api: pages and documents that hold no data (they call the API)."""


def routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route, those of included routers too (``app.routes`` holds the routers whole),
    as the OpenAPI document names them (``{hold_id:hold_id}`` as ``{hold_id}``)."""
    return {
        (method, re.sub(r":\w+}", "}", context.path))
        for context in iter_route_contexts(app.routes)
        if context.path is not None
        for method in context.methods or {"*"}
        if method != "HEAD"
    }


def test_every_api_route_is_in_the_access_table_and_everything_else_is_a_page() -> None:
    nowhere = Endpoints(kafka_bootstrap="127.0.0.1:1", redis_url="redis://127.0.0.1:1/0")  # built, never started
    served = routes(create_app(settings_for(nowhere), make_auth()))
    api = {route for route in served if route[1].startswith("/api/")}
    assert sorted(api - set(ACCESS)) == [], "a route without a row in ACCESS: say who may call it"
    assert sorted(set(ACCESS) - api) == [], "a row in ACCESS for a route the app does not serve"
    assert {path for _, path in served - api} == NOT_API


UNREACHABLE = ForwardingSettings(
    webhooks={"police": "http://127.0.0.1:1/", "bank": "http://127.0.0.1:1/"},
    keys={"police": (b"k" * 32,), "bank": (b"k" * 32,)},
    max_attempts=1,
    timeout_s=2.0,
)


def seed(redis_url: str) -> dict[str, str]:
    """A held hold, a new case, a confirmed case whose deliveries failed (its follow-ups pending), a listing
    with an objection; returns their ids by the path parameter that names them."""

    async def go() -> dict[str, str]:
        client = Redis.from_url(redis_url)
        try:
            audit = AuditLog(client, AUDIT_KEYS)
            await hold_some(HoldLedger.configured(client, THRESHOLDS.holds), "t-1")
            cases = CaseService(client, audit, holds=THRESHOLDS.holds)
            new = await cases.fold_alert(alert(severity="medium"))
            mule = await cases.fold_alert(alert("mule_account", entity=ACCOUNT, severity="high"))
            assert new is not None and mule is not None
            await cases.review(mule.case_id, actor="ana")
            await cases.confirm(mule.case_id, actor="ana", reason="collects from five victims")
            loop = DeliveryLoop(cases.deliveries, UNREACHABLE, on_delivered=cases.delivered)
            try:
                assert await loop.run_once() == 2
            finally:
                await loop.aclose()
            [delivery, _] = await cases.deliveries.for_case(mule.case_id)
            assert delivery.state == "failed"
            followup = (await cases.followups.for_case(mule.case_id))[0]
            blacklist = CreditBlacklist(client, audit, THRESHOLDS.credit_blacklist)
            listing, _ = await blacklist.add(draft(), actor="officer", now=utcnow())
            await blacklist.object(
                listing.listing_id, ObjectionFiling(party_id=PERSON, grounds="stolen ID"), actor="li", now=utcnow()
            )
            proposal = await blacklist.propose(draft(OTHER_PERSON), actor="officer", now=utcnow())
            return {
                "proposal_id": proposal.proposal_id,
                "place": BRANCH,
                "hold_id": hold_id_for("t-1"),
                "case_id": mule.case_id,
                "new_case": new.case_id,
                "delivery_id": delivery.delivery_id,
                "followup_id": followup.followup_id,
                "listing_id": listing.listing_id,
                "objection_id": "1",
            }
        finally:
            await client.aclose()

    return asyncio.run(go())


UNKNOWN_IDS = {
    "place": BRANCH,
    "alert_id": UNKNOWN,
    "hold_id": UNKNOWN,
    "case_id": UNKNOWN,
    "delivery_id": UNKNOWN,
    "followup_id": UNKNOWN,
    "listing_id": UNKNOWN,
    "objection_id": "1",
    "proposal_id": UNKNOWN,
}
"""Ids of nothing (and the teller's own branch): a permitted caller's request then acts on nothing."""


def shown(client: TestClient) -> str:
    """A warning the app's counter fan-out shows at the teller's branch (as if from the alerts topic); its id."""
    warning = warning_alert("6222000000000666")
    state = client.app.state  # type: ignore[attr-defined]
    client.portal.call(deliver, state.warnings, state.recent_warnings, warning)  # type: ignore[union-attr]
    return warning.alert_id


def stored(redis_url: str) -> dict[bytes, bytes | None]:
    """Every key with its serialized value: what requests that write nothing leave exactly as it was."""
    client = SyncRedis.from_url(redis_url)
    try:
        return {key: client.dump(key) for key in client.scan_iter(count=1000)}
    finally:
        client.close()


def _as(who: str | None) -> dict[str, str]:
    return as_user(who) if who else {}


def test_each_route_refuses_strangers_and_the_roles_left_out_lets_the_rest_through_and_writes_nothing(
    stack: Endpoints,
) -> None:
    ids = seed(stack.redis_url)
    wrong: list[str] = []
    with web_client(stack, raise_server_exceptions=False) as client:
        ids["alert_id"] = shown(client)
        before = stored(stack.redis_url)
        for (method, path), access in ACCESS.items():
            allowed = set(ROLES) if access.roles is None else access.roles | {ADMIN}
            refusals = [(role, 403) for role in ROLES if role not in allowed]
            if access.roles is not None:
                refusals.insert(0, (None, 401))
            for who, expected in refusals:
                got = client.request(
                    method, path.format(**ids), json=access.json, params=access.params, headers=_as(who)
                )
                if got.status_code != expected:
                    wrong.append(f"{method} {path} as {who or 'nobody'}: {got.status_code}, expected {expected}")
            if path.endswith("/stream"):
                continue  # a stream let through never ends; test_web_warnings reads one as a teller
            for who in [*allowed, *([None] if access.roles is None else [])]:
                got = client.request(
                    method, path.format(**UNKNOWN_IDS), json={} if method == "POST" else None, headers=_as(who)
                )
                if got.status_code in (401, 403) or got.status_code >= 500:
                    wrong.append(f"{method} {path} as {who or 'nobody'}: {got.status_code} {got.text[:120]}")
        assert not wrong, "\n".join(wrong)
        assert stored(stack.redis_url) == before, "a refused request, or one on nothing, wrote to Redis"


Bad = tuple[str | None, str, str, dict[str, Any], int, str]
"""who, method, path, request, the status expected and what its answer says."""


def _moves() -> list[Bad]:
    """Bad input to each hold move, by the role that may make it."""
    rows: list[Bad] = []
    for verb, (_, actor) in HUMAN_MOVES.items():
        who = TELLER if actor == "sender" else ANALYST
        reason = {"json": {"reason": "r"}}
        rows += [
            (who, "POST", f"/api/holds/XYZ/{verb}", reason, 404, "Not Found"),  # no hold id: no hold's path
            (who, "POST", f"/api/holds/{UNKNOWN}/{verb}", reason, 404, f"no hold {UNKNOWN}"),
            (
                who,
                "POST",
                f"/api/holds/{{hold_id}}/{verb}",
                {"json": {"reason": " "}},
                422,
                "reason: String should have at least 1 character",
            ),
            (who, "POST", f"/api/holds/{{hold_id}}/{verb}", {}, 422, "body: Field required"),
        ]
    return rows


OUT_OF_RANGE = "0001-01-01T00:00:00+08:00"
"""A valid ISO 8601 time with no date in UTC (the year before 1)."""

BAD: list[Bad] = [
    (ANALYST, "GET", "/api/cases", {"params": {"until": "0.5"}}, 422, "until: give an ISO 8601 time"),
    (ANALYST, "GET", "/api/escalations", {"params": {"since": "1700000000"}}, 422, "not a number"),
    (None, "POST", "/api/session", {"json": {"token": ""}}, 422, "token: String should have at least 1 character"),
    (
        None,
        "POST",
        "/api/session",
        {"json": {"token": "x", "role": "admin"}},
        422,
        "role: Extra inputs are not permitted",
    ),
    (
        ANALYST,
        "POST",
        "/api/check",
        {"json": {**CHECK, "event_time": OUT_OF_RANGE}},
        422,
        "event_time: the time is out of range in UTC",
    ),
    (ANALYST, "GET", "/api/places/%20/warnings", {}, 422, "place: String should have at least 1 character"),
    (
        TELLER,
        "POST",
        f"/api/places/{BRANCH}/warnings/{UNKNOWN}/escalate",
        {"json": {"note": "n"}},
        404,
        f"no recent warning {UNKNOWN} at {BRANCH}",
    ),
    (
        TELLER,
        "POST",
        f"/api/places/{BRANCH}/warnings/x/escalate",
        {"json": {"note": "n"}},
        422,
        "alert_id: String should match pattern",
    ),
    (ANALYST, "GET", "/api/escalations", {}, 422, "since: Field required"),
    (
        ANALYST,
        "GET",
        "/api/escalations",
        {"params": {"since": "yesterday"}},
        422,
        "since: Input should be a valid datetime",
    ),
    (
        ANALYST,
        "GET",
        "/api/trail",
        {"params": {"account": ACCOUNT.value, **WINDOW, "since": OUT_OF_RANGE}},
        422,
        "since: the time is out of range in UTC",
    ),
    (TELLER, "GET", "/api/blacklist/check", {}, 422, "give exactly one of the query parameters"),
    (TELLER, "GET", "/api/blacklist/check", {"params": {"id_number": "x"}}, 422, "id_number is not valid"),
    (ANALYST, "GET", f"/api/blacklist/{UNKNOWN}/history", {}, 404, f"no listing {UNKNOWN}"),
    (
        TELLER,
        "POST",
        "/api/blacklist/{listing_id}/objections",
        {"json": {"party_id": PERSON, "grounds": "g", "photo": "x"}},
        422,
        "photo: Extra inputs are not permitted",
    ),
    (
        OFFICER,
        "POST",
        "/api/blacklist/{listing_id}/objections/one/decision",
        {"json": {"decision": "uphold", "note": "n"}},
        422,
        "objection_id: Input should be a valid integer",
    ),
    (
        OFFICER,
        "POST",
        "/api/blacklist/{listing_id}/objections/1/decision",
        {"json": {"decision": "maybe", "note": "n"}},
        422,
        "decision: Input should be 'uphold' or 'correct'",
    ),
    (OFFICER, "POST", f"/api/blacklist/{UNKNOWN}/repair", {"json": REPAIR}, 404, f"no listing {UNKNOWN}"),
    (
        OFFICER,
        "POST",
        "/api/blacklist/{listing_id}/repair",
        {"json": {**REPAIR, "conditions": ["luck"]}},
        422,
        "conditions.0: Input should be",
    ),
    (
        ANALYST,
        "GET",
        "/api/holds",
        {"params": {"offset": str(2**63)}},
        422,
        "offset: Input should be less than or equal to 1000000000",
    ),
    (
        ANALYST,
        "GET",
        "/api/holds",
        {"params": {"limit": "0"}},
        422,
        "limit: Input should be greater than or equal to 1",
    ),
    (TELLER, "GET", "/api/holds/XYZ", {}, 404, "Not Found"),
    (TELLER, "GET", f"/api/holds/{UNKNOWN}", {}, 404, f"no hold {UNKNOWN}"),
    *_moves(),
    (ANALYST, "POST", "/api/holds/{hold_id}/release", {"json": {"reason": "r"}}, 409, "held -> released refused"),
    (ANALYST, "POST", "/api/holds/{hold_id}/return", {"json": {"reason": "r"}}, 409, "held -> returned refused"),
    (
        ANALYST,
        "POST",
        "/api/holds/reports",
        {"json": {**REPORT, "start": OUT_OF_RANGE}},
        422,
        "start: the time is out of range in UTC",
    ),
    (
        ANALYST,
        "POST",
        "/api/holds/reports",
        {"json": {**REPORT, "notify": True}},
        422,
        "notify: Extra inputs are not permitted",
    ),
    (
        ANALYST,
        "GET",
        "/api/cases",
        {"params": {"limit": "0"}},
        422,
        "limit: Input should be greater than or equal to 1",
    ),
    (
        ANALYST,
        "GET",
        "/api/cases",
        {"params": {"since": WINDOW["until"], "until": WINDOW["since"]}},
        422,
        "until is before since",
    ),
    (ANALYST, "GET", "/api/cases/not-an-id", {}, 422, "case_id: String should match pattern"),
    (ANALYST, "GET", f"/api/cases/{UNKNOWN}", {}, 404, f"no case {UNKNOWN}"),
    (ANALYST, "POST", f"/api/cases/{UNKNOWN}/assign", {"json": {"assignee": "analyst"}}, 404, f"no case {UNKNOWN}"),
    (
        ANALYST,
        "POST",
        "/api/cases/{new_case}/assign",
        {"json": {"assignee": " "}},
        422,
        "assignee: String should have at least 1 character",
    ),
    (ANALYST, "POST", f"/api/cases/{UNKNOWN}/confirm", {"json": {"reason": "r"}}, 404, f"no case {UNKNOWN}"),
    (ANALYST, "POST", f"/api/cases/{UNKNOWN}/dismiss", {"json": {"reason": "r"}}, 404, f"no case {UNKNOWN}"),
    (
        ANALYST,
        "POST",
        "/api/cases/{new_case}/dismiss",
        {"json": {"reason": ""}},
        422,
        "reason: String should have at least 1 character",
    ),
    (
        ANALYST,
        "POST",
        "/api/cases/{case_id}/dismiss",
        {"json": {"reason": "r"}},
        409,
        "dismiss refused while confirmed",
    ),
    (ANALYST, "POST", f"/api/cases/{UNKNOWN}/forward", {"json": {}}, 404, f"no case {UNKNOWN}"),
    (ANALYST, "POST", "/api/cases/{new_case}/forward", {"json": {}}, 409, "forward refused while new"),
    (
        ANALYST,
        "POST",
        "/api/cases/{case_id}/forward",
        {"json": {"targets": ["pigeon"]}},
        422,
        "targets.0: Input should be",
    ),
    (ANALYST, "POST", f"/api/cases/{UNKNOWN}/close", {}, 404, f"no case {UNKNOWN}"),
    (ANALYST, "POST", "/api/cases/{new_case}/close", {}, 409, "close refused while new"),
    (ANALYST, "POST", f"/api/cases/{UNKNOWN}/notes", {"json": {"text": "t"}}, 404, f"no case {UNKNOWN}"),
    (
        ANALYST,
        "POST",
        "/api/cases/{case_id}/notes",
        {"json": {"text": " "}},
        422,
        "text: String should have at least 1 character",
    ),
    (ANALYST, "GET", f"/api/cases/{UNKNOWN}/deliveries", {}, 404, f"no case {UNKNOWN}"),
    (ANALYST, "GET", "/api/cases/x/deliveries", {}, 422, "case_id: String should match pattern"),
    (ANALYST, "POST", f"/api/deliveries/{UNKNOWN}/retry", {}, 404, f"no delivery {UNKNOWN}"),
    (ANALYST, "POST", "/api/deliveries/x/retry", {}, 422, "delivery_id: String should match pattern"),
    (ANALYST, "POST", "/api/followups/x/retry", {}, 422, "followup_id: String should match pattern"),
]
"""Bad input to every endpoint that takes any (path, query or body), as a caller allowed to send it."""


def test_bad_input_to_every_endpoint_is_refused_saying_what_is_wrong_and_writes_nothing(stack: Endpoints) -> None:
    ids = seed(stack.redis_url)
    wrong: list[str] = []
    with web_client(stack, raise_server_exceptions=False) as client:
        before = stored(stack.redis_url)
        for who, method, path, request, status, says in BAD:
            got = client.request(method, path.format(**ids), headers=_as(who), **request)
            if got.status_code != status or says not in got.text:
                wrong.append(f"{method} {path} {request}: {got.status_code} {got.text[:200]}")
        assert not wrong, "\n".join(wrong)
        assert stored(stack.redis_url) == before, "a refused request wrote to Redis"


def test_release_dismiss_and_a_failed_delivery_retried_over_http(stack: Endpoints) -> None:
    """The moves no other HTTP test makes, as the roles that make them; and the API documents, served to anyone."""
    ids = seed(stack.redis_url)
    analyst = as_user(ANALYST)
    with web_client(stack) as client:
        hold = f"/api/holds/{ids['hold_id']}"
        assert client.post(f"{hold}/freeze", json={"reason": "order 17"}, headers=analyst).status_code == 200
        released = client.post(f"{hold}/release", json={"reason": "order lifted"}, headers=analyst)
        assert released.status_code == 200, released.text
        assert (released.json()["from_state"], released.json()["to_state"], released.json()["actor"]) == (
            "frozen",
            "released",
            "police",
        )
        assert client.get(hold, headers=as_user(TELLER)).json()["state"] == "released"

        case = f"/api/cases/{ids['new_case']}"
        assert client.post(f"{case}/review", headers=analyst).json()["status"] == "in_review"
        dismissed = client.post(f"{case}/dismiss", json={"reason": "a courier's calls"}, headers=analyst)
        assert dismissed.status_code == 200, dismissed.text
        assert (dismissed.json()["status"], dismissed.json()["decided_by"]) == ("dismissed", ANALYST)

        retried = client.post(f"/api/deliveries/{ids['delivery_id']}/retry", headers=analyst)
        assert retried.status_code == 200, retried.text
        assert (retried.json()["state"], retried.json()["attempts"], retried.json()["retries"]) == ("pending", 0, 1)
        timeline = client.get(f"/api/cases/{ids['case_id']}", headers=analyst).json()["timeline"]
        assert "delivery.retry by analyst" in [entry["title"] for entry in timeline]

        for document in ("/docs", "/redoc"):
            assert client.get(document).status_code == 404, "off unless ANTIFRAUD_WEB_DOCS: scripts from a CDN"
        assert client.get("/openapi.json").status_code == 200


def test_the_api_documents_are_served_only_when_enabled(stack: Endpoints) -> None:
    app = create_app(settings_for(stack).model_copy(update={"web_docs": True}), make_auth())
    with TestClient(app) as client:
        for document in ("/docs", "/redoc"):
            page = client.get(document)
            assert page.status_code == 200 and "/openapi.json" in page.text


def test_a_bad_place_is_refused_before_a_warning_stream_opens(stack: Endpoints) -> None:
    """Served for real, with a timeout: a stream that opened would never end."""
    with serve(stack) as base_url:
        refused = httpx.get(f"{base_url}/api/places/{'x' * 65}/warnings/stream", headers=as_user(ANALYST), timeout=10)
    assert refused.status_code == 422
    assert refused.json()["message"] == "place: String should have at most 64 characters"
