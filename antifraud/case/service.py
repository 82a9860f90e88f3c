"""Cases in Redis: folding alerts into them, the analysts' actions, the evidence timeline.

Keys (Redis with AOF keeps them across restarts; see ``docs/forwarding.md``):

- ``case:{case_id}``: the case document (JSON), rewritten with each new version;
- ``case:{case_id}:alerts``: hash ``alert_id`` -> alert JSON (a replayed alert is not folded twice);
- ``case:{case_id}:notes``: list of note JSON, oldest first;
- ``cases:seen``: sorted set ``case_id`` by the latest event time of its alerts (listing, since);
- ``cases:status``: hash ``case_id`` -> status (counts by state);
- ``cases:escalated``: sorted set ``case_id`` by when a teller last escalated it (the police's live feed);
- ``cases:ended``: sorted set ``case_id`` by when it was closed or dismissed: the worker's sweep expires
  those ended longer ago than ``ANTIFRAUD_CASE_RETAIN_DAYS`` (:meth:`CaseService.expire_ended`), the case
  with its alerts, notes, deliveries and follow-ups; its audit records stay, and go with the audit's own
  retention into the archive, where they still verify.

Every change, the worker folding alerts as well as an analyst's action, is one
:meth:`AuditLog.transact`: the case, its indexes, the deliveries and follow-ups it
creates and the audit record land together or not at all, and a change that
raced another one is decided again on the new state. What a confirmation sets in
motion outside the case (block list, credit blacklist, money trail) is a
follow-up the worker performs (``antifraud/case/followups.py``).
"""

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from antifraud.alerts.models import Alert, Entity, Severity
from antifraud.audit.models import AuditRecord, Change
from antifraud.audit.service import AuditLog
from antifraud.case.followups import FollowUp, FollowUpQueue, planned, trail_request
from antifraud.case.models import (
    SCENARIO_BY_DETECTOR,
    SEVERITY_RANK,
    STATUSES,
    Action,
    Case,
    CaseStatus,
    Note,
    TimelineEntry,
    UnreachableTarget,
    audit_subject,
    case_id_for,
    fold_all,
    require_allowed,
    scenario_of,
    transition,
)
from antifraud.clock import utcnow
from antifraud.forwarding.models import CaseEvidence, Delivery, Target, targets_for
from antifraud.forwarding.service import DeliveryQueue
from antifraud.holds.models import Hold, stable_id
from antifraud.holds.reports import follow, view_of
from antifraud.holds.service import HoldLedger
from antifraud.privacy import mask_account
from antifraud.refusals import Unknown
from antifraud.state import keys as families
from antifraud.state.money_trail import TransferIndex
from antifraud.state.replies import texts
from antifraud.thresholds import HoldThresholds, load_thresholds

SEEN = families.CASES_SEEN.key()
STATUS = families.CASES_STATUS.key()
ESCALATED = families.CASES_ESCALATED.key()
ENDED = families.CASES_ENDED.key()
ENDED_STATUSES = ("closed", "dismissed")
SYSTEM = "system"
"""The actor of the worker's own changes: folding alerts, a delivered package moving its case."""


def case_key(case_id: str) -> str:
    return families.CASE.key(case_id)


def _alerts_key(case_id: str) -> str:
    return families.CASE_ALERTS.key(case_id)


def _notes_key(case_id: str) -> str:
    return families.CASE_NOTES.key(case_id)


def _case_of(alert: Alert) -> str:
    return case_id_for(alert.entity, scenario_of(alert.detector))


class CaseNotFound(Unknown, LookupError):
    def __init__(self, case_id: str) -> None:
        super().__init__("case_unknown", f"no case {case_id}", case=case_id)
        self.case_id = case_id


class _NotDue(Exception):
    """A case the expiry sweep found reopened, or ended again later, by the time it looked."""


class _AlreadyFolded(Exception):
    """Stops a fold's decision without writing: its case has every one of its alerts already."""


def _summary(case: Case) -> dict[str, Any]:
    """What an audit record keeps of a case: its state, not its evidence (that is in the case's keys)."""
    return {"status": case.status, "version": case.version, "assignee": case.assignee, "alert_count": case.alert_count}


