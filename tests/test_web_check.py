"""The pre-transfer check: the pure decision, and the endpoint over real Redis state."""

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from redis.asyncio import Redis

from antifraud import blocklist
from antifraud.alerts.models import Alert
from antifraud.events.models import BankTransfer, CallRecord
from antifraud.stack.embedded import Endpoints
from antifraud.state import keys
from antifraud.state.store import OwnedStore
from antifraud.state.transfer_risk import account_codec
from antifraud.thresholds import load_thresholds
from antifraud.web.app import create_app
from antifraud.web.check import CheckFacts, CheckState, Decision, TransferCheck, decide
from detectors.accounts import AccountInfo
from detectors.transfer_risk import Account, AccountChange, Call, Flag, Flow
from streams.stages import BankingFacts
from streams.topics import ALERTS
from tests.stream_helpers import run_stream
from tests.test_transfer_risk import _mule_day
from tests.web_helpers import BRANCH, as_user, make_auth, settings_for, web_client

THRESHOLDS = load_thresholds()
DELAY = THRESHOLDS.stream.cross_entity_delay_seconds
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)
PAYER, PAYEE, PHONE, LISTED = "6222000000000001", "6222000000000666", "13900000001", "17055550009"
BODY = {
    "channel": "counter",
    "payer_account": PAYER,
    "payer_name": "王芳",
    "payer_id_number": "320585198609013410",
    "payee_account": PAYEE,
    "payee_name": "李强",
    "amount_fen": 3_000_000,
    "branch_id": BRANCH,
    "payer_phone": PHONE,
}


def transfer(**changes: object) -> TransferCheck:
    return TransferCheck.model_validate({**BODY, "event_time": NOW, **changes})


def codes(state: CheckState, **changes: object) -> tuple[Decision, list[str]]:
    result = decide(transfer(**changes), state, THRESHOLDS)
    return result.decision, [r.code for r in result.reasons]


def test_a_plain_transfer_is_allowed_without_reasons() -> None:
    assert codes(CheckState()) == (Decision.ALLOW, [])


def test_a_payer_just_called_by_a_listed_number_is_blocked_with_the_call_first() -> None:
    called = CheckFacts(reached_by={PHONE: [Call(LISTED, NOW.timestamp() - 1800, 1500, "call-1")]})
    decision, reasons = codes(CheckState(facts=called))
    assert decision is Decision.BLOCK
    assert reasons[:2] == ["call_before_hours_max", "flagged_call_minutes"]
    assert "new_payee" in reasons


def test_a_blacklisted_payee_is_blocked_even_for_a_small_amount() -> None:
    decision, reasons = codes(CheckState(facts=CheckFacts(blacklisted_accounts=frozenset({PAYEE}))), amount_fen=5_000)
    assert decision is Decision.BLOCK and reasons[0] == "blacklisted_payee"


def test_an_atm_transfer_to_another_name_is_held_and_to_ones_own_name_allowed() -> None:
    result = decide(transfer(channel="atm", atm_id="atm-7", branch_id=None), CheckState(), THRESHOLDS)
    assert result.decision is Decision.HOLD
    assert result.reasons[0].message.endswith(f"after {THRESHOLDS.holds.period_hours:g} h")
    assert codes(CheckState(), channel="atm", atm_id="atm-7", branch_id=None, payee_name=" 王芳 ")[0] is Decision.ALLOW


def test_a_flagged_mule_payee_and_a_new_payee_warn_at_medium_severity() -> None:
    at = NOW.timestamp()
    flagged = CheckFacts(flags_by={PAYEE: [Flag("alert-1", "mule_account", 0.9, at - 60, at + 3600)]})
    decision, reasons = codes(CheckState(facts=flagged), amount_fen=100_000)
    assert decision is Decision.WARN
    assert set(reasons) == {"payee_flagged", "new_payee"}


def test_a_payee_whose_holder_opens_many_cards_warns() -> None:
    assert codes(CheckState(payee_holder_flagged=True)) == (Decision.WARN, ["payee_holder_bulk_opener"])


