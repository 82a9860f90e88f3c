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
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field
from redis.asyncio import Redis

from antifraud.events.models import BankTransfer
from antifraud.events.types import UtcTime
from antifraud.holds.policy import needs_hold
from antifraud.state.accounts import FLAG_PREFIX, PREFIX as ACCOUNT_PREFIX, AccountInfo, decode_info
from antifraud.state.interception import REACHED
from antifraud.state.transfer_risk import BLACKLIST, decode_call, decode_state
from antifraud.thresholds import FeatureRule, Thresholds, TransferRiskThresholds
from antifraud.web.auth import Principal, Role, require
from detectors.transfer_risk import DETECTOR, MULE_DETECTOR, AccountState, Context, detect

CHECK_EVENT_ID = "pre-transfer-check"
"""The event id of the transfer a check scores; it is never stored, and no client may choose it (an id of
a transfer already scored would make the detector skip it as a replay)."""


class Decision(StrEnum):
    ALLOW = "allow"
    WARN = "warn"
    HOLD = "hold"
    BLOCK = "block"


_RANK = {decision: rank for rank, decision in enumerate(Decision)}
"""The strongest reason decides: allow < warn < hold < block."""

_BY_SEVERITY = {"critical": Decision.BLOCK, "high": Decision.HOLD, "medium": Decision.WARN, "low": Decision.WARN}

_MESSAGES: dict[str, str] = {
    "blacklisted_payee": "the payee account is on the credit blacklist",
    "call_before_hours_max": "a listed or flagged number called the payer {value:g} h ago",
    "flagged_call_minutes": "the payer was on the line with that number for {value:g} min",
    "new_payee": "the payer never paid this account before",
    "amount_multiple": "the amount is {value:g} times the payer's usual largest payment",
    "structuring_share": "the amount is just under a reporting limit ({value:.0%} of it)",
    "hour_habit_max": "the payer rarely pays at this hour",
    "channel_habit_max": "the payer rarely uses this channel",
    "payee_fan_in": "the payee received money from {value:g} payers in a day",
    "payee_flagged": "the payee is a suspected mule account",
    "payer_flagged": "the payer's account is a suspected mule: this payee would be the next hop",
    "payee_account_age_days_max": "the payee account was opened {value:g} days ago by someone else",
    "payer_pass_through_share": "the payer moved on {value:.0%} of what it received in the last half hour",
    "payer_fan_in_payers": "the payer received money from {value:g} payers in a day",
    "payee_pass_through_share": "the payee moved on {value:.0%} of what it received in the last half hour",
    "payee_fan_in_payers": "with this transfer the payee has received money from {value:g} payers in a day",
    "atm_other_name": "an ATM transfer to an account in another name: the money arrives after {value:g} h",
    "payee_holder_bulk_opener": "the payee's holder is flagged for opening many cards (a likely sold card)",
}


def _now() -> datetime:
    return datetime.now(timezone.utc)


class TransferCheck(BankTransfer):
    """The transfer about to be made, as the counter or ATM knows it: a transfer event that has not happened yet.

    Validated once, as the event it would be (a counter transfer names its branch,
    an ATM transfer its ATM), and handed to the detector as it is.
    """

    event_id: Literal["pre-transfer-check"] = Field(CHECK_EVENT_ID, description="leave out: a check is no event")
    event_time: UtcTime = Field(default_factory=_now, description="when the transfer would happen (default: now), for replays")


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
    """What Redis knows for one check."""

    states: dict[str, AccountState] = field(default_factory=dict)
    """Payer's and payee's detector states (only those that exist)."""
    context: Context = field(default_factory=Context)
    payee_holder_flagged: bool = False


def _reason(code: str, value: float | None = None, threshold: float | None = None) -> CheckReason:
    return CheckReason(code=code, message=_MESSAGES[code].format(value=value), value=value, threshold=threshold)


def _weight(feature: str, limits: TransferRiskThresholds) -> float:
    rule: FeatureRule = getattr(limits, feature)
    return rule.weight