def _write_case(pipe: Pipeline, case: Case) -> None:
    pipe.set(case_key(case.case_id), case.model_dump_json())
    pipe.hset(STATUS, case.case_id, case.status)
    pipe.zadd(SEEN, {case.case_id: case.last_seen.timestamp()})
    if case.status in ENDED_STATUSES:
        pipe.zadd(ENDED, {case.case_id: case.updated_at.timestamp()})
    else:
        pipe.zrem(ENDED, case.case_id)


async def _load(redis: Redis | Pipeline, case_id: str) -> Case:
    raw = await redis.get(case_key(case_id))
    if raw is None:
        raise CaseNotFound(case_id)
    return Case.model_validate_json(raw)


def _no_writes(pipe: Pipeline) -> None:
    """An action whose only write is the case document."""


@dataclass
class _Decision:
    """What an analyst's action decided: the case after it, what its audit record adds, other writes."""

    case: Case
    record: dict[str, Any] = field(default_factory=dict)
    write: Callable[[Pipeline], object] = _no_writes
    event_id: str | None = None
    """Set when a repeat of the action must change nothing (a double-clicked escalation)."""


Decide = Callable[[Pipeline, Case], Awaitable[_Decision]]


class CaseService:
    def __init__(
        self,
        redis: Redis,
        audit: AuditLog,
        *,
        clock: Callable[[], datetime] = utcnow,
        holds: HoldThresholds | None = None,
    ) -> None:
        self.redis = redis
        self.audit = audit
        self.deliveries = DeliveryQueue(redis, audit)
        self.followups = FollowUpQueue(redis, audit)
        self.clock = clock
        self.holds = holds or load_thresholds().holds
        """The hold ledger's and the money trail's limits: a case's evidence names its holds and trail."""
        self.ledger = HoldLedger.configured(redis, self.holds)
        self.index = TransferIndex.configured(redis, self.holds.trail)

    # -- the worker ------------------------------------------------------------------------------

    async def fold_alert(self, alert: Alert) -> Case | None:
        """Add ``alert`` to its case, opening it; None if the alert was folded before (a replay)."""
        folded = await self._fold_case(_case_of(alert), [alert])
        return folded[0] if folded else None

    async def fold_alerts(self, alerts: Sequence[Alert]) -> int:
        """Fold a batch of alerts into their cases; returns how many were new (a replayed alert is folded once).

        One audited transaction per case the batch touches, whatever its number of alerts: an alert
        storm on an entity costs the same few round trips (WATCH, reads, EXEC) as a single alert.
        """
        by_case: dict[str, dict[str, Alert]] = {}
        for alert in alerts:
            by_case.setdefault(_case_of(alert), {})[alert.alert_id] = alert
        new = 0
        for case_id, distinct in by_case.items():
            folded = await self._fold_case(case_id, list(distinct.values()))
            new += folded[1] if folded else 0
        return new

    async def _fold_case(self, case_id: str, alerts: Sequence[Alert]) -> tuple[Case, int] | None:
        """Fold ``alerts`` (distinct ids, all of case ``case_id``) in one audited transaction: the case, the
        alerts it does not have yet and one audit record naming them land together. Returns the case after
        and how many alerts were new, or None if it had every one (a replay)."""
        decided: list[tuple[Case, int]] = []

        async def decide(pipe: Pipeline) -> Change:
            known = await pipe.hmget(_alerts_key(case_id), [a.alert_id for a in alerts])
            fresh = [a for a, stored in zip(alerts, known, strict=True) if stored is None]
            if not fresh:
                raise _AlreadyFolded
            raw = await pipe.get(case_key(case_id))
            before = Case.model_validate_json(raw) if raw is not None else None
            after = fold_all(before, fresh, self.clock())
            decided[:] = [(after, len(fresh))]

            def write(tx: Pipeline) -> None:
                _write_case(tx, after)
                tx.hset(_alerts_key(case_id), mapping={a.alert_id: a.model_dump_json() for a in fresh})

            # Each alert is folded once, so the first new one names this change for good.
            return Change(
                before=_summary(before) if before else None,
                after={**_summary(after), "alerts": [{"alert_id": a.alert_id, "detector": a.detector} for a in fresh]},
                write=write,
                event_id=f"case-alert:{fresh[0].alert_id}",
            )

        try:
            record = await self.audit.transact(
                actor=SYSTEM,
                action="case.alert",
                subject=audit_subject(case_id),
                watch=[case_key(case_id), _alerts_key(case_id)],
                decide=decide,
            )
        except _AlreadyFolded:
            return None
        return decided[0] if record is not None else None

    async def delivered(self, delivery: Delivery) -> None:
        """Store a delivered delivery; the first one delivered moves a confirmed case to forwarded."""

        async def decide(pipe: Pipeline) -> Change:
            case = await _load(pipe, delivery.case_id)
            moved = (
                transition(case, "delivered", actor=SYSTEM, now=self.clock()) if case.status == "confirmed" else case
            )

            def write(tx: Pipeline) -> None:
                self.deliveries.store(tx, delivery)
                if moved is not case:
                    _write_case(tx, moved)

            about = {"delivery_id": delivery.delivery_id, "target": delivery.target}
            return Change(
                before={**_summary(case), **about},
                after={**_summary(moved), **about, "state": "delivered"},
                write=write,
                event_id=f"delivered:{delivery.delivery_id}",
            )

        await self.audit.transact(
            actor=SYSTEM,
            action="delivery.delivered",
            subject=audit_subject(delivery.case_id),
            watch=[case_key(delivery.case_id)],
            decide=decide,
        )

    # -- analysts --------------------------------------------------------------------------------

    async def _act(self, case_id: str, actor: str, action: Action, decide_action: Decide) -> Case:
        """One analyst action as an audited transaction (the action refuses by raising)."""
        decided: list[Case] = []

        async def decide(pipe: Pipeline) -> Change:
            case = await _load(pipe, case_id)
            decision = await decide_action(pipe, case)
            decided[:] = [decision.case]

            def write(tx: Pipeline) -> None:
                if decision.case is not case:
                    _write_case(tx, decision.case)
                decision.write(tx)

            return Change(
                before=_summary(case),
                after={**_summary(decision.case), **decision.record},
                write=write,
                event_id=decision.event_id,
            )

        record = await self.audit.transact(
            actor=actor,
            action=f"case.{action}",
            subject=audit_subject(case_id),
            watch=[case_key(case_id)],
            decide=decide,
        )
        return decided[0] if record is not None else await self.get(case_id)  # a repeat: the case as it is

    async def _move(
        self, case_id: str, actor: str, action: Action, record: dict[str, Any] | None = None, **update: object
    ) -> Case:
        async def decide(pipe: Pipeline, case: Case) -> _Decision:
            return _Decision(transition(case, action, actor=actor, now=self.clock(), **update), record or {})

        return await self._act(case_id, actor, action, decide)

    async def assign(self, case_id: str, *, actor: str, assignee: str) -> Case:
        return await self._move(case_id, actor, "assign", assignee=assignee)

    async def review(self, case_id: str, *, actor: str) -> Case:
        """Start the review; an unassigned case is assigned to the reviewer."""
        return await self._move(case_id, actor, "review")

    async def dismiss(self, case_id: str, *, actor: str, reason: str) -> Case:
        return await self._move(case_id, actor, "dismiss", {"reason": reason}, decision_reason=reason)

    async def close(self, case_id: str, *, actor: str) -> Case:
        return await self._move(case_id, actor, "close")

    async def add_note(self, case_id: str, *, actor: str, text: str) -> Note:
        note = Note(author=actor, at=self.clock(), text=text)

        async def decide(pipe: Pipeline, case: Case) -> _Decision:
            return _Decision(
                transition(case, "note", actor=actor, now=note.at),
                {"note": note.text},
                lambda tx: tx.rpush(_notes_key(case_id), note.model_dump_json()),
            )

        await self._act(case_id, actor, "note", decide)
        return note

    async def escalate(self, alert: Alert, *, actor: str, place: str, note: str) -> Case:
        """A teller escalates a live warning to the police: the customer is at the counter now.

        1. Fold the warning's alert (nothing to do when the worker already has; the teller may be quicker).
        2. One audited transaction: the case marked escalated from ``place`` (reopened if it was dismissed
           or closed) and the teller's note added to it. The same teller escalating the same warning in the
           same words is a repeat (a double click, a browser's retry): it changes nothing.
        """
        await self.fold_alert(alert)
        case_id = _case_of(alert)
        note_ = Note(author=actor, at=self.clock(), text=f"escalated from {place}: {note}")

        async def decide(pipe: Pipeline, case: Case) -> _Decision:
            escalated = transition(
                case, "escalate", actor=actor, now=note_.at, escalated_at=note_.at, escalated_from=place
            )

            def write(tx: Pipeline) -> None:
                tx.rpush(_notes_key(case_id), note_.model_dump_json())
                tx.zadd(ESCALATED, {case_id: note_.at.timestamp()})

            return _Decision(
                escalated,
                {"place": place, "alert_id": alert.alert_id, "note": note},
                write,
                event_id=stable_id("case-escalate", alert.alert_id, actor, note),
            )

        return await self._act(case_id, actor, "escalate", decide)

    async def confirm(self, case_id: str, *, actor: str, reason: str) -> Case:
        """Confirm the case as fraud.

        1. Read the evidence outside the case (its accounts' holds, the money trail from its account).
        2. One transaction: the case confirmed; a delivery to each of its targets (police; the
           carrier for a number; the bank for an account), its package queued for the forwarding
           topic; its follow-ups (block list, credit blacklist, money trail) queued for the
           worker; the audit record.
        3. The worker performs the follow-ups (``antifraud/case/followups.py``): a crash after 2
           leaves them queued, never a confirmed case that is not acted on.
        """

        async def decide(pipe: Pipeline, case: Case) -> _Decision:
            after = transition(case, "confirm", actor=actor, now=self.clock(), decision_reason=reason)
            deliveries = await self._plan(pipe, after, targets_for(after.entity), actor)
            followups = planned(after, actor=actor, now=self.clock())

            def write(tx: Pipeline) -> None:
                deliveries.write(tx)
                for followup in followups:
                    self.followups.store(tx, followup)

            return _Decision(
                after,
                {"reason": reason, "deliveries": deliveries.ids, "follow_ups": [f.kind for f in followups]},
                write,
            )

        return await self._act(case_id, actor, "confirm", decide)

    async def forward(self, case_id: str, *, actor: str, targets: Sequence[Target] = ()) -> list[Delivery]:
        """Send this version of a confirmed case to ``targets`` (default: all of its targets); returns the
        deliveries of this version. A target that has a delivery of this version already is not sent
        again (forward again after the case changed: new alerts, notes); a failed delivery is retried
        with :meth:`DeliveryQueue.retry` instead."""

        async def decide(pipe: Pipeline, case: Case) -> _Decision:
            require_allowed(case, "forward")
            possible = targets_for(case.entity)
            wanted = list(dict.fromkeys(targets)) or possible
            refused = [t for t in wanted if t not in possible]
            if refused:
                raise UnreachableTarget(case_id, case.entity.kind, refused, possible)
            planned = await self._plan(pipe, case, wanted, actor)
            return _Decision(case, {"targets": wanted, "deliveries": planned.ids}, planned.write)

        case = await self._act(case_id, actor, "forward", decide)
        return [d for d in await self.deliveries.for_case(case_id) if d.case_version == case.version]

    async def _plan(self, pipe: Pipeline, case: Case, targets: Sequence[Target], actor: str) -> "_Planned":
        alerts = await self._alerts(pipe, case.case_id)
        notes = await self._notes(pipe, case.case_id)
        return _Planned(
            self.deliveries,
            await self.deliveries.plan(
                pipe,
                case,
                targets,
                evidence=CaseEvidence(alerts=alerts, notes=notes, **await self._money(case)),
                actor=actor,
                now=self.clock(),
            ),
        )

    async def _money(self, case: Case) -> dict[str, Any]:
        """An account case's holds and money trail (reads only; none for other entities): the trail is
        what the money-trail follow-up acts on, traced from the account over the same window."""
        if case.entity.kind != "account":
            return {}
        request = trail_request(case, self.holds.trail)
        trail, _ = await follow(self.ledger, self.index, request, self.holds.trail)
        return {
            "holds": await self.ledger.of_accounts([case.entity.value]),
            "money_trail": view_of(case.entity.value, request.start, request.end, trail),
        }

    # -- reading ---------------------------------------------------------------------------------

    async def expire_ended(self, before: datetime, limit: int = 100) -> int:
        """Delete up to ``limit`` cases closed or dismissed before ``before``, each in one audited transaction
        (``case.expired``: what it was, for the trail); a case reopened meanwhile stays. How many went."""
        gone = 0
        for case_id in texts(await self.redis.zrangebyscore(ENDED, "-inf", before.timestamp(), start=0, num=limit)):
            deliveries, followups = await self.deliveries.ids_of(case_id), await self.followups.ids_of(case_id)

            async def decide(
                pipe: Pipeline,
                case_id: str = case_id,
                deliveries: list[str] = deliveries,
                followups: list[str] = followups,
            ) -> Change:
                case = await _load(pipe, case_id)
                if case.status not in ENDED_STATUSES or case.updated_at >= before:
                    raise _NotDue(case_id)

                def write(tx: Pipeline) -> None:
                    tx.delete(case_key(case_id), _alerts_key(case_id), _notes_key(case_id))
                    tx.hdel(STATUS, case_id)
                    for index in (SEEN, ESCALATED, ENDED):
                        tx.zrem(index, case_id)
                    self.deliveries.drop(tx, case_id, deliveries)
                    self.followups.drop(tx, case_id, followups)

                return Change(
                    before=_summary(case), after=None, write=write, event_id=f"case-expired:{case_id}:{case.version}"
                )

            try:
                await self.audit.transact(
                    actor=SYSTEM,
                    action="case.expired",
                    subject=audit_subject(case_id),
                    watch=[case_key(case_id)],
                    decide=decide,
                )
                gone += 1
            except _NotDue:
                pass  # reopened or ended again since: the index already says so
            except CaseNotFound:
                await self.redis.zrem(ENDED, case_id)
        return gone

    async def get(self, case_id: str) -> Case:
        return await _load(self.redis, case_id)

    @staticmethod
    async def _alerts(redis: Redis | Pipeline, case_id: str) -> list[Alert]:
        raw = await redis.hvals(_alerts_key(case_id))
        return sorted((Alert.model_validate_json(r) for r in raw), key=lambda a: (a.window_start, a.alert_id))

    @staticmethod
    async def _notes(redis: Redis | Pipeline, case_id: str) -> list[Note]:
        return [Note.model_validate_json(r) for r in await redis.lrange(_notes_key(case_id), 0, -1)]

    async def alerts(self, case_id: str) -> list[Alert]:
        return await self._alerts(self.redis, case_id)

    async def notes(self, case_id: str) -> list[Note]:
        return await self._notes(self.redis, case_id)

    async def find(
        self,
        *,
        status: CaseStatus | None = None,
        detector: str | None = None,
        severity: Severity | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        escalated: bool | None = None,
        entity: Entity | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Case]:
        """Cases whose alerts' event times reach into [since, until], latest activity first;
        ``severity`` keeps cases at least that severe, ``detector`` those with an alert of it,
        ``escalated`` those a teller escalated (or not), ``entity`` that number's, account's or ID's; ``offset``
        of them skipped (a page)."""
        if entity is not None:
            mine = [c for c in await self.of_entity(entity) if since is None or c.last_seen >= since]
            return [c for c in mine if _matches(c, status, detector, severity, until, escalated)][
                offset : offset + limit
            ]
        ids = await self.redis.zrevrangebyscore(SEEN, "+inf", since.timestamp() if since else "-inf")
        found: list[Case] = []
        for start in range(0, len(ids), 500):
            for raw in await self.redis.mget([case_key(i) for i in texts(ids[start : start + 500])]):
                case = Case.model_validate_json(raw) if raw is not None else None
                if case is not None and _matches(case, status, detector, severity, until, escalated):
                    found.append(case)
                    if len(found) == offset + limit:
                        return found[offset:]
        return found[offset:]

    async def of_entity(self, entity: Entity) -> list[Case]:
        """The cases of one number, account or ID number, one per scenario it has a case in (a case's id
        follows from its entity and scenario, so this reads no index), latest activity first."""
        ids = [case_id_for(entity, scenario) for scenario in sorted(set(SCENARIO_BY_DETECTOR.values()))]
        found = [Case.model_validate_json(raw) for raw in await self.redis.mget([case_key(i) for i in ids]) if raw]
        return sorted(found, key=lambda c: c.last_seen, reverse=True)

    async def escalated_since(self, since: datetime, limit: int = 100) -> list[Case]:
        """Cases a teller escalated after ``since``, latest escalation first: what the console polls for."""
        ids = await self.redis.zrevrangebyscore(ESCALATED, "+inf", f"({since.timestamp()}", start=0, num=limit)
        if not ids:
            return []
        return [
            Case.model_validate_json(raw)
            for raw in await self.redis.mget([case_key(i) for i in texts(ids)])
            if raw is not None
        ]

    async def decided(self, case: Case) -> bool | None:
        """An analyst's decision on ``case``: True confirmed (or forwarded, or closed after a confirmation),
        False dismissed (or closed after a dismissal), None still open. A closed case's decision is its last
        confirm or dismiss on record."""
        if case.status in ("confirmed", "forwarded", "dismissed"):
            return case.status != "dismissed"
        if case.status != "closed":
            return None
        moves = [r.action for r in await self.audit.about(audit_subject(case.case_id))]
        last = [m for m in moves if m in ("case.confirm", "case.dismiss")][-1:]
        return last[0] == "case.confirm" if last else None

    async def outcomes(self, scenario: str) -> dict[Entity, bool]:
        """Analysts' decisions on the cases of one scenario, as labels (:meth:`decided`); cases still open
        say nothing."""
        labels: dict[Entity, bool] = {}
        for case in await self.find(limit=1 << 30):
            if case.scenario == scenario and (decision := await self.decided(case)) is not None:
                labels[case.entity] = decision
        return labels

    async def counts(self) -> dict[str, int]:
        """Cases by state, every state present (for the ``antifraud_cases`` gauge)."""
        by_state = Counter(texts(await self.redis.hvals(STATUS)))
        return {state: by_state.get(state, 0) for state in STATUSES}

    async def timeline(self, case_id: str) -> list[TimelineEntry]:
        """The case's evidence in time order: its alerts (at their event time), the actions on it
        (audit records: decisions, notes, delivery outcomes, follow-ups done), its deliveries and
        follow-ups as created (pending or done, attempts, last error), the holds of its account with
        their moves, and the money trail its confirmation traced."""
        case = await self.get(case_id)
        entries = [_alert_entry(a) for a in await self.alerts(case_id)]
        entries += [
            _action_entry(r) for r in await self.audit.about(audit_subject(case_id)) if r.action != "case.alert"
        ]
        entries += [_delivery_entry(d) for d in await self.deliveries.for_case(case_id)]
        followups = await self.followups.for_case(case_id)
        entries += [_followup_entry(f) for f in followups]
        entries += [_trail_entry(f) for f in followups if f.kind == "money_trail" and f.state == "done"]
        if case.entity.kind == "account":
            for hold in await self.ledger.of_accounts([case.entity.value]):
                entries.append(_hold_entry(hold))
                entries += [_hold_move_entry(hold, r) for r in await self.audit.about(f"hold:{hold.hold_id}")]
        return sorted(entries, key=lambda e: e.at)


