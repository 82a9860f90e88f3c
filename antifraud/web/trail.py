"""The money trail as the console draws it: where an account's money went, hop by hop (reads only).

The same trace a fraud report runs (:func:`antifraud.holds.reports.follow`), from
any account and without acting on it: no hold is frozen and no request raised,
so an analyst can look before deciding. Nodes are the accounts reached with the
money they received, passed on and kept; edges are the transfers that carried it.
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import AwareDatetime, BaseModel

from antifraud.events.types import AccountNo
from antifraud.holds.reports import FraudReportRequest, follow
from antifraud.holds.service import HoldLedger
from antifraud.state.money_trail import TransferIndex
from antifraud.web.auth import Principal, Role, require
from antifraud.web.deps import get_redis
from detectors.money_trail import Trail

router = APIRouter(prefix="/api", tags=["money trail"])


class TrailNode(BaseModel):
    account: str
    hop: int
    received_fen: int
    passed_on_fen: int
    retained_fen: int


class TrailEdge(BaseModel):
    event_id: str
    payer: str
    payee: str
    at: float
    amount_fen: int
    tainted_fen: int
    hop: int
    stopped: bool
    """The transfer's hold kept the money from the payee (held, frozen, revoked or returned)."""


class TrailView(BaseModel):
    account: str
    since: datetime
    until: datetime
    nodes: list[TrailNode]
    edges: list[TrailEdge]


def view_of(account: str, since: datetime, until: datetime, trail: Trail) -> TrailView:
    """The trail as nodes (the start account first, hop 0) and edges."""
    start = TrailNode(account=account, hop=0, received_fen=0,
                      passed_on_fen=sum(t.tainted_fen for t in trail.transfers if t.hop == 1), retained_fen=0)
    nodes = [start] + [
        TrailNode(account=a.account, hop=a.hop, received_fen=a.received_fen, passed_on_fen=a.passed_on_fen,
                  retained_fen=a.retained_fen)
        for a in trail.accounts.values() if a.account != account
    ]
    edges = [
        TrailEdge(event_id=t.transfer.event_id, payer=t.transfer.payer, payee=t.transfer.payee, at=t.transfer.at,
                  amount_fen=t.transfer.amount_fen, tainted_fen=t.tainted_fen, hop=t.hop, stopped=t.stopped)
        for t in trail.transfers
    ]
    return TrailView(account=account, since=since, until=until, nodes=nodes, edges=edges)


@router.get("/trail", response_model=TrailView, summary="where an account's money went (reads only)")
async def money_trail(
    request: Request,
    account: Annotated[AccountNo, Query(description="the account to follow the money from")],
    since: Annotated[AwareDatetime, Query(description="its outgoing transfers from (ISO 8601)")],
    until: Annotated[AwareDatetime, Query(description="until (ISO 8601)")],
    _: Principal = Depends(require(Role.ANALYST)),
) -> TrailView:
    if until <= since:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "until must be after since")
    thresholds = request.app.state.thresholds
    redis = get_redis(request)
    question = FraudReportRequest(victim_account=account, start=since, end=until, reason="console view")
    trail, _holds = await follow(HoldLedger.configured(redis, thresholds.holds),
                                 TransferIndex.configured(redis, thresholds.holds.trail), question, thresholds.holds.trail)
    return view_of(account, since, until, trail)