def test_a_payer_passing_money_on_like_a_mule_is_held_as_the_next_hop() -> None:
    at = NOW.timestamp()
    inflows = [Flow(f"in-{i}", at - 600 + i, f"62220000000100{i:02d}", 1_000_000, "mobile", False) for i in range(4)]
    decision, reasons = codes(CheckState(facts=CheckFacts(inflows_by={PAYER: inflows})), amount_fen=3_900_000)
    assert decision is Decision.HOLD
    assert {"payer_flagged", "payer_pass_through_share", "payer_fan_in_payers"} <= set(reasons)


def test_a_payment_that_makes_the_payee_a_collecting_mule_warns() -> None:
    at = NOW.timestamp()
    inflows = [Flow(f"in-{i}", at - 900 + i, f"62220000000100{i:02d}", 1_000_000, "mobile", False) for i in range(3)]
    payee = Account(outflows=[Flow("out-1", at - 60, "6222000000000999", 3_500_000, "mobile", False)])
    state = CheckState(accounts={PAYEE: payee}, facts=CheckFacts(inflows_by={PAYEE: inflows}))
    decision, reasons = codes(state, amount_fen=1_000_000)
    assert decision is Decision.WARN
    assert {"payee_pass_through_share", "payee_fan_in_payers"} <= set(reasons)