def _matches(
    case: Case,
    status: CaseStatus | None,
    detector: str | None,
    severity: Severity | None,
    until: datetime | None,
    escalated: bool | None,
) -> bool:
    return (
        (status is None or case.status == status)
        and (escalated is None or (case.escalated_at is not None) == escalated)
        and (detector is None or detector in case.detectors)
        and (severity is None or SEVERITY_RANK[case.severity] >= SEVERITY_RANK[severity])
        and (until is None or case.first_seen <= until)
    )


class _Planned:
    """Deliveries planned inside a decision, written by its transaction."""

    def __init__(self, queue: DeliveryQueue, planned: list[tuple[Delivery, bytes]]) -> None:
        self.queue = queue
        self.planned = planned
        self.ids = [d.delivery_id for d, _ in planned]

    def write(self, pipe: Pipeline) -> None:
        for delivery, payload in self.planned:
            self.queue.write_new(pipe, delivery, payload)


def _alert_entry(alert: Alert) -> TimelineEntry:
    reasons = ", ".join(f"{r.feature}={r.value:g}" for r in alert.reasons)
    return TimelineEntry(
        at=alert.window_end,
        kind="alert",
        ref=alert.alert_id,
        title=f"{alert.detector} {alert.severity} score={alert.score:.2f}: {reasons}",
        detail=alert.model_dump(mode="json"),
    )


