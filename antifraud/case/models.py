"""A case: the alerts about one entity in one scenario, and the only moves an analyst may make on it.

Grouping. A case is one entity (a number, an account, an ID number, a cell) in
one *scenario*, the family of detectors that see the same kind of fraud:

============================================  ===================
detectors                                      scenario
============================================  ===================
fraud_number, interception                     fraud_number
card_opening, card_trade, sim_registration     bulk_opening
transfer_risk, mule_account                    mule
fake_base_station, phishing_sms                fake_base_station
any other detector                             its own name
============================================  ===================

so ``case_id`` follows from (entity kind, entity value, scenario): the same
alert always lands in the same case, and a replayed alert (same ``alert_id``)
is folded once.

Lifecycle (plan (一)1 items 5, 9 and 11)::

    new --review--> in_review --confirm--> confirmed --(first delivery delivered)--> forwarded
                              \\--dismiss--> dismissed
    confirmed | forwarded | dismissed --close--> closed

A new alert on a dismissed or closed case reopens it (``new``) so an analyst
sees the new evidence; on any other case it is added to the evidence. A teller
escalating a live warning (a customer at the counter, plan (一)1 item 1) marks
the warning's case escalated from that branch or ATM and likewise reopens it. Assigning
works on every case that is not closed, notes on every case. ``version`` grows
with every change, so (case, version) names one state of the evidence: a
forwarding package is built from exactly one.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from antifraud.alerts.models import Alert, Entity, Severity
from antifraud.events.types import Stripped, UtcTime
from antifraud.holds.models import stable_id
from antifraud.refusals import Invalid, Refusal

CaseStatus = Literal["new", "in_review", "confirmed", "dismissed", "forwarded", "closed"]
STATUSES: tuple[CaseStatus, ...] = ("new", "in_review", "confirmed", "dismissed", "forwarded", "closed")
Action = Literal[
    "review",
    "confirm",
    "dismiss",
    "forward",
    "close",
    "assign",
    "note",
    "delivered",
    "reopen",
    "escalate",
]

SCENARIO_BY_DETECTOR: dict[str, str] = {
    "fraud_number": "fraud_number",
    "interception": "fraud_number",
    "card_opening": "bulk_opening",
    "card_trade": "bulk_opening",
    "sim_registration": "bulk_opening",
    "transfer_risk": "mule",
    "mule_account": "mule",
    "fake_base_station": "fake_base_station",
    "phishing_sms": "fake_base_station",
}
"""Detector -> scenario: the detectors that see the same kind of fraud share a case per entity."""

SEVERITY_RANK: dict[Severity, int] = {"low": 0, "medium": 1, "high": 2, "critical": 3}

_NOT_CLOSED: dict[CaseStatus, CaseStatus] = {s: s for s in STATUSES if s != "closed"}
TRANSITIONS: dict[Action, dict[CaseStatus, CaseStatus]] = {
    "review": {"new": "in_review"},
    "confirm": {"in_review": "confirmed"},
    "dismiss": {"in_review": "dismissed"},
    "forward": {"confirmed": "confirmed", "forwarded": "forwarded"},
    "close": {"confirmed": "closed", "forwarded": "closed", "dismissed": "closed"},
    "assign": _NOT_CLOSED,
    "note": {s: s for s in STATUSES},
    "delivered": {"confirmed": "forwarded"},
    "reopen": {"dismissed": "new", "closed": "new"},
    "escalate": {**{s: s for s in STATUSES}, "dismissed": "new", "closed": "new"},
}
"""action -> {from status: to status}; an action from a status not listed is refused."""

ANALYST_ACTIONS: tuple[Action, ...] = ("review", "confirm", "dismiss", "forward", "close", "assign", "note")
"""What an analyst does to a case from the console (deliveries, reopening and escalation come from elsewhere)."""


def allowed_actions(status: CaseStatus, forwarded: bool) -> list[Action]:
    """The analyst's actions a case's status allows now: the console offers only these. ``forward`` only
    while some target has had nothing (confirming already forwards; a failed delivery is retried)."""
    return [a for a in ANALYST_ACTIONS if status in TRANSITIONS[a] and not (a == "forward" and forwarded)]


Text = Annotated[str, Stripped(2000)]
UserName = Annotated[str, Stripped(100)]


class IllegalTransition(Refusal, ValueError):
    """An action the case's status does not allow."""

    def __init__(self, case_id: str, current: CaseStatus, action: Action) -> None:
        self.case_id, self.current, self.action = case_id, current, action
        allowed = sorted(TRANSITIONS[action])
        super().__init__(
            "case_transition",
            f"case {case_id}: {action} refused while {current} (allowed from: {', '.join(allowed)})",
            case=case_id,
            current=current,
            action=action,
            allowed=allowed,
        )


class UnreachableTarget(Invalid, ValueError):
    """Targets a case cannot be forwarded to (a number's case to the bank): bad input, nothing written."""

    def __init__(self, case_id: str, entity_kind: str, refused: Sequence[str], possible: Sequence[str]) -> None:
        self.case_id, self.refused = case_id, refused
        super().__init__(
            "case_target",
            f"case {case_id}: a {entity_kind} case cannot go to {', '.join(refused)} "
            f"(its targets: {', '.join(possible)})",
            case=case_id,
            kind=entity_kind,
            refused=list(refused),
            possible=list(possible),
        )


