"""Cases: grouping by entity and scenario, the lifecycle and its refused moves (pure), and the Redis
service: duplicate alerts fold into one case, every action audited, confirmation creates deliveries
and lists the number."""

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import TypeVar

import pytest
from redis.asyncio import Redis

from antifraud import blocklist
from antifraud.alerts.models import Alert, Entity
from antifraud.audit.service import AuditLog
from antifraud.case.followups import FollowUpRunner, performers
from antifraud.case.models import (
    TRANSITIONS,
    Case,
    IllegalTransition,
    allowed_actions,
    case_id_for,
    fold,
    open_case,
    scenario_of,
    transition,
)
from antifraud.case.service import CaseNotFound, CaseService
from antifraud.credit.service import CreditBlacklist
from antifraud.events.models import CardOpening
from antifraud.events.types import make_id_number
from antifraud.forwarding.models import ForwardingPackage, delivery_id_for
from antifraud.outbox import STREAM
from antifraud.state.accounts import OpenedCodec
from antifraud.state.keys import OPENED
from antifraud.thresholds import load_thresholds
from detectors.accounts import AccountInfo
from streams.topics import FORWARDING
from tests.conftest import AUDIT_KEYS
from tests.test_alert_model import START, make_alert

T = TypeVar("T")
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
PHONE = Entity(kind="phone", value="17012340001")
ACCOUNT = Entity(kind="account", value="6222000011112222")


def alert(detector: str = "fraud_number", entity: Entity = PHONE, minutes: int = 0, **changes: object) -> Alert:
    start = START + timedelta(minutes=minutes)
    return make_alert(
        detector=detector, entity=entity, window_start=start, window_end=start + timedelta(minutes=10), **changes
    )


def runner(cases: CaseService, redis: Redis) -> FollowUpRunner:
    """The worker's follow-up round over the test's Redis, at the tests' clock."""
    return FollowUpRunner(
        cases.followups, cases, performers(redis, cases.audit, load_thresholds(), clock=lambda: NOW), clock=lambda: NOW
    )


# -- pure -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("detector", "scenario"),
    [
        ("fraud_number", "fraud_number"),
        ("interception", "fraud_number"),
        ("card_opening", "bulk_opening"),
        ("card_trade", "bulk_opening"),
        ("sim_registration", "bulk_opening"),
        ("transfer_risk", "mule"),
        ("mule_account", "mule"),
        ("fake_base_station", "fake_base_station"),
        ("phishing_sms", "fake_base_station"),
        ("some_new_detector", "some_new_detector"),
    ],
)
def test_scenario_of_detector(detector: str, scenario: str) -> None:
    assert scenario_of(detector) == scenario


def test_case_id_follows_entity_and_scenario() -> None:
    assert case_id_for(PHONE, "fraud_number") == case_id_for(Entity(kind="phone", value=PHONE.value), "fraud_number")
    assert case_id_for(PHONE, "fraud_number") != case_id_for(PHONE, "fake_base_station")
    assert case_id_for(PHONE, "mule") != case_id_for(Entity(kind="account", value=PHONE.value), "mule")


def test_fold_summarises_the_alerts() -> None:
    first = open_case(alert(severity="medium", score=0.7), NOW)
    assert (first.status, first.version, first.alert_count, first.detectors) == ("new", 1, 1, ["fraud_number"])
    later = fold(first, alert("interception", minutes=60, severity="high", score=0.5), NOW)
    assert (later.version, later.alert_count, later.severity, later.score) == (2, 2, "high", 0.7)
    assert later.detectors == ["fraud_number", "interception"]
    assert (later.first_seen, later.last_seen) == (START, START + timedelta(minutes=70))
    with pytest.raises(ValueError, match="does not belong"):
        fold(first, alert("mule_account", entity=ACCOUNT), NOW)


def _walk(*actions: str) -> Case:
    case = open_case(alert(), NOW)
    for action in actions:
        case = transition(case, action, actor="ana", now=NOW)  # type: ignore[arg-type]
    return case