def _action_entry(record: AuditRecord) -> TimelineEntry:
    title = f"{record.action} by {record.actor}"
    if record.action == "case.escalate" and record.after:  # what the police need first: where, and what the teller saw
        title = f"escalated from {record.after['place']} by {record.actor}: {record.after['note']}"
    elif record.action == "case.note" and record.after:  # the note itself, not only that one was written
        title = f"note by {record.actor}: {record.after['note']}"
    return TimelineEntry(
        at=record.at,
        kind="action",
        ref=str(record.seq),
        title=title,
        detail={"before": record.before, "after": record.after},
        action=record.action,
        actor=record.actor,
    )


def _followup_entry(followup: FollowUp) -> TimelineEntry:
    if followup.state == "done" and followup.result.get("listed") is False:  # done, yet nobody is listed
        how = f"done, nothing listed: {followup.result.get('why', 'no party')}"
    elif followup.state == "done":
        how = f"done after {followup.attempts} attempt(s)"
    elif followup.state == "failed":
        how = f"failed, needs an analyst (retry once fixed): {followup.last_error}"
    elif followup.attempts:
        how = f"pending, {followup.attempts} failed attempt(s), last: {followup.last_error}"
    else:
        how = "pending"
    return TimelineEntry(
        at=followup.created_at,
        kind="follow_up",
        ref=followup.followup_id,
        title=f"follow-up {followup.kind}: {how}",
        detail=followup.model_dump(mode="json"),
    )


