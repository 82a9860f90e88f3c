"""The pre-transfer check: a teller (or an ATM) asks before the money moves; allow, warn, hold or block, with reasons.

The check runs the transfer-risk detector itself over the transfer as if it
happened now, against the state the worker keeps (payer and payee histories,
mule flags, the credit blacklist, calls from listed or flagged numbers to the
payer's phone, the payee's opening), so a check and a later alert never
disagree. It adds what only matters before a transfer: the 24-hour ATM hold to
another name, and a payee account whose holder is flagged for bulk card opening
(a likely sold card). Decision, strongest first:

- block: the detector would raise a critical alert (the payer was just on the
  line with a listed or flagged number, or the payee is blacklisted);
- hold: a high alert, or an ATM transfer to an account in another name;
- warn: a medium alert, the payer itself looks like a mule, or the payee's holder
  is a flagged bulk opener;
- allow: none of these.

The state is read in one Redis round trip (one script); the decision is pure.

Issue 8 gives the check a budget: p99 at most 5 ms at 1,000 checks a second on a
two-core machine (``benchmarks/bench_check.py``). So the route is served lean:
:class:`CheckFastPath` hands ``POST /api/check`` straight to :class:`_LeanRoute`,
which authenticates, validates the body from its bytes and answers with the
serialized result, skipping FastAPI's per-request machinery while the endpoint's
signature keeps documenting it; and the script call is pipelined on a Redis
connection of its own (:mod:`antifraud.state.pipelined`).
"""

import copy
import email.message
import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field, ValidationError
from redis.asyncio import Redis
from starlette.types import ASGIApp, Receive, Scope, Send

from antifraud.alerts.explain import SCORES, explain
from antifraud.alerts.models import Reason
from antifraud.clock import utcnow
from antifraud.events.models import BankTransfer
from antifraud.events.types import UtcTime
from antifraud.holds.policy import needs_hold
from antifraud.refusals import Forbidden, Refusal
from antifraud.state import keys as keys_
from antifraud.state.accounts import OpenedCodec
from antifraud.state.pipelined import PipelinedScript
from antifraud.state.store import SCORED_ROWS, parse_scored
from antifraud.state.transfer_risk import CallCodec, FlagCodec, InflowCodec, account_codec
from antifraud.thresholds import Thresholds, TransferRiskThresholds
from antifraud.web.auth import Principal, Role, require
from antifraud.web.metrics import CHECK_DECISIONS
from detectors.accounts import AccountInfo
from detectors.baseline import Baseline
from detectors.transfer_risk import (
    DETECTOR,
    MULE_DETECTOR,
    Account,
    Call,
    Flag,
    Flow,
    detect,
    in_force,
    mule_verdict,
    own,
    rule_of,
)

CHECK_EVENT_ID: Final = "pre-transfer-check"
"""The event id of the transfer a check scores; it is never stored, and no client may choose it (an id of
a transfer already scored would make the detector skip it as a replay)."""


class Decision(StrEnum):
    ALLOW = "allow"
    WARN = "warn"
    HOLD = "hold"
    BLOCK = "block"


F = TypeVar("F")

_RANK = {decision: rank for rank, decision in enumerate(Decision)}
"""The strongest reason decides: allow < warn < hold < block."""

_BY_SEVERITY = {"critical": Decision.BLOCK, "high": Decision.HOLD, "medium": Decision.WARN, "low": Decision.WARN}


class TransferCheck(BankTransfer):
    """The transfer about to be made, as the counter or ATM knows it: a transfer event that has not happened yet.

    Validated once, as the event it would be (a counter transfer names its branch,
    an ATM transfer its ATM), and handed to the detector as it is.
    """

    event_id: Literal["pre-transfer-check"] = Field(CHECK_EVENT_ID, description="leave out: a check is no event")
    event_time: UtcTime = Field(
        default_factory=utcnow, description="when the transfer would happen (default: now), for replays"
    )


class CheckReason(BaseModel):
    code: str
    message: str
    value: float | None = None
    threshold: float | None = None


class TransferCheckResult(BaseModel):
    decision: Decision
    reasons: list[CheckReason]
    score: float = Field(description="the score of the transfer-risk alert the detector would raise (0: no alert)")
    alert_score: float = Field(description="the score at which the detector alerts")


