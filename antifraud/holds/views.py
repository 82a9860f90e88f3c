"""HTTP API of the ATM transfer holds: list, show, revoke, freeze, release, return; trace a fraud report.

Who may do what (admins may do everything):

- tellers: look a hold up by id and revoke it for the sender, who comes to a
  counter (or calls the bank) within the 24 hours. A hold carries the ATM, not
  a branch, and the sender may go to any branch of the bank, so any teller may
  revoke; the teller's name and branch go into the audit record and the event.
- analysts (police): list holds, show one, freeze a held one on an order,
  release or return a frozen one by order, and trace a fraud report.

Errors: 422 for bad input (a malformed hold id, a blank reason, a window that
ends before it starts), 404 for an unknown hold, 409 for a move the hold's state
does not allow (the message names the hold, both states and why); nothing is
written on any of them.
"""

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, get_args

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict
from starlette.convertors import Convertor, register_url_convertor

from antifraud.audit.service import AuditLog
from antifraud.clock import utcnow
from antifraud.events.types import AccountNo, Reason
from antifraud.holds.models import (
    HOLD_ID_PATTERN,
    HUMAN_MOVES,
    MOVE_HELP,
    Actor,
    Hold,
    HoldEvent,
    HoldState,
)
from antifraud.holds.reports import FraudReportRequest, FraudReportResult, report_fraud
from antifraud.holds.service import HoldLedger, UnknownHold
from antifraud.state.money_trail import TransferIndex
from antifraud.web.auth import Principal, Role, require
from antifraud.web.deps import get_audit, get_redis

router = APIRouter(prefix="/api/holds", tags=["holds"])

_police = require(Role.ANALYST)
_reader = require(Role.ANALYST, Role.TELLER)
_sender_desk = require(Role.TELLER)

HoldId = Annotated[str, Path(pattern=HOLD_ID_PATTERN, description="32 hex digits, as the holds topic carries it")]


class _HoldIdConvertor(Convertor[str]):
    """A path segment that can be a hold id: ``/api/holds/reports`` then is no hold's path, and a ``GET`` of
    it is a method the path does not take (405), not a bad hold id (422)."""

    regex = HOLD_ID_PATTERN.strip("^$")

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("hold_id", _HoldIdConvertor())
HOLD_PATH = "/{hold_id:hold_id}"


class MoveBody(BaseModel):
    """Why the move is made: the sender's request, or the order's reference."""

    model_config = ConfigDict(extra="forbid")
    reason: Reason


def get_ledger(request: Request) -> HoldLedger:
    return HoldLedger.configured(get_redis(request), request.app.state.thresholds.holds)


def _by(principal: Principal) -> str:
    branch = f"@{principal.branch_id}" if principal.branch_id else ""
    return f"{principal.role.value}:{principal.name}{branch}"


@router.get("", response_model=list[Hold])
async def list_holds(
    state: HoldState = "held",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,  # Redis refuses an offset past 64 bits: 422, not 500
    ledger: HoldLedger = Depends(get_ledger),
    _: Principal = Depends(_police),
) -> list[Hold]:
    """Holds in one state, soonest due first."""
    return await ledger.in_state(state, limit=limit, offset=offset)


@router.get("/by-payer", response_model=list[Hold], summary="a customer's held ATM transfers (at the counter)")
async def holds_of_payer(
    account: Annotated[AccountNo, Query(description="the payer's account or card number")],
    ledger: HoldLedger = Depends(get_ledger),
    _: Principal = Depends(_reader),
) -> list[Hold]:
    """The holds of transfers the account paid that the ledger still has, oldest first: a teller finds the
    one the customer asks to revoke (a hold names the ATM, not a branch, so any counter may)."""
    return [h for h in await ledger.of_accounts([account]) if h.payer_account == account]


@router.get(HOLD_PATH, response_model=Hold)
async def show_hold(hold_id: HoldId, ledger: HoldLedger = Depends(get_ledger), _: Principal = Depends(_reader)) -> Hold:
    hold = await ledger.get(hold_id)
    if hold is None:
        raise UnknownHold(hold_id)
    return hold


class HoldMove(BaseModel):
    """One move of a hold as its audit record tells it: to which state, on whose authority, by whom, why."""

    model_config = ConfigDict(frozen=True)
    at: datetime
    state: HoldState
    actor: str
    by: str | None
    reason: str | None


@router.get(HOLD_PATH + "/moves", response_model=list[HoldMove], summary="a hold's moves: who, when and why")
async def hold_moves(
    hold_id: HoldId,
    ledger: HoldLedger = Depends(get_ledger),
    audit: AuditLog = Depends(get_audit),
    _: Principal = Depends(_reader),
) -> list[HoldMove]:
    """From the audit trail, oldest first: who froze a hold and why (an order's reference, a case)."""
    if await ledger.get(hold_id) is None:
        raise UnknownHold(hold_id)
    return [
        HoldMove(
            at=r.at,
            state=r.action.removeprefix("hold."),
            actor=r.actor,
            by=(r.after or {}).get("by"),
            reason=(r.after or {}).get("reason"),
        )
        for r in await audit.about(f"hold:{hold_id}")
        if r.action.removeprefix("hold.") in get_args(HoldState)  # moves, not the payee warnings
    ]


_MOVE_GUARDS: dict[Actor, Callable[..., Awaitable[Principal]]] = {"sender": _sender_desk, "police": _police}
"""On whose authority a move is made -> who may make it: the sender's at a teller's desk, orders by the police."""


def _add_move_route(verb: str) -> None:
    """``POST /{hold_id}/{verb}`` for whoever acts on the move's authority (:data:`HUMAN_MOVES`)."""
    to, actor = HUMAN_MOVES[verb]

    async def move(
        hold_id: HoldId,
        body: MoveBody,
        ledger: HoldLedger = Depends(get_ledger),
        audit: AuditLog = Depends(get_audit),
        principal: Principal = Depends(_MOVE_GUARDS[actor]),
    ) -> HoldEvent:
        return await ledger.move(audit, hold_id, to, actor=actor, by=_by(principal), reason=body.reason, at=utcnow())

    router.post(
        f"{HOLD_PATH}/{verb}",
        response_model=HoldEvent,
        name=f"{verb}_hold",
        description=MOVE_HELP[verb].capitalize() + ".",
    )(move)


for _verb in HUMAN_MOVES:
    _add_move_route(_verb)


@router.post("/reports", response_model=FraudReportResult)
async def trace_report(
    body: FraudReportRequest,
    request: Request,
    ledger: HoldLedger = Depends(get_ledger),
    audit: AuditLog = Depends(get_audit),
    principal: Principal = Depends(_police),
) -> FraudReportResult:
    """Freeze the victim's held transfers in the window, follow the money, raise stop-payment and freeze requests."""
    limits = request.app.state.thresholds.holds.trail
    return await report_fraud(
        ledger,
        TransferIndex.configured(get_redis(request), limits),
        audit,
        body,
        by=_by(principal),
        limits=limits,
        now=utcnow(),
    )