def _trail_entry(followup: FollowUp) -> TimelineEntry:
    """The money trail the confirmation traced: accounts, hops, amounts at risk, holds frozen, requests."""
    result = followup.result
    at_risk = sum(r["amount_fen"] for r in result.get("requests", [])) / 100
    return TimelineEntry(
        at=followup.done_at or followup.created_at,
        kind="trail",
        ref=result.get("report_id", followup.followup_id),
        title=f"money trail: {len(result.get('accounts', []))} account(s) reached, {at_risk:g} yuan at risk, "
        f"{len(result.get('frozen_holds', []))} hold(s) frozen, {len(result.get('requests', []))} request(s)",
        detail=result,
    )


def _hold_entry(hold: Hold) -> TimelineEntry:
    return TimelineEntry(
        at=hold.created_at,
        kind="hold",
        ref=hold.hold_id,
        title=f"ATM transfer held: {hold.amount_fen / 100:g} yuan {mask_account(hold.payer_account)} -> "
        f"{mask_account(hold.payee_account)} (now {hold.state})",
        detail=hold.model_dump(mode="json"),
    )


def _hold_move_entry(hold: Hold, record: AuditRecord) -> TimelineEntry:
    return TimelineEntry(
        at=record.at,
        kind="hold",
        ref=f"{hold.hold_id}:{record.seq}",
        title=f"{record.action} by {record.actor}",
        detail={"before": record.before, "after": record.after},
        action=record.action,
        actor=record.actor,
    )


def _delivery_entry(delivery: Delivery) -> TimelineEntry:
    return TimelineEntry(
        at=delivery.created_at,
        kind="delivery",
        ref=delivery.delivery_id,
        title=f"package for {delivery.target} ({delivery.state}, {delivery.attempts} attempts)",
        detail=delivery.model_dump(mode="json"),
    )