def test_a_payee_paid_before_at_the_usual_amount_stays_allowed() -> None:
    history = [
        Flow(f"out-{i}", NOW.timestamp() - 86400 * (5 - i), PAYEE, 3_000_000, "counter", False) for i in range(5)
    ]
    assert codes(CheckState(accounts={PAYER: Account(outflows=history)}))[0] is Decision.ALLOW


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"branch_id": None}, "a counter transfer needs branch_id"),
        ({"channel": "atm", "branch_id": None}, "an ATM transfer needs atm_id"),
        ({"amount_fen": 2**70}, "amount_fen\n  Input should be less than or equal to 1000000000000000"),
        ({"event_time": "0001-01-01T00:00:00Z"}, "the time must be after 1970-01-01"),
        ({"event_time": "0001-01-01T00:00:00+08:00"}, "the time is out of range in UTC"),
    ],
)
def test_a_request_that_is_not_a_valid_transfer_is_refused_with_the_reason(changes: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TransferCheck.model_validate({**BODY, **changes})


def seed(endpoints: Endpoints) -> None:
    """A payer called by a listed number, a payee opened last week by a bulk opener: the facts the call and
    card-opening stages add, written through their fact tables."""

    async def run() -> None:
        client = Redis.from_url(endpoints.redis_url)
        now = datetime.now(timezone.utc).timestamp()
        facts = BankingFacts(client, THRESHOLDS, DELAY)
        call = Call(LISTED, now - 1800, 1500, "call-1")
        opened = AccountInfo(now - 6 * 86400, "320585199001011235", "icbc", "B009", "open-1")
        flagged_at = opened.opened_at + 3600
        for change in (
            facts.reached.add(PHONE, call.at, call),
            facts.opened.add(PAYEE, opened.opened_at, opened),
            facts.bulk_openers.add(opened.holder_id_number, flagged_at, flagged_at),
        ):
            change.store.apply(change.change)
        async with client.pipeline(transaction=True) as pipe:
            for store in (facts.reached, facts.opened, facts.bulk_openers):
                store.queue(pipe)
            await pipe.execute()
        await client.aclose()

    asyncio.run(run())


def commands_run(endpoints: Endpoints) -> dict[str, int]:
    """Commands Redis ran since its stats were last reset, by name, leaving out this reading's connection and calls."""

    async def run() -> dict[str, int]:
        client = Redis.from_url(endpoints.redis_url)
        stats = await client.info("commandstats")
        await client.config_resetstat()
        await client.aclose()
        return {
            name.removeprefix("cmdstat_"): v["calls"]
            for name, v in stats.items()
            if name not in ("cmdstat_config", "cmdstat_info", "cmdstat_hello", "cmdstat_client")
        }

    return asyncio.run(run())


def test_the_endpoint_reads_every_source_in_one_round_trip_and_blocks(stack: Endpoints) -> None:
    seed(stack)
    with web_client(stack) as client:
        client.post("/api/check", json=BODY, headers=as_user("teller"))  # loads the script once
        commands_run(stack)
        response = client.post("/api/check", json=BODY, headers=as_user("teller"))
        # One script call (payer's and payee's own sides, the payee's inflows, both flags, the calls to the
        # payer's phone, the payee's opening, the blacklist), and one read of the new payee's holder's flag.
        assert commands_run(stack) == {"evalsha": 1, "get": 2, "zrange": 7, "sismember": 1, "exists": 1}
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["decision"] == "block"
        codes_found = [r["code"] for r in result["reasons"]]
        assert codes_found[0] == "call_before_hours_max"
        assert {"payee_account_age_days_max", "payee_holder_bulk_opener", "new_payee"} <= set(codes_found)
        assert result["score"] >= result["alert_score"]


def test_the_endpoint_sees_the_credit_blacklist_and_the_payers_history(stack: Endpoints) -> None:
    async def run() -> None:
        client = Redis.from_url(stack.redis_url)
        await client.sadd(keys.BLACKLIST.key(), "6222000000000777")
        store = OwnedStore(client, account_codec(THRESHOLDS.transfer_risk))  # as the transfer stage writes it
        at = datetime.now(timezone.utc).timestamp() - 86400
        history = [Flow(f"out-{i}", at - 5 + i, PAYEE, 3_000_000, "counter", False) for i in range(5)]
        await store.ensure([PAYER])
        store.apply(store.stage(PAYER, Account(outflows=history), AccountChange(added=history)).change)
        async with client.pipeline(transaction=True) as pipe:
            store.queue(pipe)
            await pipe.execute()
        await client.aclose()

    asyncio.run(run())
    body = {**BODY, "payer_phone": None}
    with web_client(stack) as client:
        known = client.post("/api/check", json=body, headers=as_user("analyst")).json()
        assert (known["decision"], known["reasons"]) == ("allow", [])
        listed = client.post("/api/check", json={**body, "payee_account": "6222000000000777"}, headers=as_user("admin"))
        assert listed.json()["decision"] == "block"
        assert listed.json()["reasons"][0]["message"] == "the payee account is on the credit blacklist"


# (request body, content type, status, what the message or detail says): bad input answered as on every route.
BAD_BODIES = [
    (b'{"amount_fen": NaN}', "application/json", 422, "amount_fen: Input should be a valid integer"),
    (b"", "application/json", 422, "body: Field required"),
    (b"{", "application/json", 422, "JSON decode error"),
    (b"[1]", "application/json", 422, "body: Input should be a valid dictionary or object to extract fields from"),
    (
        b'{"channel": "counter"}',
        "text/plain",
        422,
        "body: Input should be a valid dictionary or object to extract fields from",
    ),
    (b'{"payer_name": "\xff"}', "application/json", 400, "There was an error parsing the body"),
    (b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "There was an error parsing the body"),
]


def answers(client: TestClient, path: str) -> list[tuple[int, str]]:
    """What the check says to a good request, each bad body, a GET, a stranger and a teller of another branch."""
    good = client.post(path, json=BODY, headers=as_user("analyst"))
    found = [(good.status_code, good.json()["decision"])]
    for raw, content_type, _, _ in BAD_BODIES:
        response = client.post(path, content=raw, headers={**as_user("analyst"), "Content-Type": content_type})
        found.append((response.status_code, response.json().get("message") or response.json()["detail"]))
    found.append((client.get(path, headers=as_user("analyst")).status_code, ""))
    stranger = client.post(path, content=b"{", headers={"Content-Type": "application/json"})  # who asks comes first
    found.append((stranger.status_code, stranger.json()["detail"]))
    other = client.post(path, json={**BODY, "branch_id": "B002"}, headers=as_user("teller"))
    found.append((other.status_code, other.json()["detail"]))
    return found


def test_bad_input_is_answered_as_on_every_route_and_a_stranger_learns_nothing(stack: Endpoints) -> None:
    seed(stack)
    with web_client(stack) as client:
        found = answers(client, "/api/check")
    assert found[0] == (200, "block")
    for (status, said), (_, _, expected_status, expected) in zip(
        found[1 : 1 + len(BAD_BODIES)], BAD_BODIES, strict=True
    ):
        assert status == expected_status and expected in said, (status, said)
    assert found[-3:] == [
        (405, ""),
        (401, "not authenticated"),
        (403, f"a teller of branch {BRANCH} checks transfers at that branch only"),
    ]


def test_the_routed_check_under_a_root_path_answers_as_the_fast_path(stack: Endpoints) -> None:
    """Under a ``root_path`` the fast path steps aside and FastAPI's routing reaches the same route."""
    seed(stack)
    with web_client(stack) as client:
        fast = answers(client, "/api/check")
    with TestClient(create_app(settings_for(stack), make_auth()), root_path="/antifraud") as client:
        routed = answers(client, "/antifraud/api/check")
    assert routed == fast


def test_the_openapi_document_describes_the_check_and_its_refusals(stack: Endpoints) -> None:
    """The fast path is documented as the routed check: its body, its answer, and a 422 whose body is the
    one error body every route declares (FastAPI's list of broken fields plus a readable message)."""
    with web_client(stack) as client:
        document = client.get("/openapi.json").json()
    operation = document["paths"]["/api/check"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TransferCheck"
    }
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TransferCheckResult"
    }
    for status in ("401", "403", "422"):
        assert operation["responses"][status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"
        }
    error_body = document["components"]["schemas"]["ErrorBody"]
    assert set(error_body["properties"]) == {"detail", "message", "code", "params"}
    assert error_body["required"] == ["detail"]


