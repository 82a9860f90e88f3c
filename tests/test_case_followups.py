"""Follow-ups of a confirmed case on real Redis: queued with the confirmation, performed by the worker's
round, a failing one retried and applied once, one that cannot pass failed for an analyst to retry, with
no personal data in its error; an account case's money trail freezing held transfers and
raising freeze requests on a known chain; a fraud report event doing the same; the case's timeline and
police package carrying its holds and trail."""

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError
from redis.asyncio import Redis

from antifraud.alerts.models import Alert, Entity
from antifraud.audit.service import AuditLog
from antifraud.case.followups import (
    FOLLOWUP_QUEUE,
    RETRY,
    FollowUp,
    FollowUpNotFound,
    FollowUpRunner,
    Perform,
    error_text,
    performers,
)
from antifraud.case.models import Case, WorkRefused
from antifraud.case.service import CaseService
from antifraud.credit.service import CreditBlacklist
from antifraud.events.models import FraudReport
from antifraud.events.types import IdNumber, make_id_number
from antifraud.forwarding.models import ForwardingPackage, PoliceCase
from antifraud.holds.policy import hold_id_for
from antifraud.holds.reports import FreezeRequest
from antifraud.holds.service import HoldLedger
from antifraud.thresholds import load_thresholds
from streams import topics
from tests.conftest import AUDIT_KEYS
from tests.stream_helpers import run_stream
from tests.test_alert_model import make_alert
from tests.test_holds import atm_transfer
from tests.test_money_trail import B2, STREAM, T0, A, B, C, D, E, F, _outbox_records

THRESHOLDS = load_thresholds()
LIMITS = THRESHOLDS.holds
DEALER = Entity(kind="id_number", value=make_id_number("320585", "19850505", 3))
BAD_ID = DEALER.value[:-1] + ("0" if DEALER.value[-1] != "0" else "1")
"""An ID number with a wrong check digit: the credit blacklist refuses it, pydantic's message quotes it."""
CHECK_DIGIT = "ID number check digit does not match (GB 11643)"


class Clock:
    def __init__(self) -> None:
        self.now = T0 + timedelta(hours=2)

    def __call__(self) -> Any:
        return self.now


def on_redis(redis_url: str, body: Callable[[CaseService, Redis, Clock], Awaitable[None]]) -> None:
    async def go() -> None:
        client = Redis.from_url(redis_url)
        clock = Clock()
        try:
            await body(CaseService(client, AuditLog(client, AUDIT_KEYS), clock=clock, holds=LIMITS), client, clock)
        finally:
            await client.aclose()

    asyncio.run(go())


def runner(cases: CaseService, redis: Redis, clock: Clock, **override: Perform) -> FollowUpRunner:
    return FollowUpRunner(
        cases.followups,
        cases,
        {**performers(redis, cases.audit, THRESHOLDS, clock=clock), **override},
        clock=clock,
        rng=random.Random(7),
    )


async def confirmed(cases: CaseService, alert: Alert) -> Case:
    case = await cases.fold_alert(alert)
    assert case is not None
    await cases.review(case.case_id, actor="ana")
    return await cases.confirm(case.case_id, actor="ana", reason="confirmed by the investigation")


def failing_once(perform: Perform, *, after: bool) -> Perform:
    """The real follow-up, failing on its first attempt: before acting, or after acting (a crash before its
    outcome is recorded)."""
    calls: list[int] = []

    async def flaky(case: Case, alerts: Sequence[Alert], followup: FollowUp) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1 and not after:
            raise ConnectionError("credit registry unreachable")
        result = await perform(case, alerts, followup)
        if len(calls) == 1:
            raise ConnectionError("lost the answer")
        return result

    return flaky


def test_a_follow_up_failing_for_an_unknown_reason_is_parked_once_its_attempts_are_spent(redis_url: str) -> None:
    async def body(cases: CaseService, redis: Redis, clock: Clock) -> None:
        dealer = Entity(kind="id_number", value=make_id_number("320585", "19800101", 4))
        case = await confirmed(cases, make_alert(detector="card_opening", entity=dealer))

        async def broken(case: Case, alerts: Sequence[Alert], followup: FollowUp) -> dict[str, Any]:
            raise RuntimeError("nobody classified this")

        stuck = runner(cases, redis, clock, credit_listing=broken)
        for attempt in range(1, RETRY.max_attempts + 1):
            assert await stuck.run_once() == 1
            [followup] = await cases.followups.for_case(case.case_id)
            assert followup.attempts == attempt
            clock.now += timedelta(seconds=RETRY.backoff_max_s)
        assert (followup.state, followup.last_error, followup.next_attempt_at) == ("failed", "RuntimeError", None)
        clock.now += timedelta(days=1)
        assert await stuck.run_once() == 0, "parked for an analyst, not retried for ever"

    on_redis(redis_url, body)