@dataclass(frozen=True)
class CheckState:
    """What Redis knows for one check: the payer's and payee's own sides and the facts about them."""

    accounts: dict[str, Account] = field(default_factory=dict)
    """Payer's and payee's own sides (empty ones for accounts Redis does not know)."""
    facts: "CheckFacts" = field(default_factory=lambda: CheckFacts())
    payee_holder_flagged: bool = False


@dataclass(frozen=True)
class CheckFacts:
    """The facts a check reads, as the detector's :class:`~detectors.transfer_risk.View`: everything known
    now (a check is not bound to the stream's cross-entity delay; it asks what is known at the counter)."""

    inflows_by: dict[str, list[Flow]] = field(default_factory=dict)
    flags_by: dict[str, list[Flag]] = field(default_factory=dict)
    reached_by: dict[str, list[Call]] = field(default_factory=dict)
    opened_by: dict[str, AccountInfo] = field(default_factory=dict)
    blacklisted_accounts: frozenset[str] = frozenset()

    def inflows(self, account: str, at: float) -> Sequence[Flow]:
        return [f for f in self.inflows_by.get(account, ()) if f.at <= at]

    def flags(self, account: str, at: float) -> Sequence[Flag]:
        return [f for f in self.flags_by.get(account, ()) if f.at <= at]

    def reached(self, phone: str, at: float) -> Sequence[Call]:
        return [c for c in self.reached_by.get(phone, ()) if c.at <= at]

    def opened(self, account: str, at: float) -> AccountInfo | None:
        return self.opened_by.get(account)

    def blacklisted(self, account: str) -> bool:
        return account in self.blacklisted_accounts


def _reason(code: str, value: float | None = None, threshold: float | None = None) -> CheckReason:
    return CheckReason(code=code, message=explain(code, value), value=value, threshold=threshold)


def _weight(reason: Reason, limits: TransferRiskThresholds) -> float:
    """What a reason adds to its score: a rule's weight, or a population reason's rarity."""
    return reason.rarity if reason.rarity is not None else rule_of(reason.feature, limits).weight


def _ranked(
    reasons: Sequence[Reason], level: Decision, prefix: str, limits: TransferRiskThresholds
) -> list[tuple[Decision, CheckReason]]:
    features = sorted((r for r in reasons if r.feature not in SCORES), key=lambda r: -_weight(r, limits))
    return [(level, _reason(prefix + r.feature, r.value, r.threshold)) for r in features]


def decide(
    transfer: BankTransfer, state: CheckState, thresholds: Thresholds, population: Baseline | None = None
) -> TransferCheckResult:
    """The decision on ``transfer`` given the state; pure. Reasons come strongest first (by decision, then weight).

    The transfer is scored as the detector would score it, and both sides are checked for a mule as the
    detector checks them: the payer moving money on (its own transfer), the payee collecting it (the
    payment as one more inflow)."""
    limits = thresholds.transfer_risk
    found: list[tuple[Decision, CheckReason]] = []
    score = 0.0
    at = transfer.event_time.timestamp()
    payer = copy.deepcopy(state.accounts.get(transfer.payer_account, Account()))
    scored = detect([transfer], {transfer.payer_account: payer}, state.facts, limits, population)
    for alert in scored.alerts:
        if alert.detector == DETECTOR:
            score = alert.score
            found += _ranked(alert.reasons, _BY_SEVERITY[alert.severity], "", limits)
        elif alert.detector == MULE_DETECTOR:
            found += _ranked(alert.reasons, Decision.WARN, "payer_", limits)
        else:
            raise ValueError(
                f"the transfer-risk detector returned a {alert.detector} alert, which a check cannot weigh"
            )
    payee = state.accounts.get(transfer.payee_account, Account())
    if (
        transfer.amount_fen >= limits.min_amount_fen
        and at >= payee.quiet_until
        and not in_force(state.facts.flags(transfer.payee_account, at), at)
    ):
        inflow = Flow(
            transfer.event_id, at, transfer.payer_account, transfer.amount_fen, transfer.channel, own(transfer)
        )
        inflows = [*state.facts.inflows(transfer.payee_account, at), inflow]
        verdict = mule_verdict(inflows, payee, at, limits, population)
        if verdict is not None:
            found += _ranked(verdict[1], Decision.WARN, "payee_", limits)
    if needs_hold(transfer):
        found.append((Decision.HOLD, _reason("atm_other_name", thresholds.holds.period_hours)))
    if state.payee_holder_flagged:
        found.append((Decision.WARN, _reason("payee_holder_bulk_opener")))
    found.sort(key=lambda item: -_RANK[item[0]])
    return TransferCheckResult(
        decision=found[0][0] if found else Decision.ALLOW,
        reasons=[reason for _, reason in found],
        score=score,
        alert_score=limits.alert_score,
    )


