"""Human moves on holds (revoke, freeze, release, return) on real Redis, the wall-clock tick, payee warnings,
the HTTP API and the CLI."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx
import orjson
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from antifraud import outbox
from antifraud.alerts.models import Alert, Audience, Entity, Reason
from antifraud.audit.service import AuditLog
from antifraud.cli import main
from antifraud.holds import views
from antifraud.holds.models import (
    PayeeFlag,
    HOLD_RECORD,
    HUMAN_MOVES,
    Actor,
    HoldEvent,
    HoldState,
    IllegalTransition,
    PayeeFlagged,
)
from antifraud.holds.policy import WARNING_DETECTOR
from antifraud.holds.service import HoldLedger, UnknownHold
from antifraud.thresholds import load_thresholds
from streams import topics
from streams.offline import file_partitioning
from streams.progress import Progress
from streams.records import Timer
from streams.topics import INPUT_TOPICS
from tests.stream_helpers import run_stream
from tests.test_holds import DAY, T0, atm_transfer, hold_id_for
from tests.trail_helpers import index_transfers
from tests.web_helpers import as_user, make_auth

THRESHOLDS = load_thresholds()
LIMITS = THRESHOLDS.holds
PAYEE = "6222000000000777"
TRANSFERS = INPUT_TOPICS["bank_transfer"]
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
    """Create holds as the worker does: a batch through the engine, committed, its audit records chained."""
    sink = await run_stream(ledger.redis, [atm_transfer(e, at, payer=f"62220000{i:08d}") for i, e in enumerate(event_ids)])
    await AuditLog(ledger.redis).relay_inbox()
    return [HOLD_RECORD.validate_json(value) for value in sink.on(topics.HOLDS)]


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
        await ledger.advance(T0 + DAY)  # a batch up to the due time has started: its release is on its way
        for verb in ("revoke", "freeze"):
            to, actor = HUMAN_MOVES[verb]
            with pytest.raises(IllegalTransition, match="may be releasing it"):
                await ledger.move(audit, hold_id, to, actor=actor, by="x", reason="late", at=T0 + DAY)
        assert await client.hget(f"hold:{hold_id}", "state") == b"held"
        assert await client.xlen(outbox.STREAM) == 0
        sink = await run_stream(client, [], until=(T0 + DAY).timestamp() + 1)
        assert [HOLD_RECORD.validate_json(v).hold_id for v in sink.on(topics.HOLDS)] == [hold_id]
        assert await client.hget(f"hold:{hold_id}", "state") == b"released"

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
        await ledger.move(audit, first, "released", actor="system", by="system:wall-clock",
                          reason="hold period elapsed", at=T0 + DAY)
        with pytest.raises(IllegalTransition):
            await ledger.move(audit, first, "released", actor="system", by="system:wall-clock",
                              reason="hold period elapsed", at=T0 + DAY)
        sink = await run_stream(client, [], until=(T0 + DAY).timestamp() + 1)
        assert [HOLD_RECORD.validate_json(v).hold_id for v in sink.on(topics.HOLDS)] == [hold_id_for("t-2")]
        assert await ledger.counts() == {"held": 0, "released": 2, "revoked": 0, "frozen": 0, "returned": 0}

    on_redis(redis_url, body)


# -- payee warnings ----------------------------------------------------------------------------------


def test_held_holds_paying_a_flagged_account_are_warned_about_once_and_new_ones_too(redis_url: str) -> None:
    """A flag on the payee reaches its side as a message (a timer a stage sends the delay after its alert);
    the held payments it meets are warned about once, and so is one made while the flag holds."""
    async def body(client: Redis, ledger: HoldLedger, audit: AuditLog) -> None:
        await hold_some(ledger, "t-1")
        flag = PayeeFlag(alert_id="a-1", detector="mule_account", score=0.9, at=NOW)
        partition = file_partitioning().of(TRANSFERS, PAYEE)
        async with client.pipeline(transaction=True) as pipe:
            Progress(client).queue_timers(pipe, [(partition, Timer(NOW.timestamp() + 30, TRANSFERS, PAYEE, "hold.flag",
                                                               flag.model_dump_json(), "a-1"))], [])
            await pipe.execute()
        sink = await run_stream(client, [], until=NOW.timestamp() + 60)
        warnings = [HOLD_RECORD.validate_json(v) for v in sink.on(topics.HOLDS)]
        assert [(type(w).__name__, w.hold_id) for w in warnings] == [("PayeeFlagged", hold_id_for("t-1"))]
        assert [orjson.loads(v)["detector"] for v in sink.on(topics.ALERTS)] == [WARNING_DETECTOR]
        again = await run_stream(client, [], until=NOW.timestamp() + 120)
        assert again.on(topics.HOLDS) == [], "warned about once"
        later = await run_stream(client, [atm_transfer("t-3", NOW + timedelta(minutes=5), payer="6222000000000003")],
                                 until=NOW.timestamp() + 3600)
        kinds = [type(HOLD_RECORD.validate_json(v)).__name__ for v in later.on(topics.HOLDS)]
        assert kinds == ["HoldEvent", "PayeeFlagged"], "a hold made while the flag holds is warned about"

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
        await index_transfers(client, [atm_transfer("t-1", T0, payer="6222000000000000")])
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