def test_a_failing_follow_up_is_retried_visibly_and_applied_once(redis_url: str) -> None:
    async def body(cases: CaseService, redis: Redis, clock: Clock) -> None:
        blacklist = CreditBlacklist(redis, cases.audit, THRESHOLDS.credit_blacklist)
        real = performers(redis, cases.audit, THRESHOLDS, clock=clock)["credit_listing"]
        for after in (False, True):
            dealer = Entity(kind="id_number", value=make_id_number("320585", "19850505" if after else "19770707", 3))
            case = await confirmed(cases, make_alert(detector="card_opening", entity=dealer))
            assert await blacklist.find("id_number", dealer.value, now=clock.now) == []
            flaky = runner(cases, redis, clock, credit_listing=failing_once(real, after=after))
            assert await flaky.run_once() == 1
            [pending] = await cases.followups.for_case(case.case_id)
            assert (pending.state, pending.attempts, pending.last_error) == ("pending", 1, "ConnectionError")
            titles = [e.title for e in await cases.timeline(case.case_id) if e.kind == "follow_up"]
            assert titles == ["follow-up credit_listing: pending, 1 failed attempt(s), last: ConnectionError"]
            assert await flaky.run_once() == 0, "not due again before its backoff"
            assert pending.next_attempt_at is not None
            assert RETRY.backoff_s / 2 <= (pending.next_attempt_at - clock.now).total_seconds() < RETRY.backoff_s, (
                "jittered"
            )
            clock.now += timedelta(seconds=RETRY.backoff_s)
            assert await flaky.run_once() == 1
            [done] = await cases.followups.for_case(case.case_id)
            assert (done.state, done.attempts, done.last_error) == ("done", 2, None)
            listings = await blacklist.find("id_number", dealer.value, now=clock.now)
            assert len(listings) == 1 and done.result == {"listed": True, "listing_id": listings[0].listing_id}
            history = [r.action for r in await cases.audit.about(f"case:{case.case_id}")]
            assert history.count("followup.credit_listing") == 1
            assert await flaky.run_once() == 0, "done: out of the queue"
            clock.now += timedelta(hours=1)
        assert (await cases.audit.verify()).ok

    on_redis(redis_url, body)


def test_an_error_keeps_its_class_and_broken_fields_never_the_values() -> None:
    with pytest.raises(ValidationError) as invalid:
        TypeAdapter(IdNumber).validate_python(BAD_ID)
    assert BAD_ID in str(invalid.value), "pydantic's message quotes the input"
    assert error_text(invalid.value) == f"ValidationError: value: {CHECK_DIGIT}"
    assert error_text(LookupError(f"no party {BAD_ID}")) == "LookupError"


def test_a_follow_up_that_cannot_pass_fails_without_personal_data_until_retried(redis_url: str) -> None:
    async def body(cases: CaseService, redis: Redis, clock: Clock) -> None:
        bad_dealer = Entity(kind="id_number", value=BAD_ID)
        case = await confirmed(cases, make_alert(detector="card_opening", entity=bad_dealer))
        run = runner(cases, redis, clock)
        assert await run.run_once() == 1
        [failed] = await cases.followups.for_case(case.case_id)
        assert (failed.kind, failed.state, failed.attempts, failed.next_attempt_at) == (
            "credit_listing",
            "failed",
            1,
            None,
        )
        assert failed.last_error == f"ValidationError: id_number.id: {CHECK_DIGIT}"
        assert BAD_ID.encode() not in await redis.hget(FOLLOWUP_QUEUE.key(failed.followup_id), "doc")

        timeline = await cases.timeline(case.case_id)
        shown = [e for e in timeline if e.kind in ("follow_up", "action")]
        assert BAD_ID not in "".join(e.model_dump_json() for e in shown), "no ID number in the follow-up's story"
        assert [e.title for e in timeline if e.kind == "follow_up"] == [
            f"follow-up credit_listing: failed, needs an analyst (retry once fixed): {failed.last_error}"
        ]
        assert "followup.failed by system" in [e.title for e in shown]

        clock.now += timedelta(days=1)
        assert await run.run_once() == 0, "not retried by itself: it cannot pass"
        queued = await cases.followups.retry(failed.followup_id, actor="ana", now=clock.now)
        assert (queued.state, queued.attempts, queued.retries) == ("pending", 0, 1)
        with pytest.raises(WorkRefused, match="retry refused while pending"):
            await cases.followups.retry(failed.followup_id, actor="ana")
        assert await run.run_once() == 1, "retried at once"
        [again] = await cases.followups.for_case(case.case_id)
        assert (again.state, again.attempts, again.retries) == ("failed", 1, 1)
        with pytest.raises(FollowUpNotFound):
            await cases.followups.retry("0" * 32, actor="ana")
        history = [r.action for r in await cases.audit.about(f"case:{case.case_id}")]
        assert (history.count("followup.failed"), history.count("followup.retry")) == (2, 1)
        assert (await cases.audit.verify()).ok

    on_redis(redis_url, body)


