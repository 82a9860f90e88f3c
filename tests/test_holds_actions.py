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
from antifraud.alerts.models import Alert, Audience, Entity, Reason
from antifraud.audit.service import AuditLog
from antifraud.cli import main
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
from antifraud.holds.policy import WARNING_DETECTOR, LedgerView, hold_for, payee_flags, plan_batch
from antifraud.holds.service import HoldLedger, UnknownHold
from antifraud.state.money_trail import TransferIndex
from antifraud.thresholds import load_thresholds
from streams import topics
from streams.stages import HoldStage, flag_payees
from tests.test_holds import DAY, T0, atm_transfer, hold_id_for
from tests.web_helpers import as_user, make_auth

THRESHOLDS = load_thresholds()
LIMITS = THRESHOLDS.holds
PAYEE = "6222000000000777"
R = TypeVar("R")


def on_redis(redis_url: str, body: Callable[[Redis, HoldLedger, AuditLog], Awaitable[R]]) -> R:
    async def go() -> R:
        client = Redis.from_url(redis_url)
        try:
            return await body(client, HoldLedger.configured(client, LIMITS), AuditLog(client))
        finally:
            await client.aclose()

    return asyncio.run(go())


async def hold_some(ledger: HoldLedger, *event_ids: str, at: datetime = T0) -> list[HoldEvent | PayeeFlagged]:
    """Create holds as the worker does: the stage's batch, then its flush."""
    outcome = await HoldStage(ledger, LIMITS)([atm_transfer(e, at, payer=f"62220000{i:08d}") for i, e in enumerate(event_ids)])
    await outcome.flush_state()
    return [HOLD_RECORD.validate_json(value) for _, _, value in outcome.extra]


async def queued_holds(client: Redis) -> list[HoldEvent]:
    return [HoldEvent.model_validate_json(fields[b"value"]) for _, fields in await client.xrange(outbox.STREAM)
            if fields[b"topic"] == topics.HOLDS.encode()]


NOW = T0 + timedelta(hours=1)


def test_revoke_freeze_release_return_are_audited_and_queued_for_the_holds_topic(redis_url: str) -> None:
    async def body(client: Redis, ledger: HoldLedger, audit: AuditLog) -> None:
        await hold_some(ledger, "t-1", "t-2", "t-3")
        one, two, three = (hold_id_for(e) for e in ("t-1", "t-2", "t-3"))
        revoked = await ledger.move(audit, one, "revoked", actor="sender", by="teller:li@B001", reason="sender asked", at=NOW)
        assert (revoked.from_state, revoked.to_state, revoked.by, revoked.at) == ("held", "revoked", "teller:li@B001", NOW)
        await ledger.move(audit, two, "frozen", actor="police", by="analyst:wang", reason="order 17", at=NOW)
        await ledger.move(audit, two, "released", actor="police", by="analyst:wang", reason="order lifted", at=NOW)
        await ledger.move(audit, three, "frozen", actor="police", by="analyst:wang", reason="order 18", at=NOW)
        await ledger.move(audit, three, "returned", actor="police", by="analyst:wang", reason="court order", at=NOW)

        assert [(e.hold_id, e.to_state) for e in await queued_holds(client)] == [
            (one, "revoked"), (two, "frozen"), (two, "released"), (three, "frozen"), (three, "returned")]
        history = await audit.about(f"hold:{two}")
        assert [(r.actor, r.action, r.before, r.after["state"]) for r in history] == [
            ("system", "hold.held", None, "held"),
            ("analyst:wang", "hold.frozen", {"state": "held"}, "frozen"),
            ("analyst:wang", "hold.released", {"state": "frozen"}, "released")]
        assert (await audit.verify()).ok
        assert await ledger.counts() == {"held": 0, "released": 1, "revoked": 1, "frozen": 0, "returned": 1}
        assert [h.hold_id for h in await ledger.in_state("revoked", limit=10)] == [one]
        assert await ledger.in_state("held", limit=10) == []
        assert await client.scard(f"holds:payee:{PAYEE}") == 0
        assert 0 < await client.ttl(f"hold:{one}") <= LIMITS.retain_days * 86400

    on_redis(redis_url, body)