class WorkRefused(Refusal, ValueError):
    """A move a case's follow-up or delivery does not allow in its state (an analyst retrying one that has
    not failed, an attempt at one delivered)."""

    def __init__(self, what: Literal["follow-up", "delivery"], item_id: str, state: str, move: str) -> None:
        self.item_id, self.state, self.move = item_id, state, move
        code = "followup_state" if what == "follow-up" else "delivery_state"
        super().__init__(code, f"{what} {item_id}: {move} refused while {state}", state=state, move=move)


def audit_subject(case_id: str) -> str:
    """The case's subject in the audit log: its actions and its deliveries' outcomes."""
    return f"case:{case_id}"


def scenario_of(detector: str) -> str:
    return SCENARIO_BY_DETECTOR.get(detector, detector)


def case_id_for(entity: Entity, scenario: str) -> str:
    """Stable id: the same entity in the same scenario is always the same case."""
    return stable_id("case", entity.kind, entity.value, scenario)


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    author: UserName
    at: UtcTime
    text: Text


class Case(BaseModel):
    """The case document; its alerts and notes are kept beside it (see ``antifraud.case.service``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    case_id: str
    entity: Entity
    scenario: str
    status: CaseStatus = "new"
    version: Annotated[int, Field(ge=1)] = 1
    assignee: str | None = None
    detectors: list[str]
    """Distinct detectors of its alerts, sorted."""
    severity: Severity
    """The highest of its alerts."""
    score: float
    """The highest of its alerts."""
    alert_count: int
    first_seen: UtcTime
    """Earliest window start of its alerts (event time)."""
    last_seen: UtcTime
    """Latest window end of its alerts (event time)."""
    opened_at: UtcTime
    updated_at: UtcTime
    decided_by: str | None = None
    decided_at: UtcTime | None = None
    decision_reason: str | None = None
    escalated_at: UtcTime | None = None
    """When a teller last escalated one of its warnings to the police (a customer at the counter then)."""
    escalated_from: str | None = None
    """The branch or ATM of that escalation."""


class TimelineEntry(BaseModel):
    """One item of a case's evidence timeline: an alert (at its event time), an action on the case
    (a note, a decision, a delivery outcome; at the time it was recorded), a delivery, a follow-up of
    its confirmation, a hold of its account (at the transfer's time) or a move of one, the money trail."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    at: UtcTime
    kind: Literal["alert", "action", "delivery", "follow_up", "hold", "trail"]
    title: str
    ref: str
    """The alert, audit record (seq), delivery, follow-up, hold (a move: ``hold_id:seq``) or trail report."""
    detail: dict[str, Any] = {}
    action: str | None = None
    """An action's or a hold move's audit action (``case.confirm``, ``hold.frozen``): the pages name it in
    their user's language from this, not from the English ``title``."""
    actor: str | None = None


def open_case(alert: Alert, now: datetime) -> Case:
    """The case a first alert opens."""
    scenario = scenario_of(alert.detector)
    return Case(
        case_id=case_id_for(alert.entity, scenario),
        entity=alert.entity,
        scenario=scenario,
        detectors=[alert.detector],
        severity=alert.severity,
        score=alert.score,
        alert_count=1,
        first_seen=alert.window_start,
        last_seen=alert.window_end,
        opened_at=now,
        updated_at=now,
    )


def fold(case: Case | None, alert: Alert, now: datetime) -> Case:
    """The case after one more alert (the caller has checked the alert is not in it yet)."""
    if case is None:
        return open_case(alert, now)
    if case.entity != alert.entity or case.scenario != scenario_of(alert.detector):
        raise ValueError(f"alert {alert.alert_id} does not belong to case {case.case_id}")
    status = TRANSITIONS["reopen"].get(case.status, case.status)
    return _changed(
        case,
        status=status,
        detectors=sorted({*case.detectors, alert.detector}),
        severity=max(case.severity, alert.severity, key=SEVERITY_RANK.__getitem__),
        score=max(case.score, alert.score),
        alert_count=case.alert_count + 1,
        first_seen=min(case.first_seen, alert.window_start),
        last_seen=max(case.last_seen, alert.window_end),
        updated_at=now,
    )


def fold_all(case: Case | None, alerts: Sequence[Alert], now: datetime) -> Case:
    """The case after several alerts (at least one, none in it yet) folded one by one: the same case, version
    included, as folding each in a change of its own would leave."""
    folded = fold(case, alerts[0], now)
    for alert in alerts[1:]:
        folded = fold(folded, alert, now)
    return folded


def require_allowed(case: Case, action: Action) -> CaseStatus:
    """The status ``action`` leads to from the case's, or :class:`IllegalTransition`."""
    target = TRANSITIONS[action].get(case.status)
    if target is None:
        raise IllegalTransition(case.case_id, case.status, action)
    return target


def transition(case: Case, action: Action, *, actor: str, now: datetime, **update: object) -> Case:
    """The case after ``action`` by ``actor``, or :class:`IllegalTransition` naming the case, its status and
    the action. ``update`` sets further fields (the assignee); a decision records who, when and why."""
    target = require_allowed(case, action)
    if action in ("confirm", "dismiss"):
        update = {"decided_by": actor, "decided_at": now, **update}
    if action == "review" and case.assignee is None:
        update = {"assignee": actor, **update}
    return _changed(case, status=target, updated_at=now, **update)


def _changed(case: Case, **update: object) -> Case:
    """A new version of ``case`` with ``update`` applied and validated (``model_copy`` would not check it)."""
    return Case.model_validate({**case.model_dump(), **update, "version": case.version + 1})
