"""HTTP API of cases and their deliveries, for analysts (and admins).

- ``GET /api/cases``: filter by status, detector, severity (at least), since/until (event time), escalated;
- ``GET /api/escalations?since=``: cases tellers escalated since a time; ``GET /api/escalations/stream``:
  the same as they happen (server-sent events: the console's live feed);
- ``GET /api/cases/{id}``: the case with its evidence timeline;
- ``POST /api/cases/{id}/assign|review|confirm|dismiss|forward|close|notes``;
- ``GET /api/cases/{id}/deliveries``, ``POST /api/deliveries/{id}/retry``;
- ``POST /api/followups/{id}/retry``: a follow-up of a confirmation that failed for good (its id is in the
  case's timeline).

Errors: 422 for bad input (a malformed id, a blank reason, a target the case
cannot go to), 404 for an unknown case, delivery or follow-up, 409 for an action
the case's, the delivery's or the follow-up's state does not allow (the message
names it, its state and the action); nothing is written on any of them. Any
other error (a stored document that no longer reads, say) is the server's: 500,
without its message. The actor recorded in the audit log is the caller.
"""

import asyncio
from collections.abc import AsyncIterator, Iterable
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, Field

from antifraud.alerts.models import Entity, Severity
from antifraud.audit.service import AuditLog
from antifraud.case.followups import FollowUp
from antifraud.case.models import (
    Action,
    Case,
    CaseStatus,
    Note,
    Text,
    TimelineEntry,
    UserName,
    allowed_actions,
)
from antifraud.case.service import CaseService
from antifraud.clock import utcnow
from antifraud.events.types import AccountNo, IdNumber, Msisdn, QueryTime
from antifraud.forwarding.models import Delivery, Target, targets_for
from antifraud.refusals import Invalid
from antifraud.web.auth import Principal, Role, people_in, require, user_named
from antifraud.web.deps import get_audit, get_redis

router = APIRouter(prefix="/api", tags=["cases"])

_analyst = require(Role.ANALYST)
ASSIGNEES = (Role.ANALYST, Role.ADMIN)
"""Who a case can be given to."""

Id = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="32 hex digits")]


def get_cases(request: Request, audit: AuditLog = Depends(get_audit)) -> CaseService:
    """Cases over the app's Redis (a confirmation's follow-ups are the worker's)."""
    return CaseService(get_redis(request), audit, holds=request.app.state.thresholds.holds)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AssignBody(_Body):
    assignee: UserName


class ReasonBody(_Body):
    reason: Text


class NoteBody(_Body):
    text: Text


class ForwardBody(_Body):
    targets: list[Target] = []
    """Empty: every target of the case (police; the carrier for a number, the bank for an account)."""


class CaseView(BaseModel):
    case: Case
    timeline: list[TimelineEntry]
    actions: list[Action] = Field(description="what an analyst may do now, by the case's status")