# KEYS: per account (payer, payee) its outflows and quiet key, then the payee's inflows, the payee's
# and the payer's flags, the payer phone's reached calls, the payee's opening, the blacklist; ARGV[1] the
# payee. Per sorted set a ``scored`` string, the quiet epochs, the blacklist bit.
_READ = (
    SCORED_ROWS
    + """
local out = {}
for k = 1, 4, 2 do
  out[#out + 1] = scored(KEYS[k])
  out[#out + 1] = redis.call('GET', KEYS[k + 1]) or ''
end
for k = 5, 9 do out[#out + 1] = scored(KEYS[k]) end
out[#out + 1] = tostring(redis.call('SISMEMBER', KEYS[10], ARGV[1]))
return out
"""
)
_READ_KEYS = 10
_NO_PHONE = keys_.REACHED.key()
"""The reached key of no phone: an empty set (a script gets all its keys through KEYS)."""


def _facts(row: bytes, decode: Callable[[str, str, float], F], key: str) -> list[F]:
    return [decode(key, member, at) for at, member in parse_scored(row)]


class CheckReader:
    """Reads a check's :class:`CheckState` in one script call (pipelined: see :mod:`antifraud.state.pipelined`),
    and a second only when the payee was opened lately (whether its holder is a flagged bulk opener)."""

    def __init__(self, redis: Redis, limits: TransferRiskThresholds) -> None:
        self._redis = redis
        self._accounts = account_codec(limits)
        self._read = PipelinedScript(redis, _READ, numkeys=_READ_KEYS)

    async def read(self, transfer: BankTransfer) -> CheckState:
        payer, payee, phone = transfer.payer_account, transfer.payee_account, transfer.payer_phone or ""
        keys = [
            *self._accounts.keys(payer),
            *self._accounts.keys(payee),
            keys_.INFLOWS.key(payee),
            keys_.FLAGS.key(payee),
            keys_.FLAGS.key(payer),
            keys_.REACHED.key(phone) if phone else _NO_PHONE,
            keys_.OPENED.key(payee),
            keys_.BLACKLIST.key(),
        ]
        reply = await self._read(*keys, payee)
        assert isinstance(reply, list)
        accounts = self._accounts.parse([payer, payee], reply[:4])
        inflows, payee_flags, payer_flags, reached, opened = reply[4:9]
        openings = _facts(opened, OpenedCodec().decode, payee)
        facts = CheckFacts(
            inflows_by={payee: _facts(inflows, InflowCodec().decode, payee)},
            flags_by={
                payee: _facts(payee_flags, FlagCodec().decode, payee),
                payer: _facts(payer_flags, FlagCodec().decode, payer),
            },
            reached_by={phone: _facts(reached, CallCodec().decode, phone)} if phone else {},
            opened_by={payee: openings[-1]} if openings else {},
            blacklisted_accounts=frozenset({payee}) if reply[9] == b"1" else frozenset(),
        )
        flagged = False
        if openings:
            flagged = bool(await self._redis.exists(keys_.BULK_OPENERS.key(openings[-1].holder_id_number)))
        return CheckState(accounts=accounts, facts=facts, payee_holder_flagged=flagged)

    async def aclose(self) -> None:
        await self._read.aclose()


may_check = require(Role.TELLER, Role.ANALYST)
"""Tellers (at their own branch) and analysts check transfers; called directly by the lean route below."""

_JSON_TYPES = frozenset({"application/json", "application/json; charset=utf-8"})