def decide(transfer: BankTransfer, state: CheckState, thresholds: Thresholds) -> TransferCheckResult:
    """The decision on ``transfer`` given the state; pure. Reasons come strongest first (by decision, then weight)."""
    limits = thresholds.transfer_risk
    found: list[tuple[Decision, CheckReason]] = []
    score = 0.0
    for alert in detect([transfer], state.states, state.context, limits).alerts:
        prefix = ""
        if alert.detector == DETECTOR:
            level = _BY_SEVERITY[alert.severity]
            score = alert.score
        elif alert.detector == MULE_DETECTOR:  # the payer moving money on, or the payee collecting it
            level = Decision.WARN
            prefix = "payer_" if alert.entity.value == transfer.payer_account else "payee_"
        else:
            raise ValueError(f"the transfer-risk detector returned a {alert.detector} alert, which a check cannot weigh")
        features = sorted((r for r in alert.reasons if r.feature != "score"), key=lambda r: -_weight(r.feature, limits))
        found += [(level, _reason(prefix + r.feature, r.value, r.threshold)) for r in features]
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


# ARGV[1] payer, ARGV[2] payee, ARGV[3] payer phone or ''. Returns lines: payer's
# and payee's out/in/flag (as TransferRiskStore's load), the payee's blacklist
# bit, the phone's reached hash ("number value ..."), the payee's opening and
# the bulk-opener flag of its holder.
_READ = f"""
local out = {{}}
for _, account in ipairs({{ARGV[1], ARGV[2]}}) do
  out[#out + 1] = redis.call('GET', 'tr:out:' .. account) or ''
  out[#out + 1] = table.concat(redis.call('ZRANGE', 'tr:in:' .. account, 0, -1), ' ')
  out[#out + 1] = redis.call('GET', 'tr:flag:' .. account) or ''
end
out[#out + 1] = tostring(redis.call('SISMEMBER', '{BLACKLIST}', ARGV[2]))
out[#out + 1] = ARGV[3] ~= '' and table.concat(redis.call('HGETALL', '{REACHED}' .. ARGV[3]), ' ') or ''
local opened = redis.call('GET', '{ACCOUNT_PREFIX}' .. ARGV[2]) or ''
out[#out + 1] = opened
local holder = string.match(opened, '^[^\\31]*\\31([^\\31]*)')
out[#out + 1] = holder and redis.call('GET', '{FLAG_PREFIX}' .. holder) or ''
return table.concat(out, '\\n')
"""


class CheckReader:
    """Reads a check's :class:`CheckState` in one script call."""

    def __init__(self, redis: Redis) -> None:
        self._read = redis.register_script(_READ)

    async def read(self, transfer: BankTransfer) -> CheckState:
        phone = transfer.payer_phone or ""
        lines: Sequence[bytes] = (
            await self._read(args=[transfer.payer_account, transfer.payee_account, phone])
        ).split(b"\n")
        accounts = (transfer.payer_account, transfer.payee_account)
        states = {a: decode_state(*lines[3 * i : 3 * i + 3]) for i, a in enumerate(accounts) if any(lines[3 * i : 3 * i + 3])}
        blacklisted, reached, opened, holder_flag = lines[6:10]
        parts = reached.split()
        calls = {parts[i].decode(): decode_call(parts[i + 1]) for i in range(0, len(parts), 2)}
        opening: dict[str, AccountInfo] = {transfer.payee_account: decode_info(opened)} if opened else {}
        context = Context(
            blacklisted=frozenset({transfer.payee_account}) if blacklisted == b"1" else frozenset(),
            reached={phone: calls} if calls else {},
            opened=opening,
        )
        return CheckState(states=states, context=context, payee_holder_flagged=bool(holder_flag))


router = APIRouter(prefix="/api", tags=["check"])


@router.post("/check", response_model=TransferCheckResult, summary="pre-transfer check: allow, warn, hold or block, with reasons")
async def check(
    body: TransferCheck,
    request: Request,
    principal: Principal = Depends(require(Role.TELLER, Role.ANALYST)),
) -> TransferCheckResult:
    """A teller may check only transfers at their own branch's counter."""
    if principal.role is Role.TELLER and body.branch_id != principal.branch_id:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"a teller of branch {principal.branch_id} checks transfers at that branch only"
        )
    state = await request.app.state.check_reader.read(body)
    return decide(body, state, request.app.state.thresholds)