@pytest.mark.parametrize(
    ("first", "then", "actor"),
    [(None, "returned", "police"), (None, "released", "police"), ("revoked", "frozen", "police"),
     ("revoked", "revoked", "sender"), ("frozen", "revoked", "sender"), ("frozen", "frozen", "police"),
     (None, "frozen", "sender"), (None, "revoked", "police")],
)
def test_illegal_moves_are_refused_and_nothing_is_written(
    redis_url: str, first: HoldState | None, then: HoldState, actor: Actor
) -> None:
    async def body(client: Redis, ledger: HoldLedger, audit: AuditLog) -> None:
        await hold_some(ledger, "t-1")
        hold_id = hold_id_for("t-1")
        if first is not None:
            await ledger.move(audit, hold_id, first, actor="sender" if first == "revoked" else "police", by="x",
                              reason="first", at=NOW)
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
        view = await ledger.load([], T0 + DAY)  # a batch has planned the release and is producing it
        assert [h.hold_id for h in view.due] == [hold_id]
        for verb in ("revoke", "freeze"):
            to, actor = HUMAN_MOVES[verb]
            with pytest.raises(IllegalTransition, match="may be releasing it"):
                await ledger.move(audit, hold_id, to, actor=actor, by="x", reason="late", at=T0 + DAY)
        assert await client.hget(f"hold:{hold_id}", "state") == b"held"
        assert await client.xlen(outbox.STREAM) == 0
        refused = await ledger.apply(plan_batch([], view), view.watermark)
        assert refused == 0 and await client.hget(f"hold:{hold_id}", "state") == b"released"

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


def test_the_wall_clock_tick_releases_due_holds_once_and_the_event_clock_tick_waits_for_events(redis_url: str) -> None:
    async def body(client: Redis, ledger: HoldLedger, audit: AuditLog) -> None:
        await hold_some(ledger, "t-1")
        await hold_some(ledger, "t-2", at=T0 + timedelta(hours=2))
        lag = timedelta(seconds=LIMITS.wall_clock_lag_seconds)
        event_clock, wall_clock = HoldStage(ledger, LIMITS, "event"), HoldStage(ledger, LIMITS, "wall")
        assert (await event_clock.tick(T0 + 2 * DAY)).extra == [], "replays release by event time only"

        assert (await wall_clock.tick(T0 + DAY)).extra == [], "not before the lag has passed"
        first, again = await wall_clock.tick(T0 + DAY + lag), await wall_clock.tick(T0 + DAY + lag)
        events = [HoldEvent.model_validate_json(v) for _, _, v in first.extra]
        assert [(e.hold_id, e.to_state, e.at) for e in events] == [(hold_id_for("t-1"), "released", T0 + DAY)]
        assert [v for _, _, v in again.extra] == [v for _, _, v in first.extra], "a retry before the flush: same ids"
        await first.flush_state()
        await again.flush_state()  # refused: already released
        assert (await wall_clock.tick(T0 + DAY + lag)).extra == []
        assert await ledger.counts() == {"held": 1, "released": 1, "revoked": 0, "frozen": 0, "returned": 0}
        assert await ledger.watermark() == T0 + DAY, "the tick moved the ledger's clock"

    on_redis(redis_url, body)


# -- payee warnings ----------------------------------------------------------------------------------


def account_alert(account: str, detector: str = "mule_account", score: float = 0.9, at: datetime = T0) -> Alert:
    return Alert.create(detector=detector, entity=Entity(kind="account", value=account), window_start=at,
                        window_end=at + timedelta(minutes=5), severity="high", score=score,
                        reasons=[Reason(feature="score", value=score, threshold=0.6)], evidence_event_ids=["e"],
                        audience=[Audience(kind="police")])