def test_lifecycle_happy_path() -> None:
    case = _walk("review")
    assert (case.status, case.assignee) == ("in_review", "ana"), "the reviewer takes an unassigned case"
    case = transition(case, "confirm", actor="ana", now=NOW, decision_reason="calls to 40 victims")
    assert (case.status, case.decided_by, case.decision_reason) == ("confirmed", "ana", "calls to 40 victims")
    assert transition(case, "delivered", actor="system", now=NOW).status == "forwarded"
    assert transition(case, "close", actor="ana", now=NOW).status == "closed"
    assert _walk("review", "dismiss", "close").status == "closed"


@pytest.mark.parametrize(
    ("path", "action"),
    [
        ((), "confirm"),
        ((), "dismiss"),
        ((), "close"),
        ((), "forward"),
        (("review",), "review"),
        (("review",), "close"),
        (("review",), "forward"),
        (("review", "confirm"), "dismiss"),
        (("review", "confirm"), "confirm"),
        (("review", "dismiss"), "confirm"),
        (("review", "dismiss"), "forward"),
        (("review", "dismiss", "close"), "review"),
        (("review", "dismiss", "close"), "assign"),
        (("review", "confirm", "close"), "close"),
    ],
)
def test_refused_transitions_name_case_state_and_action(path: tuple[str, ...], action: str) -> None:
    case = _walk(*path)
    with pytest.raises(IllegalTransition) as refused:
        transition(case, action, actor="ana", now=NOW)  # type: ignore[arg-type]
    assert (refused.value.case_id, refused.value.current, refused.value.action) == (case.case_id, case.status, action)
    assert case.case_id in str(refused.value) and case.status in str(refused.value) and action in str(refused.value)


def test_every_action_moves_between_known_states_only() -> None:
    statuses = set(Case.model_fields["status"].annotation.__args__)  # type: ignore[union-attr]
    for action, moves in TRANSITIONS.items():
        assert set(moves) <= statuses and set(moves.values()) <= statuses, action


def test_a_new_alert_reopens_a_dismissed_or_closed_case_only() -> None:
    assert fold(_walk("review", "dismiss"), alert(minutes=30), NOW).status == "new"
    assert fold(_walk("review", "dismiss", "close"), alert(minutes=30), NOW).status == "new"
    assert fold(_walk("review", "confirm"), alert(minutes=30), NOW).status == "confirmed"
    assert fold(_walk("review"), alert(minutes=30), NOW).status == "in_review"


# -- on Redis ---------------------------------------------------------------------------------------


def on_redis(redis_url: str, body: Callable[[CaseService, Redis], Awaitable[T]]) -> T:
    async def go() -> T:
        client = Redis.from_url(redis_url)
        try:
            return await body(CaseService(client, AuditLog(client, AUDIT_KEYS), clock=lambda: NOW), client)
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_duplicate_alerts_fold_into_one_case(redis_url: str) -> None:
    async def body(cases: CaseService, redis: Redis) -> None:
        first, second, other_scenario = alert(), alert("interception", minutes=30), alert("phishing_sms")
        opened = await cases.fold_alert(first)
        assert opened is not None and opened.alert_count == 1
        assert await cases.fold_alert(first) is None, "a replayed alert is folded once"
        folded = await cases.fold_alert(second)
        assert folded is not None and folded.case_id == opened.case_id and folded.alert_count == 2
        assert await cases.fold_alert(second) is None
        assert [a.alert_id for a in await cases.alerts(opened.case_id)] == [first.alert_id, second.alert_id]
        elsewhere = await cases.fold_alert(other_scenario)
        assert elsewhere is not None and elsewhere.case_id != opened.case_id, "same number, other scenario"
        assert await cases.counts() == {
            "new": 2,
            "in_review": 0,
            "confirmed": 0,
            "dismissed": 0,
            "forwarded": 0,
            "closed": 0,
        }
        history = await cases.audit.about(f"case:{opened.case_id}")
        assert [(r.actor, r.action) for r in history] == [("system", "case.alert")] * 2

    on_redis(redis_url, body)


