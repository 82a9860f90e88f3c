"""Human moves on holds (revoke, freeze, release, return) on real Redis, the wall-clock tick, payee warnings,
the HTTP API and the CLI."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from antifraud import outbox
from antifraud.alerts.models import Alert
from antifraud.audit.service import AuditLog
from antifraud.cli import main
from antifraud.events.models import BankTransfer
from antifraud.holds import views
from antifraud.holds.models import (
    HOLD_RECORD,
    HUMAN_MOVES,
    Actor,
    HoldEvent,
    HoldState,
    IllegalTransition,
    PayeeFlagged,
)
from antifraud.holds.policy import WARNING_DETECTOR
from antifraud.holds.service import HoldLedger, UnknownHold, hold_key
from antifraud.thresholds import load_thresholds
from antifraud.web.app import answer_errors
from streams import topics
from tests.conftest import AUDIT_KEYS
from tests.stream_helpers import run_stream
from tests.test_holds import DAY, T0, atm_transfer, hold_id_for
from tests.test_transfer_risk import MULE, NEXT_HOP
from tests.test_transfer_risk import transfer as risk_transfer
from tests.trail_helpers import index_transfers
from tests.web_helpers import as_user, make_auth

THRESHOLDS = load_thresholds()
LIMITS = THRESHOLDS.holds
PAYEE = "6222000000000777"
DELAY = THRESHOLDS.stream.cross_entity_delay_seconds
R = TypeVar("R")


def on_redis(redis_url: str, body: Callable[[Redis, HoldLedger, AuditLog], Awaitable[R]]) -> R:
    async def go() -> R:
        client = Redis.from_url(redis_url)
        try:
            return await body(client, HoldLedger.configured(client, LIMITS), AuditLog(client, AUDIT_KEYS))
        finally:
            await client.aclose()

    return asyncio.run(go())


async def hold_some(ledger: HoldLedger, *event_ids: str, at: datetime = T0) -> list[HoldEvent | PayeeFlagged]:
    """Create holds as the worker does: a batch through the engine, committed, its audit records chained."""
    sink = await run_stream(
        ledger.redis, [atm_transfer(e, at, payer=f"62220000{i:08d}") for i, e in enumerate(event_ids)]
    )
    await AuditLog(ledger.redis, AUDIT_KEYS).seal()
    return [HOLD_RECORD.validate_json(value) for value in sink.on(topics.HOLDS)]


async def queued_holds(client: Redis) -> list[HoldEvent]:
    return [
        HoldEvent.model_validate_json(fields[b"value"])
        for _, fields in await client.xrange(outbox.STREAM)
        if fields[b"topic"] == topics.HOLDS.encode()
    ]


NOW = T0 + timedelta(hours=1)


def test_revoke_freeze_release_return_are_audited_and_queued_for_the_holds_topic(redis_url: str) -> None:
    async def body(client: Redis, ledger: HoldLedger, audit: AuditLog) -> None:
        await hold_some(ledger, "t-1", "t-2", "t-3")
        one, two, three = (hold_id_for(e) for e in ("t-1", "t-2", "t-3"))
        revoked = await ledger.move(
            audit, one, "revoked", actor="sender", by="teller:li@B001", reason="sender asked", at=NOW
        )
        assert (revoked.from_state, revoked.to_state, revoked.by, revoked.at) == (
            "held",
            "revoked",
            "teller:li@B001",
            NOW,
        )
        await ledger.move(audit, two, "frozen", actor="police", by="analyst:wang", reason="order 17", at=NOW)
        await ledger.move(audit, two, "released", actor="police", by="analyst:wang", reason="order lifted", at=NOW)
        await ledger.move(audit, three, "frozen", actor="police", by="analyst:wang", reason="order 18", at=NOW)
        await ledger.move(audit, three, "returned", actor="police", by="analyst:wang", reason="court order", at=NOW)

        assert [(e.hold_id, e.to_state) for e in await queued_holds(client)] == [
            (one, "revoked"),
            (two, "frozen"),
            (two, "released"),
            (three, "frozen"),
            (three, "returned"),
        ]
        history = await audit.about(f"hold:{two}")
        assert [(r.actor, r.action, r.before, r.after["state"]) for r in history] == [
            ("system", "hold.held", None, "held"),
            ("analyst:wang", "hold.frozen", {"state": "held"}, "frozen"),
            ("analyst:wang", "hold.released", {"state": "frozen"}, "released"),
        ]
        assert (await audit.verify()).ok
        assert await ledger.counts() == {"held": 0, "released": 1, "revoked": 1, "frozen": 0, "returned": 1}
        assert [h.hold_id for h in await ledger.in_state("revoked", limit=10)] == [one]
        assert await ledger.in_state("held", limit=10) == []
        assert [h.hold_id for h in await ledger.of_accounts([PAYEE])] == sorted(
            [one, two, three], key=lambda h: ({one: "t-1", two: "t-2", three: "t-3"}[h], h)
        ), "a case still finds the settled holds paying its account"
        assert 0 < await client.ttl(hold_key(one)) <= LIMITS.retain_days * 86400

    on_redis(redis_url, body)


@pytest.mark.parametrize(
    ("first", "then", "actor"),
    [
        (None, "returned", "police"),
        (None, "released", "police"),
        ("revoked", "frozen", "police"),
        ("revoked", "revoked", "sender"),
        ("frozen", "revoked", "sender"),
        ("frozen", "frozen", "police"),
        (None, "frozen", "sender"),
        (None, "revoked", "police"),
    ],
)
def test_illegal_moves_are_refused_and_nothing_is_written(
    redis_url: str, first: HoldState | None, then: HoldState, actor: Actor
) -> None:
    async def body(client: Redis, ledger: HoldLedger, audit: AuditLog) -> None:
        await hold_some(ledger, "t-1")
        hold_id = hold_id_for("t-1")
        if first is not None:
            await ledger.move(
                audit,
                hold_id,
                first,
                actor="sender" if first == "revoked" else "police",
                by="x",
                reason="first",
                at=NOW,
            )
        before = (await client.xlen(outbox.STREAM), await client.llen("audit:log"), await ledger.counts())
        with pytest.raises(IllegalTransition) as refused:
            await ledger.move(audit, hold_id, then, actor=actor, by="x", reason="then", at=NOW)
        assert hold_id in str(refused.value) and f"-> {then}" in str(refused.value)
        assert (await client.xlen(outbox.STREAM), await client.llen("audit:log"), await ledger.counts()) == before

    on_redis(redis_url, body)


def test_revoke_and_freeze_are_refused_once_the_ledger_has_reached_the_due_time(redis_url: str) -> None:
    async def body(client: Redis, ledger: HoldLedger, audit: AuditLog) -> None:
        await hold_some(ledger, "t-1")
        hold_id = hold_id_for("t-1")
        await ledger.advance(T0 + DAY)  # a batch up to the due time has started: its release is on its way
        for verb in ("revoke", "freeze"):
            to, actor = HUMAN_MOVES[verb]
            with pytest.raises(IllegalTransition, match="may be releasing it"):
                await ledger.move(audit, hold_id, to, actor=actor, by="x", reason="late", at=T0 + DAY)
        assert (hold := await ledger.get(hold_id)) is not None and hold.state == "held"
        assert await client.xlen(outbox.STREAM) == 0
        sink = await run_stream(client, [], until=(T0 + DAY).timestamp() + 1)
        assert [HOLD_RECORD.validate_json(v).hold_id for v in sink.on(topics.HOLDS)] == [hold_id]
        assert (hold := await ledger.get(hold_id)) is not None and hold.state == "released"

    on_redis(redis_url, body)


def test_an_unknown_hold_is_named(redis_url: str) -> None:
    async def body(client: Redis, ledger: HoldLedger, audit: AuditLog) -> None:
        with pytest.raises(UnknownHold, match="no hold 0{32}"):
            await ledger.move(audit, "0" * 32, "revoked", actor="sender", by="x", reason="r", at=NOW)
        assert await ledger.get("0" * 32) is None

    on_redis(redis_url, body)


def test_counts_and_due_within(redis_url: str) -> None:
    async def body(client: Redis, ledger: HoldLedger, audit: AuditLog) -> None:
        assert await ledger.due_within(3600) == 0
        await hold_some(ledger, "a", "b")
        await hold_some(ledger, "c", at=T0 + timedelta(hours=3))
        assert (await ledger.counts())["held"] == 3
        assert await ledger.watermark() == T0 + timedelta(hours=3)
        assert await ledger.due_within(DAY.total_seconds() - 3 * 3600) == 2
        assert await ledger.due_within(DAY.total_seconds()) == 3
        assert await ledger.due_within(0, since=T0 + DAY) == 2, "overdue by a clock given"
        same_due = sorted([hold_id_for("a"), hold_id_for("b")])
        assert [h.hold_id for h in await ledger.in_state("held", limit=2, offset=1)] == [same_due[1], hold_id_for("c")]

    on_redis(redis_url, body)


# -- the tick: wall-clock release -----------------------------------------------------------------


def test_a_wall_clock_release_is_one_move_and_the_streams_release_after_it_changes_nothing(redis_url: str) -> None:
    """What the worker's wall-clock tick does (``streams/app.py``): a hold due by the wall clock is moved
    as a person's action is; the stream's own release at its event time then finds it released."""

    async def body(client: Redis, ledger: HoldLedger, audit: AuditLog) -> None:
        await hold_some(ledger, "t-1", "t-2")
        first = hold_id_for("t-1")
        await ledger.move(
            audit, first, "released", actor="system", by="system:wall-clock", reason="hold period elapsed", at=T0 + DAY
        )
        with pytest.raises(IllegalTransition):
            await ledger.move(
                audit,
                first,
                "released",
                actor="system",
                by="system:wall-clock",
                reason="hold period elapsed",
                at=T0 + DAY,
            )
        sink = await run_stream(client, [], until=(T0 + DAY).timestamp() + 1)
        assert [HOLD_RECORD.validate_json(v).hold_id for v in sink.on(topics.HOLDS)] == [hold_id_for("t-2")]
        assert await ledger.counts() == {"held": 0, "released": 2, "revoked": 0, "frozen": 0, "returned": 0}

    on_redis(redis_url, body)


# -- payee warnings ----------------------------------------------------------------------------------


def mule_day(first_channel: str = "atm") -> list[BankTransfer]:
    """Three unrelated payers pay the mule (the first at an ATM: held), each receipt moved on within minutes:
    the transfer stage flags the mule at the third pass-on (``tests/test_transfer_risk.py``)."""
    flows = []
    for i in range(3):
        flows.append(
            risk_transfer(
                f"in{i}",
                60 * i,
                f"62220000000000{11 + i}",
                MULE,
                30_000,
                channel=first_channel if i == 0 else "mobile",
                payer_name=f"付款人{i}",
                payee_name="赵六",
            )
        )
        flows.append(
            risk_transfer(f"out{i}", 60 * i + 5, MULE, f"{NEXT_HOP}{i}", 29_500, payer_name="赵六", payee_name="钱七")
        )
    return flows


def test_a_held_payment_to_an_account_the_stream_flags_is_warned_about_once_and_new_ones_too(redis_url: str) -> None:
    """A victim's ATM payment to a mule is held; the mule alert raised later flags the payee, which its
    side of the hold learns the delay after the alert: the held payment is warned about once (a record on
    the holds topic, an alert for the ATM's bank, an audit record), and so is one made while the flag holds."""
    flows = mule_day()
    hold_id = hold_id_for("in0")
    flagged_at = max(t.event_time for t in flows)

    async def body(client: Redis, ledger: HoldLedger, audit: AuditLog) -> None:
        sink = await run_stream(client, flows, until=flagged_at.timestamp() + 3 * DELAY)
        records = [HOLD_RECORD.validate_json(v) for v in sink.on(topics.HOLDS)]
        assert [(type(r).__name__, r.hold_id) for r in records] == [("HoldEvent", hold_id), ("PayeeFlagged", hold_id)]
        warning = records[1]
        assert isinstance(warning, PayeeFlagged) and (warning.flag.detector, warning.hold.payee_account) == (
            "mule_account",
            MULE,
        )
        [mule_alert] = [
            a for a in map(Alert.model_validate_json, sink.on(topics.ALERTS)) if a.detector == "mule_account"
        ]
        assert warning.flag.alert_id == mule_alert.alert_id
        [alert] = [a for a in map(Alert.model_validate_json, sink.on(topics.ALERTS)) if a.detector == WARNING_DETECTOR]
        assert (alert.entity.value, alert.evidence_event_ids) == (MULE, ["in0"])
        assert [(a.kind, a.id) for a in alert.audience] == [("atm", "atm-9"), ("bank_risk", None)]
        while await audit.seal():
            pass
        assert [r.action for r in await audit.about(f"hold:{hold_id}")] == ["hold.held", "hold.payee_flagged"]

        again = await run_stream(client, [], until=flagged_at.timestamp() + 3600)
        assert again.on(topics.HOLDS) == [], "warned about once"
        victim = late_victim()
        later = await run_stream(client, [victim], until=victim.event_time.timestamp() + 3 * DELAY)
        told = [HOLD_RECORD.validate_json(v) for v in later.on(topics.HOLDS)]
        warned = {(w.hold_id, w.flag.detector) for w in told if isinstance(w, PayeeFlagged)}
        assert [(type(r).__name__, r.hold_id) for r in told][0] == ("HoldEvent", hold_id_for("late-victim"))
        assert (hold_id_for("late-victim"), "mule_account") in warned, "a hold made while the flag holds is warned"
        assert (hold_id, "transfer_risk") in warned, "the new payment's alert flags the payee again: a new warning"

    on_redis(redis_url, body)


def late_victim() -> BankTransfer:
    """A fourth victim paying the flagged mule at an ATM: held, and its own transfer-risk alert flags the mule."""
    return risk_transfer(
        "late-victim", 180, "6222000000000021", MULE, 8_000, channel="atm", payer_name="孙八", payee_name="赵六"
    )


def test_a_held_payment_whose_own_alert_flags_its_payee_is_warned_about_that_alert(redis_url: str) -> None:
    """The hold of a payment and the flag its own alert raises on the payee reach the payee's side at the same
    time (both the delay after the transfer): they meet, so the hold is warned about that alert too."""
    flows = mule_day()

    async def body(client: Redis, ledger: HoldLedger, audit: AuditLog) -> None:
        await run_stream(client, flows, until=max(t.event_time for t in flows).timestamp() + 3 * DELAY)
        victim = late_victim()
        later = await run_stream(client, [victim], until=victim.event_time.timestamp() + 3 * DELAY)
        [own] = [a for a in map(Alert.model_validate_json, later.on(topics.ALERTS)) if a.detector == "transfer_risk"]
        warned = {
            (w.hold_id, w.flag.alert_id)
            for w in map(HOLD_RECORD.validate_json, later.on(topics.HOLDS))
            if isinstance(w, PayeeFlagged)
        }
        assert (hold_id_for("late-victim"), own.alert_id) in warned

    on_redis(redis_url, body)


def test_two_held_payments_to_one_payee_seconds_apart_are_both_warned_about(redis_url: str) -> None:
    """Two victims pay the mule at ATMs twelve seconds apart (both holds reach its side in one piece); the
    mule alert later warns about both."""
    second = risk_transfer(
        "in0b", 0.2, "6222000000000031", MULE, 20_000, channel="atm", payer_name="周九", payee_name="赵六"
    )
    flows = [*mule_day(), second]

    async def body(client: Redis, ledger: HoldLedger, audit: AuditLog) -> None:
        sink = await run_stream(client, flows, until=max(t.event_time for t in flows).timestamp() + 3 * DELAY)
        warned = {
            (w.hold_id, w.flag.detector)
            for w in map(HOLD_RECORD.validate_json, sink.on(topics.HOLDS))
            if isinstance(w, PayeeFlagged)
        }
        assert {(hold_id_for("in0"), "mule_account"), (hold_id_for("in0b"), "mule_account")} <= warned

    on_redis(redis_url, body)


def test_a_held_payment_to_an_account_nobody_flags_is_not_warned_about(redis_url: str) -> None:
    """The same payments with the mule passing nothing on: no alert, so the held payment is only held."""
    flows = [t for t in mule_day() if not t.event_id.startswith("out")]

    async def body(client: Redis, ledger: HoldLedger, audit: AuditLog) -> None:
        sink = await run_stream(client, flows, until=max(t.event_time for t in flows).timestamp() + 3600)
        assert [type(HOLD_RECORD.validate_json(v)).__name__ for v in sink.on(topics.HOLDS)] == ["HoldEvent"]
        assert sink.on(topics.ALERTS) == []

    on_redis(redis_url, body)


# -- HTTP ---------------------------------------------------------------------------------------------


def api(client: Redis) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(views.router)
    answer_errors(app)
    app.state.redis, app.state.audit, app.state.thresholds, app.state.auth = (
        client,
        AuditLog(client, AUDIT_KEYS),
        THRESHOLDS,
        make_auth(),
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def test_http_moves_with_roles_and_clear_errors(redis_url: str) -> None:
    async def body(client: Redis, ledger: HoldLedger, audit: AuditLog) -> None:
        await hold_some(ledger, "t-1", "t-2")
        one, two = hold_id_for("t-1"), hold_id_for("t-2")
        reason = {"reason": "sender called"}
        async with api(client) as http:
            found = await http.get(
                "/api/holds/by-payer", params={"account": "6222000000000000"}, headers=as_user("teller")
            )
            assert [h["hold_id"] for h in found.json()] == [one], "a customer's holds, found at any counter"
            assert (await http.post(f"/api/holds/{one}/revoke", json=reason)).status_code == 401
            assert (
                await http.post(f"/api/holds/{one}/freeze", json=reason, headers=as_user("teller"))
            ).status_code == 403
            assert (await http.get("/api/holds", headers=as_user("teller"))).status_code == 403
            shown = await http.get(f"/api/holds/{one}", headers=as_user("teller"))
            assert shown.status_code == 200 and shown.json()["state"] == "held"

            revoked = await http.post(f"/api/holds/{one}/revoke", json=reason, headers=as_user("teller"))
            assert revoked.status_code == 200, revoked.text
            assert (revoked.json()["to_state"], revoked.json()["by"]) == ("revoked", "teller:teller@B001")
            again = await http.post(f"/api/holds/{one}/revoke", json=reason, headers=as_user("teller"))
            assert again.status_code == 409 and "revoked -> revoked refused" in again.json()["detail"]

            order = {"reason": "police order 2026-17"}
            assert (
                await http.post(f"/api/holds/{two}/return", json=order, headers=as_user("analyst"))
            ).status_code == 409
            assert (
                await http.post(f"/api/holds/{two}/freeze", json=order, headers=as_user("analyst"))
            ).status_code == 200
            moves = (await http.get(f"/api/holds/{two}/moves", headers=as_user("analyst"))).json()
            assert [(m["state"], m["by"], m["reason"]) for m in moves] == [
                ("held", None, moves[0]["reason"]),
                ("frozen", "analyst:analyst", "police order 2026-17"),
            ], "who froze it and why"
            frozen = await http.get("/api/holds", params={"state": "frozen"}, headers=as_user("analyst"))
            assert [h["hold_id"] for h in frozen.json()] == [two]
            returned = await http.post(f"/api/holds/{two}/return", json=order, headers=as_user("admin"))
            assert returned.status_code == 200 and returned.json()["actor"] == "police"

            assert (await http.get(f"/api/holds/{'0' * 32}", headers=as_user("analyst"))).status_code == 404
            unknown = await http.post(f"/api/holds/{'0' * 32}/freeze", json=order, headers=as_user("analyst"))
            assert unknown.status_code == 404 and "no hold" in unknown.json()["detail"]
            not_an_id = await http.post("/api/holds/XYZ/freeze", json=order, headers=as_user("analyst"))
            assert not_an_id.status_code == 404, "no hold id, so no hold's path"
            for bad in (
                await http.post(f"/api/holds/{two}/freeze", json={"reason": "  "}, headers=as_user("analyst")),
                await http.post(f"/api/holds/{two}/freeze", json={}, headers=as_user("analyst")),
                await http.get("/api/holds", params={"state": "lost"}, headers=as_user("analyst")),
            ):
                assert bad.status_code == 422, bad.text
        assert [e.to_state for e in await queued_holds(client)] == ["revoked", "frozen", "returned"]

    on_redis(redis_url, body)


def test_http_report_traces_and_refuses_a_bad_window(redis_url: str) -> None:
    async def body(client: Redis, ledger: HoldLedger, audit: AuditLog) -> None:
        await hold_some(ledger, "t-1")
        await index_transfers(client, [atm_transfer("t-1", T0, payer="6222000000000000")])
        report = {
            "victim_account": "6222000000000000",
            "start": (T0 - timedelta(hours=1)).isoformat(),
            "end": (T0 + timedelta(hours=1)).isoformat(),
            "reason": "96110 report",
        }
        async with api(client) as http:
            assert (await http.post("/api/holds/reports", json=report, headers=as_user("teller"))).status_code == 403
            done = await http.post("/api/holds/reports", json=report, headers=as_user("analyst"))
            assert done.status_code == 200, done.text
            assert done.json()["frozen_holds"] == [hold_id_for("t-1")]
            assert [(r["kind"], r["amount_fen"]) for r in done.json()["requests"]] == [("stop_payment", 500_000)]
            bad = await http.post(
                "/api/holds/reports", json={**report, "end": report["start"]}, headers=as_user("analyst")
            )
            assert bad.status_code == 422 and "end must be after start" in bad.text
            naive = await http.post(
                "/api/holds/reports", json={**report, "start": "2026-03-02T08:00:00"}, headers=as_user("analyst")
            )
            assert naive.status_code == 422

    on_redis(redis_url, body)


# -- CLI ----------------------------------------------------------------------------------------------


def test_cli_moves_lists_masked_and_names_bad_arguments(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)

    async def seed(client: Redis, ledger: HoldLedger, audit: AuditLog) -> Any:
        return await hold_some(ledger, "t-1")

    on_redis(redis_url, seed)
    hold_id = hold_id_for("t-1")
    assert main(["holds", "list"]) == 0
    listed = capsys.readouterr().out
    assert hold_id in listed and "6222********0000" in listed and PAYEE not in listed

    assert main(["holds", "freeze", hold_id, "--actor", "wang", "--reason", "order 17"]) == 0
    assert "held -> frozen" in capsys.readouterr().out
    assert main(["holds", "revoke", hold_id, "--actor", "li", "--reason", "sender asked"]) == 1
    assert "frozen -> revoked refused" in capsys.readouterr().err
    assert main(["holds", "show", hold_id]) == 0
    shown = capsys.readouterr().out
    assert "frozen" in shown and "cli:wang" in shown and "hold.frozen" in shown

    with pytest.raises(SystemExit) as blank:
        main(["holds", "return", hold_id, "--actor", " ", "--reason", "r"])
    assert blank.value.code == 2 and "argument --actor: must not be blank" in capsys.readouterr().err
    assert (
        main(
            [
                "holds",
                "report",
                "--victim",
                "6222000000000001",
                "--from",
                "2026-03-02T08:00:00",
                "--to",
                "2026-03-02T10:00:00+00:00",
                "--actor",
                "wang",
                "--reason",
                "r",
            ]
        )
        == 2
    )
    assert "--from: " in capsys.readouterr().err
