"""The app as a whole: the OpenAPI document, pages, bad input, and who may call what."""

import pytest

from antifraud.stack.embedded import Endpoints
from antifraud.web.pages import CSP, PAGES
from tests.web_helpers import BRANCH, OTHER_BRANCH, as_user, web_client

CASE_ID = "0" * 32
CHECK = {
    "channel": "counter",
    "payer_account": "6222000000000001",
    "payer_name": "王芳",
    "payer_id_number": "320585198609013410",
    "payee_account": "6222000000000666",
    "payee_name": "李强",
    "amount_fen": 3_000_000,
    "branch_id": BRANCH,
}


def test_the_openapi_document_lists_every_router_and_both_ways_in(stack: Endpoints) -> None:
    with web_client(stack) as client:
        document = client.get("/openapi.json").json()
    paths = document["paths"]
    for path in (
        "/api/check",
        "/api/places/{place}/warnings/stream",
        "/api/trail",
        "/api/holds/{hold_id}/freeze",
        "/api/cases/{case_id}/confirm",
        "/api/blacklist/{listing_id}/objections",
        "/api/session",
    ):
        assert path in paths, path
    assert set(document["components"]["securitySchemes"]) == {"bearer", "session"}
    assert paths["/api/session"]["post"]["security"] == []
    assert "text/event-stream" in paths["/api/places/{place}/warnings/stream"]["get"]["responses"]["200"]["content"]
    assert document["components"]["schemas"]["Decision"]["enum"] == ["allow", "warn", "hold", "block"]


def test_pages_are_served_with_a_content_security_policy_and_hold_no_data(stack: Endpoints) -> None:
    with web_client(stack) as client:
        assert client.get("/", follow_redirects=False).headers["location"] == "/login"
        for name in PAGES:
            page = client.get(f"/{name}")
            assert page.status_code == 200 and page.headers["content-security-policy"] == CSP
            assert f'src="/static/{name}.js"' in page.text and "<script>" not in page.text
        assert client.get("/static/common.js").status_code == 200
        assert client.get("/nope").status_code == 404


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"amount_fen": 0}, "amount_fen: Input should be greater than 0"),
        ({"amount_fen": "12.5"}, "amount_fen: Input should be a valid integer"),
        ({"payee_account": "62-22"}, "payee_account: String should match pattern"),
        (
            {"payer_id_number": "320585198609013411"},
            "payer_id_number: ID number check digit does not match",
        ),
        ({"channel": "branch"}, "channel: Input should be 'counter', 'atm', 'online' or 'mobile'"),
        ({"branch_id": None}, "a counter transfer needs branch_id"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"event_time": "2026-03-02T10:00:00"}, "event_time: Input should have timezone info"),
        ({"event_id": "pay-1"}, "event_id: Input should be 'pre-transfer-check'"),
    ],
)
def test_a_bad_check_gets_422_with_a_message_naming_the_field(stack: Endpoints, change: dict, message: str) -> None:
    with web_client(stack) as client:
        response = client.post("/api/check", json={**CHECK, **change}, headers=as_user("analyst"))
    assert response.status_code == 422
    assert message in response.json()["message"]


def test_a_check_that_is_not_json_gets_422(stack: Endpoints) -> None:
    with web_client(stack) as client:
        response = client.post(
            "/api/check", content=b"{", headers={**as_user("analyst"), "Content-Type": "application/json"}
        )
    assert response.status_code == 422 and "JSON decode error" in response.json()["message"]


def test_a_teller_checks_only_at_their_own_branch(stack: Endpoints) -> None:
    with web_client(stack) as client:
        assert client.post("/api/check", json=CHECK, headers=as_user("teller")).status_code == 200
        for body in ({**CHECK, "branch_id": OTHER_BRANCH}, {**CHECK, "channel": "online", "branch_id": None}):
            refused = client.post("/api/check", json=body, headers=as_user("teller"))
            assert refused.status_code == 403
            assert refused.json()["detail"] == f"a teller of branch {BRANCH} checks transfers at that branch only"
        assert client.post("/api/check", json=CHECK, headers=as_user("credit_officer")).status_code == 403


# (method, path, json body): what a teller may not touch beyond their branch's warnings and checks.
NOT_FOR_TELLERS = [
    ("GET", f"/api/places/{OTHER_BRANCH}/warnings", None),
    ("GET", "/api/cases", None),
    ("GET", f"/api/cases/{CASE_ID}", None),
    ("POST", f"/api/cases/{CASE_ID}/confirm", {"reason": "x"}),
    ("GET", "/api/blacklist?account=6222000000000666", None),
    ("GET", "/api/blacklist/some-listing", None),
    ("GET", "/api/holds", None),
    ("POST", f"/api/holds/{CASE_ID}/freeze", {"reason": "x"}),
    ("GET", "/api/trail?account=6222000000000666&since=2026-03-01T00:00:00Z&until=2026-03-02T00:00:00Z", None),
]


@pytest.mark.parametrize(("method", "path", "body"), NOT_FOR_TELLERS)
def test_a_teller_cannot_read_another_branch_a_case_the_blacklist_holds_or_trails(
    stack: Endpoints, method: str, path: str, body: dict | None
) -> None:
    with web_client(stack) as client:
        response = client.request(method, path, json=body, headers=as_user("teller"))
    assert response.status_code == 403, response.text


def test_a_credit_officer_cannot_read_cases_or_warnings_and_an_analyst_cannot_list_parties(stack: Endpoints) -> None:
    with web_client(stack) as client:
        for path in ("/api/cases", f"/api/places/{BRANCH}/warnings", "/api/holds"):
            assert client.get(path, headers=as_user("credit_officer")).status_code == 403, path
        draft = {
            "party": {"kind": "id_number", "id": "320585198609013410"},
            "case_id": "c",
            "reason_code": "telecom_fraud",
            "reason": "r",
            "evidence": ["e"],
        }
        assert client.post("/api/blacklist", json=draft, headers=as_user("analyst")).status_code == 403
        assert client.get("/api/cases", headers=as_user("admin")).status_code == 200


def test_the_trail_refuses_a_bad_window_and_a_bad_account(stack: Endpoints) -> None:
    with web_client(stack) as client:
        backwards = client.get(
            "/api/trail?account=6222000000000666&since=2026-03-02T00:00:00Z&until=2026-03-01T00:00:00Z",
            headers=as_user("analyst"),
        )
        assert (backwards.status_code, backwards.json()["detail"]) == (422, "until must be after since")
        bad = client.get(
            "/api/trail?account=abc&since=2026-03-01T00:00:00Z&until=2026-03-02T00:00:00Z", headers=as_user("analyst")
        )
        assert bad.status_code == 422 and bad.json()["message"].startswith("account: String should match pattern")
        missing = client.get("/api/trail?account=6222000000000666", headers=as_user("analyst"))
        assert missing.json()["message"] == "since: Field required; until: Field required"