async def state_of(redis: Redis, hold_id: str) -> str | None:
    hold = await HoldLedger.configured(redis, LIMITS).get(hold_id)
    return hold.state if hold is not None else None


async def run_chain(redis: Redis) -> None:
    """The known chain of tests/test_money_trail.py through the worker's stages (holds, the trail index)."""
    await run_stream(redis, STREAM)


def requests_of(raw: list[bytes]) -> set[tuple[str, str, int, int]]:
    """(kind, account, yuan, hop) of queued freeze requests."""
    return {(r.kind, r.account, r.amount_fen // 100, r.hop) for r in map(FreezeRequest.model_validate_json, raw)}


def test_a_confirmed_mule_case_freezes_its_held_transfers_and_requests_the_amounts_at_risk(redis_url: str) -> None:
    """B, the mule, paid C 600, E 300 at an ATM (held) and F 500 after its alert; C paid D 400."""
    mule = Entity(kind="account", value=B)

    async def body(cases: CaseService, redis: Redis, clock: Clock) -> None:
        await run_chain(redis)
        case = await confirmed(
            cases,
            make_alert(detector="mule_account", entity=mule, window_start=T0, window_end=T0 + timedelta(minutes=5)),
        )
        assert [(f.kind, f.state) for f in await cases.followups.for_case(case.case_id)] == [
            ("credit_listing", "pending"),
            ("inbound_holds", "pending"),
            ("money_trail", "pending"),
        ]

        packages = [
            ForwardingPackage.model_validate_json(v).root for v in await _outbox_records(redis, topics.FORWARDING)
        ]
        police = next(p for p in packages if isinstance(p, PoliceCase))
        assert [(h.hold_id, h.state) for h in police.holds] == [(hold_id_for("b-e"), "held")]
        assert police.money_trail is not None
        nodes = {n.account: (n.hop, n.received_fen // 100, n.retained_fen // 100) for n in police.money_trail.nodes}
        assert nodes == {B: (0, 0, 0), C: (1, 600, 200), F: (1, 500, 500), D: (2, 400, 400)}
        assert [(e.event_id, e.stopped) for e in police.money_trail.edges] == [
            ("b-c", False),
            ("b-e", True),
            ("b-f", False),
            ("c-d", False),
        ]

        while await runner(cases, redis, clock).run_once():
            pass
        assert await state_of(redis, hold_id_for("b-e")) == "frozen"
        assert requests_of(await _outbox_records(redis, topics.FREEZE_REQUESTS)) == {
            ("stop_payment", E, 300, 1),
            ("freeze", C, 200, 1),
            ("freeze", F, 500, 1),
            ("freeze", D, 400, 2),
        }
        trail = next(f for f in await cases.followups.for_case(case.case_id) if f.kind == "money_trail")
        assert (trail.state, trail.result["frozen_holds"]) == ("done", [hold_id_for("b-e")])

        timeline = await cases.timeline(case.case_id)
        kinds = {e.kind for e in timeline}
        assert {"alert", "action", "delivery", "follow_up", "hold", "trail"} <= kinds
        [trail_entry] = [e for e in timeline if e.kind == "trail"]
        assert (
            trail_entry.title == "money trail: 3 account(s) reached, 1400 yuan at risk, 1 hold(s) frozen, 4 request(s)"
        )
        holds = [e.title for e in timeline if e.kind == "hold"]
        assert holds[0].startswith("ATM transfer held: 300 yuan") and holds[0].endswith("(now frozen)")
        assert "hold.frozen by ana" in holds
        assert [e.title for e in timeline if e.kind == "follow_up"] == [
            "follow-up credit_listing: done, nothing listed: the account registry does not know who opened the account",
            "follow-up inbound_holds: done after 1 attempt(s)",
            "follow-up money_trail: done after 1 attempt(s)",
        ]

    on_redis(redis_url, body)


def test_a_confirmed_mule_case_freezes_the_victims_transfers_still_held_on_their_way_to_it(redis_url: str) -> None:
    """Two victims paid the mule at ATMs (held 24 h), the mule's holder paid it from their own account (not
    held), a third victim's hold was revoked by its sender: confirming the case freezes the two held ones."""
    mule = "6222000000000777"
    victims = [atm_transfer(f"v-{i}", T0 + timedelta(minutes=10 * i), payer=f"622200000000000{i}") for i in (1, 2, 3)]
    own = atm_transfer("own", T0, payee_name="张三", payer="6222000000000009")

    async def body(cases: CaseService, redis: Redis, clock: Clock) -> None:
        ledger = HoldLedger.configured(redis, LIMITS)
        await run_stream(redis, [*victims, own])
        await ledger.move(
            cases.audit,
            hold_id_for("v-3"),
            "revoked",
            actor="sender",
            by="counter B001",
            reason="the sender changed their mind",
            at=clock(),
        )
        case = await confirmed(
            cases,
            make_alert(
                detector="mule_account",
                entity=Entity(kind="account", value=mule),
                window_start=T0,
                window_end=T0 + timedelta(minutes=30),
            ),
        )
        while await runner(cases, redis, clock).run_once():
            pass
        states = await ledger.states([hold_id_for(t.event_id) for t in [*victims, own]])
        assert {h: s.state for h, s in states.items()} == {
            hold_id_for("v-1"): "frozen",
            hold_id_for("v-2"): "frozen",
            hold_id_for("v-3"): "revoked",
        }
        [inbound] = [f for f in await cases.followups.for_case(case.case_id) if f.kind == "inbound_holds"]
        assert inbound.state == "done"
        assert inbound.result == {"frozen_holds": [hold_id_for("v-1"), hold_id_for("v-2")], "refused": []}
        history = await cases.audit.about(f"hold:{hold_id_for('v-1')}")
        assert [(r.action, r.actor) for r in history][-1] == ("hold.frozen", "ana")
        assert history[-1].after is not None and "confirmed by the investigation" in str(history[-1].after)

        again = await performers(redis, cases.audit, THRESHOLDS, clock=clock)["inbound_holds"](case, [], inbound)
        assert again == inbound.result, "done twice changes nothing more, and says the same"
        assert [(r.action, r.actor) for r in await cases.audit.about(f"hold:{hold_id_for('v-1')}")][-1] == (
            "hold.frozen",
            "ana",
        ) and len(await cases.audit.about(f"hold:{hold_id_for('v-1')}")) == len(history)

    on_redis(redis_url, body)


EXPECTED_REQUESTS = {
    ("stop_payment", B2, 200, 1),
    ("stop_payment", E, 300, 2),
    ("freeze", C, 200, 2),
    ("freeze", F, 100, 2),
    ("freeze", D, 400, 3),
}


def test_a_fraud_report_event_naming_the_victims_account_traces_and_freezes(redis_url: str) -> None:
    victim_id = "11010519491231002X"
    report = FraudReport(
        event_id="fr-1",
        event_time=T0 + timedelta(hours=3),
        victim_id_number=victim_id,
        fraud_time=T0 + timedelta(minutes=2),
        source="110",
        victim_account=A,
    )
    anonymous = report.model_copy(update={"event_id": "fr-2", "victim_account": None})

    async def go() -> None:
        redis = Redis.from_url(redis_url)
        try:
            sink = await run_stream(redis, [*STREAM, anonymous, report], until=(T0 + timedelta(hours=12)).timestamp())
            for transfer in ("a-b2", "b-e"):
                assert await state_of(redis, hold_id_for(transfer)) == "frozen"
            raw = sink.on(topics.FREEZE_REQUESTS)
            assert requests_of(raw) == EXPECTED_REQUESTS
            assert len(raw) == len(EXPECTED_REQUESTS), "one request each"
            assert {r.requested_by for r in map(FreezeRequest.model_validate_json, raw)} == {"fraud-report:110"}
        finally:
            await redis.aclose()

    asyncio.run(go())