def test_payee_flags_come_from_account_alerts_but_not_from_the_warnings_own() -> None:
    phone = Alert.create(detector="fraud_number", entity=Entity(kind="phone", value="17055550001"), window_start=T0,
                         window_end=T0, severity="high", score=1, reasons=[Reason(feature="s", value=1, threshold=1)],
                         evidence_event_ids=["e"], audience=[Audience(kind="police")])
    weak, strong = account_alert(PAYEE, score=0.7), account_alert(PAYEE, "transfer_risk", score=0.95)
    flags = payee_flags([phone, weak, strong, account_alert("6222000000000999", WARNING_DETECTOR)])
    assert list(flags) == [PAYEE] and flags[PAYEE].alert_id == strong.alert_id


def test_a_plan_warns_before_it_releases_and_alerts_the_atm() -> None:
    hold = hold_for(atm_transfer("t-1", T0), DAY)
    flag = payee_flags([account_alert(PAYEE, at=T0 + timedelta(hours=3))])[PAYEE]
    plan = plan_batch([], LedgerView(watermark=T0 + DAY, due=(hold,), pending=((hold.hold_id, hold, flag), ("gone", None, flag))))
    assert [(type(e).__name__, e.hold_id) for e in plan.events] == [("PayeeFlagged", hold.hold_id), ("HoldEvent", hold.hold_id)]
    assert (plan.warned, plan.drained) == ([hold.hold_id], [hold.hold_id, "gone"])
    [alert] = plan.alerts
    assert (alert.detector, alert.entity.value, alert.audience[0]) == (WARNING_DETECTOR, PAYEE, Audience(kind="atm", id="atm-1"))
    warning = plan.events[0]
    assert isinstance(warning, PayeeFlagged) and warning.at == T0 + timedelta(hours=3, minutes=5)
    again = plan_batch([], LedgerView(watermark=T0 + DAY, pending=((hold.hold_id, hold, flag),)))
    assert again.events[0] == warning and again.alerts == plan.alerts, "same ids on a replay"


def test_held_holds_paying_a_flagged_account_are_warned_about_once_and_new_ones_too(redis_url: str) -> None:
    async def body(client: Redis, ledger: HoldLedger, audit: AuditLog) -> None:
        stage = HoldStage(ledger, LIMITS)
        await hold_some(ledger, "t-1", "t-2")
        await ledger.move(audit, hold_id_for("t-2"), "revoked", actor="sender", by="x", reason="r", at=NOW)
        await flag_payees(ledger, [account_alert(PAYEE)])
        tick = await stage.tick(NOW)
        warnings = [HOLD_RECORD.validate_json(v) for _, _, v in tick.extra]
        assert [(type(w).__name__, w.hold_id) for w in warnings] == [("PayeeFlagged", hold_id_for("t-1"))]
        assert [(a.detector, a.audience[0].id) for a in tick.alerts] == [(WARNING_DETECTOR, "atm-1")]
        await tick.flush_state()
        await flag_payees(ledger, [account_alert(PAYEE, "transfer_risk")])
        assert (await stage.tick(NOW)).extra == [], "warned about once"

        created = await hold_some(ledger, "t-3", at=T0 + timedelta(hours=1))  # paid to the flagged account later
        assert [type(e).__name__ for e in created] == ["HoldEvent"]
        later = await stage.tick(NOW)
        assert [(type(w).__name__, w.hold_id) for w in map(HOLD_RECORD.validate_json, (v for _, _, v in later.extra))] == [
            ("PayeeFlagged", hold_id_for("t-3"))]
        await later.flush_state()
        assert await client.hlen("holds:pending") == 0

    on_redis(redis_url, body)


# -- HTTP ---------------------------------------------------------------------------------------------