def test_actions_are_audited_and_refusals_change_nothing(redis_url: str) -> None:
    async def body(cases: CaseService, redis: Redis) -> None:
        case = await cases.fold_alert(alert())
        assert case is not None
        with pytest.raises(IllegalTransition, match="confirm refused while new"):
            await cases.confirm(case.case_id, actor="ana", reason="x")
        assert (await cases.get(case.case_id)) == case, "a refused action writes nothing"
        await cases.assign(case.case_id, actor="lead", assignee="bo")
        reviewed = await cases.review(case.case_id, actor="bo")
        note = await cases.add_note(case.case_id, actor="bo", text="called the victim back")
        dismissed = await cases.dismiss(case.case_id, actor="bo", reason="a courier's calls")
        assert (reviewed.assignee, dismissed.status, dismissed.decision_reason) == (
            "bo",
            "dismissed",
            "a courier's calls",
        )
        assert await cases.notes(case.case_id) == [note]
        history = await cases.audit.about(f"case:{case.case_id}")
        assert [(r.actor, r.action) for r in history] == [
            ("system", "case.alert"),
            ("lead", "case.assign"),
            ("bo", "case.review"),
            ("bo", "case.note"),
            ("bo", "case.dismiss"),
        ]
        assert history[-1].before is not None and history[-1].before["status"] == "in_review"
        assert history[-1].after is not None and history[-1].after["status"] == "dismissed"
        assert (await cases.audit.verify()).ok
        with pytest.raises(CaseNotFound):
            await cases.review("0" * 32, actor="bo")
        kinds = [e.kind for e in await cases.timeline(case.case_id)]
        assert kinds == ["alert", "action", "action", "action", "action"]

    on_redis(redis_url, body)


def test_confirming_creates_deliveries_lists_the_number_and_queues_packages(redis_url: str) -> None:
    async def body(cases: CaseService, redis: Redis) -> None:
        case = await cases.fold_alert(alert())
        assert case is not None
        await cases.review(case.case_id, actor="ana")
        confirmed = await cases.confirm(case.case_id, actor="ana", reason="short calls to 40 numbers")
        deliveries = await cases.deliveries.for_case(case.case_id)
        assert sorted(d.target for d in deliveries) == ["carrier", "police"]
        assert {d.delivery_id for d in deliveries} == {
            delivery_id_for(case.case_id, t, confirmed.version) for t in ("police", "carrier")
        }
        assert all(d.state == "pending" for d in deliveries)
        assert await blocklist.lookup(redis, [PHONE.value]) == {}, "listing is the worker's follow-up"
        assert [(f.kind, f.state) for f in await cases.followups.for_case(case.case_id)] == [("blocklist", "pending")]
        assert await runner(cases, redis).run_once() == 1
        listed = await blocklist.lookup(redis, [PHONE.value])
        assert listed[PHONE.value].source == f"case:{case.case_id}"
        assert [(f.kind, f.state) for f in await cases.followups.for_case(case.case_id)] == [("blocklist", "done")]

        queued = await redis.xrange(STREAM)
        assert [f[b"topic"].decode() for _, f in queued] == [FORWARDING, FORWARDING]
        packages = [ForwardingPackage.model_validate_json(f[b"value"]).root for _, f in queued]
        assert {p.package_id for p in packages} == {d.delivery_id for d in deliveries}
        police = next(p for p in packages if p.kind == "police_case")
        assert [a.alert_id for a in police.alerts] == [a.alert_id for a in await cases.alerts(case.case_id)]  # type: ignore[union-attr]

        again = await cases.forward(case.case_id, actor="ana")
        assert {d.delivery_id for d in again} == {d.delivery_id for d in deliveries}, "same version: not sent twice"
        assert len(await redis.xrange(STREAM)) == 2
        with pytest.raises(ValueError, match="cannot go to bank"):
            await cases.forward(case.case_id, actor="ana", targets=["bank"])

        await cases.add_note(case.case_id, actor="ana", text="victim statement attached")
        resent = await cases.forward(case.case_id, actor="ana", targets=["police"])
        assert [d.target for d in resent] == ["police"] and resent[0].delivery_id not in {
            d.delivery_id for d in deliveries
        }
        assert len(await cases.deliveries.for_case(case.case_id)) == 3

    on_redis(redis_url, body)