def test_the_check_over_state_the_stream_wrote_agrees_with_the_alert_it_raises(stack: Endpoints) -> None:
    """The worker's stages run first: a listed number calls the payer, and the payee collects from three
    payers and passes it on (a mule alert flags it). The check of a payment to it then blocks, with the
    reasons and the score of the alert the stream raises when the payment is made."""
    assert PAYEE == _mule_day()[0].payee_account
    call = CallRecord(
        event_id="call-1",
        event_time=NOW - timedelta(minutes=30),
        caller=LISTED,
        callee=PHONE,
        start=NOW - timedelta(minutes=50),
        duration_s=1200,
        cell_id="cell-1",
        imei="860000000000001",
    )

    async def stream(events: list[BankTransfer | CallRecord], until: datetime) -> list[Alert]:
        async with Redis.from_url(stack.redis_url) as client:
            await blocklist.list_from_case(client, LISTED, "case-9", "confirmed by a victim's report")
            sink = await run_stream(client, events, until=until.timestamp())
        return [Alert.model_validate_json(v) for v in sink.on(ALERTS)]

    before = asyncio.run(stream([*_mule_day(), call], NOW - timedelta(minutes=1)))
    assert ("mule_account", PAYEE) in {(a.detector, a.entity.value) for a in before}
    with web_client(stack) as client:
        response = client.post("/api/check", json={**BODY, "event_time": NOW.isoformat()}, headers=as_user("teller"))
    assert response.status_code == 200, response.text
    checked = response.json()
    codes_found = [r["code"] for r in checked["reasons"]]
    assert checked["decision"] == "block"
    assert codes_found[:3] == ["payee_flagged", "call_before_hours_max", "flagged_call_minutes"]  # by weight
    assert {"flagged_call_minutes", "payee_flagged", "new_payee", "amount_no_history"} <= set(codes_found)

    paid = BankTransfer.model_validate({**BODY, "event_id": "pay-1", "event_time": NOW})
    [alert] = [a for a in asyncio.run(stream([paid], NOW + timedelta(minutes=1))) if a.detector == "transfer_risk"]
    assert (alert.entity.value, alert.severity, alert.score) == (PAYEE, "critical", checked["score"])
    assert {r.feature for r in alert.reasons if r.feature != "score"} == set(codes_found)
