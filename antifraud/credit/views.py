"""HTTP API of the credit blacklist: query, list, object, review, repair; a yes/no check for the counter.

Who may do what:

- credit officers (and admins): everything, with four eyes: a listing names a confirmed case of the
  party (checked against the case), or is proposed by one officer and approved by another; whoever
  filed an objection or made the listing does not decide the objection;
- analysts: read listings and their history;
- tellers: check a party, account or phone (listed or not, reason codes, until
  when; nothing else), and take a party's objection at the counter, the party
  proving who they are with the ID document the listing names (``party_id``).

Errors: 422 for bad input (naming the field or parameter), 404 for an unknown
listing or objection, 409 for what the listing's state or the rules refuse
(the message says why); nothing is written on any of them.
"""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from antifraud.audit.service import AuditLog
from antifraud.case.service import CaseService
from antifraud.case.views import get_cases
from antifraud.clock import utcnow
from antifraud.credit.backing import unbacked
from antifraud.credit.models import (
    Listing,
    ListingDraft,
    LookupKind,
    Move,
    ObjectionDecision,
    ObjectionFiling,
    Proposal,
    ReasonCode,
    RepairRequest,
    Worklist,
    lookup_schema,
    lookup_value,
    moves_from,
)
from antifraud.credit.service import CreditBlacklist
from antifraud.privacy import mask_entity
from antifraud.refusals import Invalid
from antifraud.web.auth import Principal, Role, require
from antifraud.web.deps import get_audit, get_redis

router = APIRouter(prefix="/api/blacklist", tags=["blacklist"])

_officer = require(Role.CREDIT_OFFICER)
_reader = require(Role.CREDIT_OFFICER, Role.ANALYST)
_counter = require(Role.CREDIT_OFFICER, Role.TELLER)
_checker = require(Role.CREDIT_OFFICER, Role.ANALYST, Role.TELLER)


def get_blacklist(request: Request, audit: AuditLog = Depends(get_audit)) -> CreditBlacklist:
    return CreditBlacklist(get_redis(request), audit, request.app.state.thresholds.credit_blacklist)


LOOKUP_RULE = "give exactly one of the query parameters id_number, credit_code, account, phone"


def _key(kind: LookupKind, description: str) -> Any:
    """A look-up query parameter: its rule in the schema, checked by ``lookup_value`` (which never echoes it)."""
    return Query(None, description=description, json_schema_extra=lookup_schema(kind))


def _lookup(
    id_number: str | None = _key("id_number", "a person's resident ID number"),
    credit_code: str | None = _key("credit_code", "an organisation's unified social credit code"),
    account: str | None = _key("account", "a bank account or card number"),
    phone: str | None = _key("phone", "a phone number"),
) -> tuple[LookupKind, str]:
    """The one lookup key given, validated; 422 naming the parameter otherwise."""
    named: list[tuple[LookupKind, str | None]] = [
        ("id_number", id_number),
        ("credit_code", credit_code),
        ("account", account),
        ("phone", phone),
    ]
    given = [(kind, value) for kind, value in named if value is not None]
    if len(given) != 1:
        raise Invalid("one_lookup", LOOKUP_RULE)
    kind, raw = given[0]
    try:
        return kind, lookup_value(kind, raw)
    except ValueError as exc:
        raise Invalid("lookup_value", str(exc), kind=kind) from None


class CheckResult(BaseModel):
    """What a counter learns: listed or not, on what grounds, until when; the subject masked."""

    model_config = ConfigDict(frozen=True)
    subject: str
    listed: bool
    reason_codes: list[ReasonCode]
    until: datetime | None
    listing_ids: list[str] = Field(
        description="the listings in force: an objection is filed against one, on the ID document presented"
    )


class ObjectionReceipt(BaseModel):
    """The receipt the counter hands the party: which objection was filed, the listing's state now."""

    model_config = ConfigDict(frozen=True)
    listing_id: str
    objection_id: int
    listing_state: str
    filed_at: datetime


class HistoryEntry(BaseModel):
    model_config = ConfigDict(frozen=True)
    seq: int
    at: datetime
    actor: str
    action: str
    state: str | None


@router.get(
    "", response_model=list[Listing], summary="listings naming a party, an account or a phone", description=LOOKUP_RULE
)
async def query(
    key: tuple[LookupKind, str] = Depends(_lookup),
    include_ended: bool = Query(False, description="also removed, repaired and expired listings"),
    blacklist: CreditBlacklist = Depends(get_blacklist),
    _: Principal = Depends(_reader),
) -> list[Listing]:
    kind, value = key
    return await blacklist.find(kind, value, now=utcnow(), include_ended=include_ended)


@router.get(
    "/check",
    response_model=CheckResult,
    summary="is a party, account or phone listed (counter check)",
    description=LOOKUP_RULE,
)
async def check(
    key: tuple[LookupKind, str] = Depends(_lookup),
    blacklist: CreditBlacklist = Depends(get_blacklist),
    _: Principal = Depends(_checker),
) -> CheckResult:
    kind, value = key
    listings = await blacklist.find(kind, value, now=utcnow())
    return CheckResult(
        subject=mask_entity(kind, value),
        listed=bool(listings),
        reason_codes=sorted({x.reason_code for x in listings}),
        until=max((x.expires_at for x in listings), default=None),
        listing_ids=[x.listing_id for x in listings],
    )