def test_find_filters(redis_url: str) -> None:
    async def body(cases: CaseService, redis: Redis) -> None:
        number = await cases.fold_alert(alert(severity="medium"))
        mule = await cases.fold_alert(alert("mule_account", entity=ACCOUNT, minutes=600, severity="high"))
        assert number is not None and mule is not None
        await cases.review(mule.case_id, actor="ana")
        ids = lambda found: [c.case_id for c in found]  # noqa: E731
        assert ids(await cases.find()) == [mule.case_id, number.case_id], "latest activity first"
        assert ids(await cases.find(status="in_review")) == [mule.case_id]
        assert ids(await cases.find(detector="fraud_number")) == [number.case_id]
        assert ids(await cases.find(severity="high")) == [mule.case_id]
        assert ids(await cases.find(severity="low")) == [mule.case_id, number.case_id]
        assert ids(await cases.find(since=START + timedelta(minutes=300))) == [mule.case_id]
        assert ids(await cases.find(until=START + timedelta(minutes=300))) == [number.case_id]
        assert ids(await cases.find(limit=1)) == [mule.case_id]

    on_redis(redis_url, body)


def info_of(opening: CardOpening) -> AccountInfo:
    return AccountInfo(
        opening.event_time.timestamp(), opening.id_number, opening.bank, opening.branch_id, opening.event_id
    )


def test_confirming_lists_the_responsible_person_on_the_credit_blacklist(redis_url: str) -> None:
    """A bulk-opening case lists its ID number; a mule case the account's holder when the registry knows
    them; a number's case nobody (no person behind it is known)."""
    holder = make_id_number("320585", "19900101", 7)
    opening = CardOpening(
        event_id="open-1",
        event_time=START,
        bank="icbc",
        id_number=holder,
        account=ACCOUNT.value,
        branch_id="B001",
        channel="counter",
    )

    async def body(plain: CaseService, redis: Redis) -> None:
        limits = load_thresholds()
        blacklist = CreditBlacklist(redis, plain.audit, limits.credit_blacklist)
        await redis.zadd(OPENED.key(opening.account), {OpenedCodec().encode(info_of(opening)): START.timestamp()})
        cases = plain
        dealer = Entity(kind="id_number", value=make_id_number("320585", "19850505", 3))
        for entity, detector in ((dealer, "card_opening"), (ACCOUNT, "mule_account"), (PHONE, "fraud_number")):
            case = await cases.fold_alert(alert(detector, entity=entity))
            assert case is not None
            await cases.review(case.case_id, actor="ana")
            await cases.confirm(case.case_id, actor="ana", reason="confirmed by the investigation")
        while await runner(cases, redis).run_once():
            pass
        by_dealer = await blacklist.find("id_number", dealer.value, now=NOW)
        by_holder = await blacklist.find("id_number", holder, now=NOW)
        assert [(x.case_id, x.accounts) for x in by_dealer] == [(case_id_for(dealer, "bulk_opening"), ())]
        assert [(x.case_id, x.accounts) for x in by_holder] == [(case_id_for(ACCOUNT, "mule"), (ACCOUNT.value,))]
        assert len(await blacklist.latest(10, now=NOW)) == 2

    on_redis(redis_url, body)


async def _calls(redis: Redis) -> Counter[str]:
    """Commands the redis-server ran so far, by name (``INFO commandstats``; the INFO itself left out)."""
    stats = await redis.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): s["calls"] for name, s in stats.items() if name != "cmdstat_info"})


def test_a_batch_folds_each_case_in_one_transaction_whatever_its_alerts(redis_url: str) -> None:
    """A batch costs one audited transaction per case it touches, and the same commands for 30 alerts of a
    case as for one; the case is what folding the alerts one by one leaves, each alert folded once."""
    other = Entity(kind="phone", value="17012340002")
    storm = [alert(minutes=10 * i) for i in range(30)]

    async def body(cases: CaseService, redis: Redis) -> None:
        before = await _calls(redis)
        batch = [storm[0], storm[1], storm[0], alert("mule_account", entity=ACCOUNT), storm[2]]
        assert await cases.fold_alerts(batch) == 4, "the batch's duplicate is folded once"
        first = await _calls(redis) - before
        assert (first["watch"], first["exec"]) == (2, 2), "one transaction per case, not per alert"

        before = await _calls(redis)
        assert await cases.fold_alerts([alert(entity=other)]) == 1
        one = await _calls(redis) - before
        before = await _calls(redis)
        assert await cases.fold_alerts([alert(entity=other, minutes=10 * i) for i in range(1, 30)]) == 29
        many = await _calls(redis) - before
        assert many == one, "29 alerts of one case cost the commands of one"

        assert await cases.fold_alerts(storm[:3]) == 0, "a replayed batch folds nothing"
        assert await cases.fold_alerts(storm) == 27, "a batch of old and new alerts folds the new ones"
        case = await cases.get(case_id_for(PHONE, "fraud_number"))
        one_by_one = open_case(storm[0], NOW)
        for a in storm[1:]:
            one_by_one = fold(one_by_one, a, NOW)
        assert case == one_by_one and (case.version, case.alert_count) == (30, 30)
        assert [a.alert_id for a in await cases.alerts(case.case_id)] == [a.alert_id for a in storm]

        history = await cases.audit.about(f"case:{case.case_id}")
        assert [(r.action, r.before and r.before["version"], r.after and r.after["version"]) for r in history] == [
            ("case.alert", None, 3),
            ("case.alert", 3, 30),
        ], "one audit record per case and batch"
        assert [[a["alert_id"] for a in r.after["alerts"]] for r in history if r.after] == [
            [a.alert_id for a in storm[:3]],
            [a.alert_id for a in storm[3:]],
        ], "each record names the alerts it folded"
        assert (await cases.audit.verify()).ok

    on_redis(redis_url, body)