@router.get("/cases", response_model=list[Case])
async def list_cases(
    case_status: Annotated[CaseStatus | None, Query(alias="status")] = None,
    detector: Annotated[str | None, Query(max_length=64)] = None,
    severity: Annotated[Severity | None, Query(description="this severity or higher")] = None,
    since: Annotated[QueryTime | None, Query(description="cases with alerts ending at or after (ISO 8601)")] = None,
    until: Annotated[
        QueryTime | None, Query(description="cases with alerts starting at or before (not before since)")
    ] = None,
    escalated: Annotated[bool | None, Query(description="only cases a teller escalated (true) or not (false)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=100_000, description="skip this many (a page)")] = 0,
    account: Annotated[AccountNo | None, Query(description="only the cases of this account")] = None,
    phone: Annotated[Msisdn | None, Query(description="only the cases of this phone number")] = None,
    id_number: Annotated[IdNumber | None, Query(description="only the cases of this ID number")] = None,
    cases: CaseService = Depends(get_cases),
    _: Principal = Depends(_analyst),
) -> list[Case]:
    """Cases by their alerts' times, latest activity first; with an account, phone or ID number (at most one),
    that entity's cases, one per scenario, the other filters applied to them."""
    if since and until and until < since:
        raise Invalid("until_before_since", "until is before since")
    named = [("account", account), ("phone", phone), ("id_number", id_number)]
    entities = [Entity(kind=kind, value=value) for kind, value in named if value is not None]
    if len(entities) > 1:
        raise Invalid("one_entity", "give at most one of account, phone and id_number")
    return await cases.find(
        entity=entities[0] if entities else None,
        status=case_status,
        detector=detector,
        severity=severity,
        since=since,
        until=until,
        escalated=escalated,
        limit=limit,
        offset=offset,
    )


@router.get("/escalations", response_model=list[Case], summary="cases tellers escalated after a time, latest first")
async def escalations(
    since: Annotated[QueryTime, Query(description="only escalations after this time (ISO 8601)")],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cases: CaseService = Depends(get_cases),
    _: Principal = Depends(_analyst),
) -> list[Case]:
    """A customer is at a counter while this is read: the console polls it to tell the analyst at once."""
    return await cases.escalated_since(since, limit)


ESCALATION_POLL_S = 1.0
"""How often a console's escalation stream reads the escalation index (one Redis read per console)."""
ESCALATION_OVERLAP = timedelta(minutes=1)


class EscalationFeed:
    """The escalations one stream has not sent yet. It reads a minute back from the newest it has seen: an
    escalation stamped before another may commit after it. Each is sent once."""

    def __init__(self, start: datetime) -> None:
        self.newest = start
        self.seen: dict[str, datetime] = {}

    def since(self) -> datetime:
        return self.newest - ESCALATION_OVERLAP

    def fresh(self, cases: Iterable[Case]) -> list[Case]:
        out = []
        for case in sorted(cases, key=lambda c: (c.escalated_at or self.newest, c.case_id)):
            if case.escalated_at is None or (key := f"{case.case_id}@{case.escalated_at}") in self.seen:
                continue
            self.seen[key] = case.escalated_at
            self.newest = max(self.newest, case.escalated_at)
            out.append(case)
        self.seen = {key: at for key, at in self.seen.items() if at > self.since()}
        return out


@router.get(
    "/escalations/stream",
    response_class=EventSourceResponse,
    summary="cases tellers escalate, as they do (server-sent events, event type 'escalation', data a Case)",
)
async def escalation_stream(
    cases: CaseService = Depends(get_cases), _: Principal = Depends(_analyst)
) -> AsyncIterator[ServerSentEvent]:
    """The console's live feed: a customer is at a counter, the analyst is told within a second or two."""
    feed = EscalationFeed(utcnow())
    feed.fresh(await cases.escalated_since(feed.since(), 1000))  # before the console opened: in its queue
    yield ServerSentEvent(comment="subscribed", retry=2000)
    while True:
        await asyncio.sleep(ESCALATION_POLL_S)
        for case in feed.fresh(await cases.escalated_since(feed.since(), 1000)):
            yield ServerSentEvent(raw_data=case.model_dump_json(), event="escalation", id=case.case_id)


@router.get("/cases/{case_id}", response_model=CaseView)
async def show_case(case_id: Id, cases: CaseService = Depends(get_cases), _: Principal = Depends(_analyst)) -> CaseView:
    case = await cases.get(case_id)
    sent = {d.target for d in await cases.deliveries.for_case(case_id)}
    forwarded = set(targets_for(case.entity)) <= sent
    return CaseView(case=case, timeline=await cases.timeline(case_id), actions=allowed_actions(case.status, forwarded))


@router.get("/analysts", response_model=list[str], summary="who a case can be given to")
async def analysts(request: Request, _: Principal = Depends(_analyst)) -> list[str]:
    """The user names of the active analysts and admins, for the console's assign control."""
    return await people_in(request, ASSIGNEES)


@router.post("/cases/{case_id}/assign", response_model=Case)
async def assign_case(
    case_id: Id,
    body: AssignBody,
    request: Request,
    cases: CaseService = Depends(get_cases),
    principal: Principal = Depends(_analyst),
) -> Case:
    """Give the case to a known analyst or admin by user name (422 for anyone else)."""
    assignee = await user_named(request, body.assignee)
    if assignee is None or assignee.role not in ASSIGNEES:
        raise Invalid(
            "unknown_assignee",
            f"assignee: no analyst is called {body.assignee!r} (a case goes to a known analyst or admin)",
            assignee=body.assignee,
        )
    return await cases.assign(case_id, actor=principal.name, assignee=body.assignee)


@router.post("/cases/{case_id}/review", response_model=Case)
async def review_case(
    case_id: Id, cases: CaseService = Depends(get_cases), principal: Principal = Depends(_analyst)
) -> Case:
    return await cases.review(case_id, actor=principal.name)


@router.post("/cases/{case_id}/confirm", response_model=Case)
async def confirm_case(
    case_id: Id, body: ReasonBody, cases: CaseService = Depends(get_cases), principal: Principal = Depends(_analyst)
) -> Case:
    """Confirm as fraud: deliveries to police (and the carrier or bank) are queued with the follow-ups the
    worker then performs: a number block-listed, the responsible person listed on the credit blacklist, an
    account's money traced and frozen (the case's timeline shows them pending, then done)."""
    return await cases.confirm(case_id, actor=principal.name, reason=body.reason)


@router.post("/cases/{case_id}/dismiss", response_model=Case)
async def dismiss_case(
    case_id: Id, body: ReasonBody, cases: CaseService = Depends(get_cases), principal: Principal = Depends(_analyst)
) -> Case:
    return await cases.dismiss(case_id, actor=principal.name, reason=body.reason)


@router.post("/cases/{case_id}/forward", response_model=list[Delivery])
async def forward_case(
    case_id: Id, body: ForwardBody, cases: CaseService = Depends(get_cases), principal: Principal = Depends(_analyst)
) -> list[Delivery]:
    """Send this version of a confirmed case (again); a target already sent this version is not sent twice."""
    return await cases.forward(case_id, actor=principal.name, targets=body.targets)


@router.post("/cases/{case_id}/close", response_model=Case)
async def close_case(
    case_id: Id, cases: CaseService = Depends(get_cases), principal: Principal = Depends(_analyst)
) -> Case:
    return await cases.close(case_id, actor=principal.name)


@router.post("/cases/{case_id}/notes", response_model=Note, status_code=status.HTTP_201_CREATED)
async def add_note(
    case_id: Id, body: NoteBody, cases: CaseService = Depends(get_cases), principal: Principal = Depends(_analyst)
) -> Note:
    return await cases.add_note(case_id, actor=principal.name, text=body.text)


@router.get("/cases/{case_id}/deliveries", response_model=list[Delivery])
async def case_deliveries(
    case_id: Id, cases: CaseService = Depends(get_cases), _: Principal = Depends(_analyst)
) -> list[Delivery]:
    await cases.get(case_id)
    return await cases.deliveries.for_case(case_id)


@router.post("/deliveries/{delivery_id}/retry", response_model=Delivery)
async def retry_delivery(
    delivery_id: Id, cases: CaseService = Depends(get_cases), principal: Principal = Depends(_analyst)
) -> Delivery:
    """Send a failed delivery again (its attempts start over); any other state is refused (409)."""
    return await cases.deliveries.retry(delivery_id, actor=principal.name)


@router.post("/followups/{followup_id}/retry", response_model=FollowUp)
async def retry_followup(
    followup_id: Id, cases: CaseService = Depends(get_cases), principal: Principal = Depends(_analyst)
) -> FollowUp:
    """Queue a failed follow-up again, due at once (after fixing what failed it); any other state is refused (409)."""
    return await cases.followups.retry(followup_id, actor=principal.name)