@router.post(
    "",
    response_model=Listing,
    status_code=status.HTTP_201_CREATED,
    summary="list a party from a confirmed case (the same request again: 200 with the listing)",
)
async def add(
    draft: ListingDraft,
    response: Response,
    blacklist: CreditBlacklist = Depends(get_blacklist),
    cases: CaseService = Depends(get_cases),
    principal: Principal = Depends(_officer),
) -> Listing:
    why = await unbacked(cases, draft)
    if why is not None:
        raise why
    listing, created = await blacklist.add(draft, actor=principal.name, now=utcnow())
    if not created:
        response.status_code = status.HTTP_200_OK
    return listing


@router.post(
    "/proposals",
    response_model=Proposal,
    status_code=status.HTTP_201_CREATED,
    summary="propose a listing no confirmed case backs, for a second officer to approve",
)
async def propose(
    draft: ListingDraft, blacklist: CreditBlacklist = Depends(get_blacklist), principal: Principal = Depends(_officer)
) -> Proposal:
    return await blacklist.propose(draft, actor=principal.name, now=utcnow())


@router.get("/proposals", response_model=list[Proposal], summary="proposals waiting for a second officer")
async def proposals(
    blacklist: CreditBlacklist = Depends(get_blacklist), _: Principal = Depends(_officer)
) -> list[Proposal]:
    return await blacklist.proposals()


@router.post(
    "/proposals/{proposal_id}/approve",
    response_model=Listing,
    status_code=status.HTTP_201_CREATED,
    summary="approve another officer's proposal: the party is listed (its proposer may not approve it)",
)
async def approve(
    proposal_id: str,
    response: Response,
    blacklist: CreditBlacklist = Depends(get_blacklist),
    principal: Principal = Depends(_officer),
) -> Listing:
    listing, created = await blacklist.approve(proposal_id, actor=principal.name, now=utcnow())
    if not created:
        response.status_code = status.HTTP_200_OK
    return listing


@router.get("/worklist", response_model=Worklist, summary="what waits for a credit officer")
async def worklist(
    recent_days: Annotated[int, Query(ge=1, le=365, description="listings made in these last days")] = 7,
    ending_days: Annotated[int, Query(ge=1, le=365, description="listings ending in these next days")] = 30,
    blacklist: CreditBlacklist = Depends(get_blacklist),
    _: Principal = Depends(_reader),
) -> Worklist:
    """Objections pending, proposals to approve, new listings and listings about to end: the desk's landing."""
    return await blacklist.worklist(utcnow(), recent_days=recent_days, soon_days=ending_days)


class ListingView(Listing):
    moves: list[Move] = Field(description="what a person may do to the listing now, by its state")


@router.get("/{listing_id}", response_model=ListingView, summary="one listing with its objections")
async def show(
    listing_id: str, blacklist: CreditBlacklist = Depends(get_blacklist), _: Principal = Depends(_reader)
) -> ListingView:
    listing = await blacklist.get(listing_id, now=utcnow())
    return ListingView(**dict(listing), moves=moves_from(listing.state))


@router.get("/{listing_id}/history", response_model=list[HistoryEntry], summary="the listing's audit trail")
async def history(
    listing_id: str,
    blacklist: CreditBlacklist = Depends(get_blacklist),
    audit: AuditLog = Depends(get_audit),
    _: Principal = Depends(_reader),
) -> list[HistoryEntry]:
    await blacklist.get(listing_id, now=utcnow())
    return [
        HistoryEntry(seq=r.seq, at=r.at, actor=r.actor, action=r.action, state=(r.after or {}).get("state"))
        for r in await audit.about(f"listing:{listing_id}")
    ]


@router.post(
    "/{listing_id}/objections",
    response_model=ObjectionReceipt,
    status_code=status.HTTP_201_CREATED,
    summary="file the listed party's objection (at a counter, on the ID document presented)",
)
async def file_objection(
    listing_id: str,
    filing: ObjectionFiling,
    blacklist: CreditBlacklist = Depends(get_blacklist),
    principal: Principal = Depends(_counter),
) -> ObjectionReceipt:
    listing = await blacklist.object(listing_id, filing, actor=principal.name, now=utcnow())
    objection = listing.objections[-1]
    return ObjectionReceipt(
        listing_id=listing_id,
        objection_id=objection.objection_id,
        listing_state=listing.state,
        filed_at=objection.filed_at,
    )


@router.post(
    "/{listing_id}/objections/{objection_id}/decision",
    response_model=Listing,
    summary="decide an objection: uphold, or correct (amend, or remove the listing)",
)
async def decide(
    listing_id: str,
    objection_id: int,
    decision: ObjectionDecision,
    blacklist: CreditBlacklist = Depends(get_blacklist),
    principal: Principal = Depends(_officer),
) -> Listing:
    return await blacklist.decide(listing_id, objection_id, decision, actor=principal.name, now=utcnow())


@router.post("/{listing_id}/repair", response_model=Listing, summary="end a listing on credit repair")
async def repair(
    listing_id: str,
    request: RepairRequest,
    blacklist: CreditBlacklist = Depends(get_blacklist),
    principal: Principal = Depends(_officer),
) -> Listing:
    return await blacklist.repair(listing_id, request, actor=principal.name, now=utcnow())