def api(client: Redis) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(views.router)
    app.state.redis, app.state.audit, app.state.thresholds, app.state.auth = client, AuditLog(client), THRESHOLDS, make_auth()
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def test_http_moves_with_roles_and_clear_errors(redis_url: str) -> None:
    async def body(client: Redis, ledger: HoldLedger, audit: AuditLog) -> None:
        await hold_some(ledger, "t-1", "t-2")
        one, two = hold_id_for("t-1"), hold_id_for("t-2")
        reason = {"reason": "sender called"}
        async with api(client) as http:
            assert (await http.post(f"/api/holds/{one}/revoke", json=reason)).status_code == 401
            assert (await http.post(f"/api/holds/{one}/freeze", json=reason, headers=as_user("teller"))).status_code == 403
            assert (await http.get("/api/holds", headers=as_user("teller"))).status_code == 403
            shown = await http.get(f"/api/holds/{one}", headers=as_user("teller"))
            assert shown.status_code == 200 and shown.json()["state"] == "held"

            revoked = await http.post(f"/api/holds/{one}/revoke", json=reason, headers=as_user("teller"))
            assert revoked.status_code == 200, revoked.text
            assert (revoked.json()["to_state"], revoked.json()["by"]) == ("revoked", "teller:teller@B001")
            again = await http.post(f"/api/holds/{one}/revoke", json=reason, headers=as_user("teller"))
            assert again.status_code == 409 and "revoked -> revoked refused" in again.json()["detail"]

            order = {"reason": "police order 2026-17"}
            assert (await http.post(f"/api/holds/{two}/return", json=order, headers=as_user("analyst"))).status_code == 409
            assert (await http.post(f"/api/holds/{two}/freeze", json=order, headers=as_user("analyst"))).status_code == 200
            frozen = await http.get("/api/holds", params={"state": "frozen"}, headers=as_user("analyst"))
            assert [h["hold_id"] for h in frozen.json()] == [two]
            returned = await http.post(f"/api/holds/{two}/return", json=order, headers=as_user("admin"))
            assert returned.status_code == 200 and returned.json()["actor"] == "police"

            assert (await http.get(f"/api/holds/{'0' * 32}", headers=as_user("analyst"))).status_code == 404
            unknown = await http.post(f"/api/holds/{'0' * 32}/freeze", json=order, headers=as_user("analyst"))
            assert unknown.status_code == 404 and "no hold" in unknown.json()["detail"]
            for bad in (await http.post("/api/holds/XYZ/freeze", json=order, headers=as_user("analyst")),
                        await http.post(f"/api/holds/{two}/freeze", json={"reason": "  "}, headers=as_user("analyst")),
                        await http.post(f"/api/holds/{two}/freeze", json={}, headers=as_user("analyst")),
                        await http.get("/api/holds", params={"state": "lost"}, headers=as_user("analyst"))):
                assert bad.status_code == 422, bad.text
        assert [e.to_state for e in await queued_holds(client)] == ["revoked", "frozen", "returned"]

    on_redis(redis_url, body)


def test_http_report_traces_and_refuses_a_bad_window(redis_url: str) -> None:
    async def body(client: Redis, ledger: HoldLedger, audit: AuditLog) -> None:
        await hold_some(ledger, "t-1")
        await TransferIndex.configured(client, LIMITS.trail).record([atm_transfer("t-1", T0, payer="6222000000000000")])
        report = {"victim_account": "6222000000000000", "start": (T0 - timedelta(hours=1)).isoformat(),
                  "end": (T0 + timedelta(hours=1)).isoformat(), "reason": "96110 report"}
        async with api(client) as http:
            assert (await http.post("/api/holds/reports", json=report, headers=as_user("teller"))).status_code == 403
            done = await http.post("/api/holds/reports", json=report, headers=as_user("analyst"))
            assert done.status_code == 200, done.text
            assert done.json()["frozen_holds"] == [hold_id_for("t-1")]
            assert [(r["kind"], r["amount_fen"]) for r in done.json()["requests"]] == [("stop_payment", 500_000)]
            bad = await http.post("/api/holds/reports", json={**report, "end": report["start"]}, headers=as_user("analyst"))
            assert bad.status_code == 422 and "end must be after start" in bad.text
            naive = await http.post("/api/holds/reports", json={**report, "start": "2026-03-02T08:00:00"},
                                    headers=as_user("analyst"))
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
    assert main(["holds", "report", "--victim", "6222000000000001", "--from", "2026-03-02T08:00:00",
                 "--to", "2026-03-02T10:00:00+00:00", "--actor", "wang", "--reason", "r"]) == 2
    assert "--from: " in capsys.readouterr().err
