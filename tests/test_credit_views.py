"""The blacklist's HTTP API over a real app, Redis and broker: flows, bad input, role refusals."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import antifraud
from antifraud.stack.embedded import Endpoints
from tests.credit_helpers import ACCOUNT, OTHER_PERSON, PERSON, PHONE, confirmed_case, listing_fields
from tests.web_helpers import as_user, web_client

REPAIR = {
    "conditions": ["behaviour_corrected", "effects_removed", "training_completed"],
    "evidence": ["doc:repaid"],
    "note": "victims repaid, course done",
}


@pytest.fixture
def client(stack: Endpoints) -> Iterator[TestClient]:
    with web_client(stack) as c:
        yield c


def listed(client: TestClient, **changes: Any) -> dict[str, Any]:
    """A listing by the credit officer, on a confirmed case of the party."""
    case_id = confirmed_case(client.app.state.settings.redis_url, changes.get("party_id", PERSON))  # type: ignore[attr-defined]
    fields = listing_fields(**{"case_id": case_id, **changes})
    response = client.post("/api/blacklist", json=fields, headers=as_user("credit_officer"))
    assert response.status_code == 201, response.text
    return response.json()


def test_listing_objection_correction_over_http(client: TestClient) -> None:
    officer, teller = as_user("credit_officer"), as_user("teller")
    listing = listed(client)
    lid = listing["listing_id"]
    again = client.post("/api/blacklist", json=listing_fields(case_id=listing["case_id"]), headers=officer)
    assert (again.status_code, again.json()["listing_id"]) == (200, lid)

    check = client.get("/api/blacklist/check", params={"id_number": PERSON}, headers=teller).json()
    assert check["listed"] and check["reason_codes"] == ["card_account_trade"]
    assert check["subject"] == PERSON[:4] + "*" * 10 + PERSON[-4:] and check["until"] == listing["expires_at"]
    assert client.get("/api/blacklist/check", params={"account": ACCOUNT}, headers=teller).json()["listed"]

    receipt = client.post(
        f"/api/blacklist/{lid}/objections",
        headers=teller,
        json={"party_id": PERSON.lower(), "grounds": "my ID card was stolen"},
    )
    assert receipt.status_code == 201, receipt.text
    assert (receipt.json()["objection_id"], receipt.json()["listing_state"]) == (1, "objected")

    decided = client.post(
        f"/api/blacklist/{lid}/objections/1/decision",
        headers=as_user("admin"),  # four eyes: not the officer who listed
        json={"decision": "correct", "note": "theft confirmed by police"},
    )
    assert decided.status_code == 200, decided.text
    assert (decided.json()["state"], decided.json()["objections"][0]["state"]) == ("removed", "corrected")

    assert not client.get("/api/blacklist/check", params={"phone": PHONE}, headers=teller).json()["listed"]
    assert client.get("/api/blacklist", params={"id_number": PERSON}, headers=as_user("analyst")).json() == []
    ended = client.get(
        "/api/blacklist", params={"id_number": PERSON, "include_ended": "true"}, headers=as_user("analyst")
    ).json()
    assert [x["state"] for x in ended] == ["removed"]
    history = client.get(f"/api/blacklist/{lid}/history", headers=as_user("analyst")).json()
    assert [(h["action"], h["actor"], h["state"]) for h in history] == [
        ("blacklist.list", "credit_officer", "listed"),
        ("blacklist.object", "teller", "objected"),
        ("blacklist.remove", "admin", "removed"),
    ]


def test_objection_upheld_then_amended_over_http(client: TestClient) -> None:
    officer = as_user("credit_officer")
    lid = listed(client, accounts=[ACCOUNT, "6222000000000777"])["listing_id"]
    objection = {"party_id": PERSON, "grounds": "one account is my salary account"}
    assert client.post(f"/api/blacklist/{lid}/objections", json=objection, headers=officer).status_code == 201
    own = client.post(
        f"/api/blacklist/{lid}/objections/1/decision", headers=officer, json={"decision": "uphold", "note": "mine"}
    )
    assert own.status_code == 409 and "four eyes" in own.json()["detail"], "who listed (and filed) does not decide"
    upheld = client.post(
        f"/api/blacklist/{lid}/objections/1/decision",
        headers=as_user("admin"),
        json={"decision": "uphold", "note": "evidence holds"},
    )
    assert upheld.json()["state"] == "listed"
    assert client.post(f"/api/blacklist/{lid}/objections", json=objection, headers=officer).json()["objection_id"] == 2
    amended = client.post(
        f"/api/blacklist/{lid}/objections/2/decision",
        headers=as_user("admin"),
        json={"decision": "correct", "note": "salary account", "amend": {"accounts": [ACCOUNT]}},
    )
    assert (amended.json()["state"], amended.json()["accounts"]) == ("listed", [ACCOUNT])
    assert not client.get(
        "/api/blacklist/check", params={"account": "6222000000000777"}, headers=as_user("teller")
    ).json()["listed"]


def test_repair_over_http_once_the_minimum_time_is_configured_away(
    stack: Endpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packaged = (Path(antifraud.__file__).parent / "thresholds.toml").read_text(encoding="utf-8")
    custom = tmp_path / "thresholds.toml"
    custom.write_text(packaged.replace("min_listed_years_before_repair = 1", "min_listed_years_before_repair = 0"))
    monkeypatch.setenv("ANTIFRAUD_THRESHOLDS", str(custom))
    with web_client(stack) as client:
        lid = listed(client)["listing_id"]
        missing = client.post(
            f"/api/blacklist/{lid}/repair",
            headers=as_user("credit_officer"),
            json={**REPAIR, "conditions": ["behaviour_corrected"]},
        )
        assert missing.status_code == 409
        assert "conditions not met: effects_removed, training_completed" in missing.json()["detail"]
        repaired = client.post(f"/api/blacklist/{lid}/repair", json=REPAIR, headers=as_user("credit_officer"))
        assert (repaired.status_code, repaired.json()["state"]) == (200, "repaired")


def test_repair_too_early_is_refused_with_the_date(client: TestClient) -> None:
    lid = listed(client)["listing_id"]
    refused = client.post(f"/api/blacklist/{lid}/repair", json=REPAIR, headers=as_user("credit_officer"))
    assert refused.status_code == 409 and "listed for less than 1 year(s) (repair possible from" in refused.text


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (listing_fields(party={"kind": "id_number", "id": PERSON[:17] + "0"}), "party.id_number.id"),
        (listing_fields(party={"kind": "credit_code", "id": "91110108551385082R"}), "party.credit_code.id"),
        (listing_fields(evidence=[]), "evidence"),
        (listing_fields(accounts=["6222-0000"]), "accounts.0"),
        (listing_fields(reason_code="gossip"), "reason_code"),
        (listing_fields(expires_at="2020-01-01T00:00:00Z"), "not in the future"),
        (listing_fields(expires_at="2099-01-01T00:00:00Z"), "at most 5 years"),
    ],
)
def test_bad_listings_are_refused_with_422_naming_the_field(
    client: TestClient, body: dict[str, Any], names: str
) -> None:
    backed = {**body, "case_id": confirmed_case(client.app.state.settings.redis_url)}  # type: ignore[attr-defined]
    response = client.post("/api/blacklist", json=backed, headers=as_user("credit_officer"))
    assert response.status_code == 422 and names in response.text
    assert client.get("/api/blacklist", params={"id_number": PERSON}, headers=as_user("analyst")).json() == []


def test_bad_queries_unknown_ids_and_refused_moves(client: TestClient) -> None:
    officer, analyst = as_user("credit_officer"), as_user("analyst")
    lid = listed(client)["listing_id"]
    two = client.get("/api/blacklist", params={"id_number": PERSON, "phone": PHONE}, headers=analyst)
    assert two.status_code == 422 and "exactly one" in two.json()["detail"]
    assert client.get("/api/blacklist", headers=analyst).status_code == 422
    bad_phone = client.get("/api/blacklist", params={"phone": "call-me"}, headers=analyst)
    assert bad_phone.status_code == 422 and "phone is not valid" in bad_phone.text and "call-me" not in bad_phone.text
    assert client.get("/api/blacklist/nope", headers=analyst).status_code == 404
    assert (
        client.post(
            "/api/blacklist/nope/objections", json={"party_id": PERSON, "grounds": "g"}, headers=officer
        ).status_code
        == 404
    )
    wrong_party = client.post(
        f"/api/blacklist/{lid}/objections", json={"party_id": OTHER_PERSON, "grounds": "g"}, headers=officer
    )
    assert wrong_party.status_code == 422 and "does not match the listed party" in wrong_party.text
    no_objection = client.post(
        f"/api/blacklist/{lid}/objections/1/decision", headers=officer, json={"decision": "uphold", "note": "n"}
    )
    assert no_objection.status_code == 404
    assert (
        client.post(
            f"/api/blacklist/{lid}/objections", json={"party_id": PERSON, "grounds": "g"}, headers=officer
        ).status_code
        == 201
    )
    twice = client.post(f"/api/blacklist/{lid}/objections", json={"party_id": PERSON, "grounds": "g"}, headers=officer)
    assert twice.status_code == 409 and "object (objected -> objected) refused" in twice.text
    uphold_amended = client.post(
        f"/api/blacklist/{lid}/objections/1/decision",
        headers=officer,
        json={"decision": "uphold", "note": "n", "amend": {"reason": "r"}},
    )
    assert uphold_amended.status_code == 422 and "decide 'correct' to amend" in uphold_amended.text
    listing = client.get(f"/api/blacklist/{lid}", headers=analyst).json()
    changed = client.post(
        "/api/blacklist", json=listing_fields(case_id=listing["case_id"], reason="x"), headers=officer
    )
    assert changed.status_code == 409 and lid in changed.text
    history = client.get(f"/api/blacklist/{lid}/history", headers=analyst).json()
    assert [h["action"] for h in history] == ["blacklist.list", "blacklist.object"]  # refusals wrote nothing


def test_roles(client: TestClient) -> None:
    lid = listed(client)["listing_id"]
    teller, analyst = as_user("teller"), as_user("analyst")
    other = confirmed_case(client.app.state.settings.redis_url, OTHER_PERSON)  # type: ignore[attr-defined]
    c2 = listing_fields(OTHER_PERSON, case_id=other)
    assert client.post("/api/blacklist", json=c2, headers=teller).status_code == 403
    assert client.post("/api/blacklist", json=c2, headers=analyst).status_code == 403
    assert client.post("/api/blacklist", json=c2, headers=as_user("admin")).status_code == 201
    assert client.get("/api/blacklist", params={"id_number": PERSON}, headers=teller).status_code == 403
    assert client.get(f"/api/blacklist/{lid}", headers=teller).status_code == 403
    assert client.get(f"/api/blacklist/{lid}", headers=analyst).status_code == 200
    assert (
        client.post(
            f"/api/blacklist/{lid}/objections", json={"party_id": PERSON, "grounds": "g"}, headers=analyst
        ).status_code
        == 403
    )
    assert (
        client.post(
            f"/api/blacklist/{lid}/objections", json={"party_id": PERSON, "grounds": "g"}, headers=teller
        ).status_code
        == 201
    )
    for who in (teller, analyst):
        assert (
            client.post(
                f"/api/blacklist/{lid}/objections/1/decision", headers=who, json={"decision": "uphold", "note": "n"}
            ).status_code
            == 403
        )
        assert client.post(f"/api/blacklist/{lid}/repair", json=REPAIR, headers=who).status_code == 403
    assert client.get("/api/blacklist/check", params={"id_number": PERSON}).status_code == 401
    assert client.get(f"/api/blacklist/{lid}").status_code == 401


def test_a_listing_needs_a_confirmed_case_of_the_party_or_a_second_officer(client: TestClient) -> None:
    """One officer could list anyone with an invented case id; now the case is checked, and a listing it does
    not back is only proposed, for another officer to approve."""
    officer, admin = as_user("credit_officer"), as_user("admin")
    redis_url = client.app.state.settings.redis_url  # type: ignore[attr-defined]
    invented = client.post("/api/blacklist", json=listing_fields(case_id="no-such-case"), headers=officer)
    assert invented.status_code == 409 and "there is no case no-such-case" in invented.json()["detail"]
    someone_else = confirmed_case(redis_url, OTHER_PERSON)
    not_theirs = client.post("/api/blacklist", json=listing_fields(case_id=someone_else), headers=officer)
    assert not_theirs.status_code == 409 and "about another id_number" in not_theirs.json()["detail"]
    assert client.get("/api/blacklist/check", params={"id_number": PERSON}, headers=officer).json()["listed"] is False

    proposal = client.post("/api/blacklist/proposals", json=listing_fields(case_id="tip-off-17"), headers=officer)
    assert proposal.status_code == 201 and proposal.json()["proposed_by"] == "credit_officer"
    pid = proposal.json()["proposal_id"]
    assert [p["proposal_id"] for p in client.get("/api/blacklist/proposals", headers=admin).json()] == [pid]
    assert client.get("/api/blacklist/check", params={"id_number": PERSON}, headers=officer).json()["listed"] is False
    own = client.post(f"/api/blacklist/proposals/{pid}/approve", headers=officer)
    assert own.status_code == 409 and "may not approve it (four eyes)" in own.json()["detail"]
    approved = client.post(f"/api/blacklist/proposals/{pid}/approve", headers=admin)
    assert approved.status_code == 201, approved.text
    assert (approved.json()["listed_by"], approved.json()["approved_by"]) == ("credit_officer", "admin")
    assert client.get("/api/blacklist/check", params={"id_number": PERSON}, headers=officer).json()["listed"]
    assert client.get("/api/blacklist/proposals", headers=admin).json() == []
    assert client.post(f"/api/blacklist/proposals/{pid}/approve", headers=admin).status_code == 404
    lid = approved.json()["listing_id"]
    filing = {"party_id": PERSON, "grounds": "never sold a card"}
    assert client.post(f"/api/blacklist/{lid}/objections", json=filing, headers=as_user("teller")).status_code == 201
    by_approver = client.post(
        f"/api/blacklist/{lid}/objections/1/decision", headers=admin, json={"decision": "uphold", "note": "n"}
    )
    assert by_approver.status_code == 409, "who approved the listing does not decide its objection either"