def _is_json(content_type: str | None) -> bool:
    """FastAPI's rule: an ``application/json`` or ``application/*+json`` body is JSON, anything else is not."""
    if content_type is None:
        return False
    if content_type in _JSON_TYPES:
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def parse_check(raw: bytes, content_type: str | None) -> TransferCheck:
    """The request body as a :class:`TransferCheck`, or the 422 (400) FastAPI would send for it, word for word.

    A good body is validated straight from its bytes; a bad one goes the way FastAPI reads
    bodies (``json.loads``, then validation of the object), so error lists and messages are
    the ones every other route gives.
    """
    is_json = _is_json(content_type)
    if raw and is_json:
        try:
            return TransferCheck.model_validate_json(raw)
        except ValidationError:
            pass  # what is wrong is said below, in FastAPI's words
    if not raw:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    body: object = raw
    if is_json:
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RequestValidationError(
                [
                    {
                        "type": "json_invalid",
                        "loc": ("body", exc.pos),
                        "msg": "JSON decode error",
                        "input": {},
                        "ctx": {"error": exc.msg},
                    }
                ],
                body=exc.doc,
            ) from exc
        except (ValueError, RecursionError) as exc:  # not UTF-8, -16 or -32; nested deeper than json can read
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "There was an error parsing the body") from exc
    try:
        return TransferCheck.model_validate(body, from_attributes=True)  # as FastAPI validates a body
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors, body=body) from exc


class _LeanRoute(APIRoute):
    """Serves :func:`check` by calling it directly: caller, body and response in a few plain calls.

    The endpoint's signature still declares the body, the role dependency and the response
    model, so the OpenAPI document is FastAPI's own. What is skipped per request is
    FastAPI's machinery around the endpoint (dependency solving, a second JSON pass,
    response validation, the exit stacks for dependencies with ``yield``, of which this
    route has none): it cost about as much CPU as the check's own work (issue 8: p99 <= 5 ms
    at 1,000 checks a second on two cores). Errors (401, 403, 422) are answered by the app's own
    exception handlers, so they read as every route's.
    """

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:  # FastAPI's 405
            await super().handle(scope, receive, send)
            return
        request = Request(scope, receive, send)
        try:
            principal = await may_check(request)
            body = parse_check(await request.body(), request.headers.get("content-type"))
            response = await check(body, request, principal)
        except (HTTPException, RequestValidationError, Refusal) as exc:
            response = await _handled(request, exc)
        await response(scope, receive, send)


async def _handled(request: Request, exc: Exception) -> Response:
    """The response the app's exception handler for ``exc`` gives (looked up by class, as Starlette does)."""
    handlers = request.app.exception_handlers
    handler = next(handlers[cls] for cls in type(exc).__mro__ if cls in handlers)
    response = handler(request, exc)
    return await response if inspect.isawaitable(response) else response


class CheckFastPath:
    """ASGI middleware: ``POST /api/check`` goes straight to its route, past the routing and the
    exception and exit-stack middlewares (about 100 µs of CPU a request, a fifth of the check's);
    every other request, and the check under another path (a ``root_path``), is routed as usual."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.route = next(route for route in router.routes if isinstance(route, _LeanRoute))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == self.route.path:
            await self.route.handle(scope, receive, send)
        else:
            await self.app(scope, receive, send)


router = APIRouter(prefix="/api", tags=["check"], route_class=_LeanRoute)


@router.post(
    "/check", response_model=TransferCheckResult, summary="pre-transfer check: allow, warn, hold or block, with reasons"
)
async def check(body: TransferCheck, request: Request, principal: Principal = Depends(may_check)) -> Response:
    """A teller may check only transfers at their own branch's counter."""
    if principal.role is Role.TELLER and body.branch_id != principal.branch_id:
        raise Forbidden(
            "other_branch",
            f"a teller of branch {principal.branch_id} checks transfers at that branch only",
            branch=body.branch_id,
        )
    state = await request.app.state.check_reader.read(body)
    result = decide(body, state, request.app.state.thresholds, request.app.state.accounts_population)
    CHECK_DECISIONS.labels(result.decision.value).inc()
    return Response(result.model_dump_json(), media_type="application/json")