def test_cases_ended_past_the_retention_expire_with_their_work_and_stay_in_the_audit(redis_url: str) -> None:
    """A confirmed-then-closed case (deliveries, follow-ups, a note) and a dismissed one go; an open one and one
    reopened by a new alert stay; the audit trail records each expiry and still verifies."""
    dismissed_alert, reopened_alert = alert("phishing_sms"), alert("mule_account", entity=ACCOUNT)

    async def body(cases: CaseService, redis: Redis) -> None:
        closed = await cases.fold_alert(alert())
        dismissed = await cases.fold_alert(dismissed_alert)
        open_ = await cases.fold_alert(alert("sim_registration"))
        reopened = await cases.fold_alert(reopened_alert)
        assert closed and dismissed and open_ and reopened
        await cases.review(closed.case_id, actor="ana")
        await cases.confirm(closed.case_id, actor="ana", reason="short calls to 40 numbers")
        await cases.add_note(closed.case_id, actor="ana", text="victim statement attached")
        await cases.close(closed.case_id, actor="ana")
        for case in (dismissed, reopened):
            await cases.review(case.case_id, actor="ana")
            await cases.dismiss(case.case_id, actor="ana", reason="a relative's transfers")
        await cases.fold_alert(alert("mule_account", entity=ACCOUNT, minutes=30))  # reopens it
        work = [*await cases.deliveries.ids_of(closed.case_id), *await cases.followups.ids_of(closed.case_id)]
        assert work

        assert await cases.expire_ended(NOW + timedelta(days=1)) == 2
        for gone in (closed, dismissed):
            with pytest.raises(CaseNotFound):
                await cases.get(gone.case_id)
            assert await cases.alerts(gone.case_id) == []
        assert [k for k in await redis.keys("*") if closed.case_id.encode() in k and not k.startswith(b"audit:")] == []
        assert not await redis.exists(
            *(f"delivery:{i}".encode() for i in work), *(f"followup:{i}".encode() for i in work)
        )
        assert {c.case_id for c in await cases.find(limit=100)} == {open_.case_id, reopened.case_id}
        assert sum((await cases.counts()).values()) == 2
        expired = [r for r in await cases.audit.records() if r.action == "case.expired"]
        assert sorted(r.subject for r in expired) == sorted(f"case:{c.case_id}" for c in (closed, dismissed))
        assert all(r.before and r.after is None for r in expired)
        assert (await cases.audit.verify()).ok
        assert await cases.expire_ended(NOW + timedelta(days=1)) == 0

    on_redis(redis_url, body)


def test_the_console_offers_the_actions_the_status_allows() -> None:
    assert allowed_actions("new", forwarded=False) == ["review", "assign", "note"]
    assert allowed_actions("in_review", forwarded=False) == ["confirm", "dismiss", "assign", "note"]
    assert allowed_actions("confirmed", forwarded=False) == ["forward", "close", "assign", "note"]
    assert allowed_actions("confirmed", forwarded=True) == ["close", "assign", "note"]
    assert allowed_actions("closed", forwarded=True) == ["note"]
