"""The money trail as the console draws it: where an account's money went, hop by hop (reads only).

The same trace a fraud report runs (:func:`antifraud.holds.reports.follow`), from
any account and without acting on it: no hold is frozen and no request raised,
so an analyst can look before deciding. Nodes are the accounts reached with the
money they received, passed on and kept; edges are the transfers that carried it.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from antifraud.events.types import AccountNo, QueryTime
from antifraud.holds.reports import FraudReportRequest, TrailView, follow, view_of
from antifraud.holds.service import HoldLedger
from antifraud.refusals import Invalid
from antifraud.state.money_trail import TransferIndex
from antifraud.web.auth import Principal, Role, require
from antifraud.web.deps import get_redis

router = APIRouter(prefix="/api", tags=["money trail"])


@router.get("/trail", response_model=TrailView, summary="where an account's money went (reads only)")
async def money_trail(
    request: Request,
    account: Annotated[AccountNo, Query(description="the account to follow the money from")],
    since: Annotated[QueryTime, Query(description="its outgoing transfers from (ISO 8601)")],
    until: Annotated[QueryTime, Query(description="until (ISO 8601), after since")],
    _: Principal = Depends(require(Role.ANALYST)),
) -> TrailView:
    if until <= since:
        raise Invalid("until_before_since", "until must be after since")
    thresholds = request.app.state.thresholds
    redis = get_redis(request)
    question = FraudReportRequest(victim_account=account, start=since, end=until, reason="console view")
    trail, _holds = await follow(
        HoldLedger.configured(redis, thresholds.holds),
        TransferIndex.configured(redis, thresholds.holds.trail),
        question,
        thresholds.holds.trail,
    )
    return view_of(account, since, until, trail)
