"""Suspicious transfers and mule accounts (plan (一)1 items 1 and 6).

Two alerts, both on the suspicious party, never on the payer (a victim is not a suspect):

- ``transfer_risk``: one transfer scored on the payer's side (a call from a
  listed or flagged number hours before, a payee never paid before, an amount
  several times the payer's usual largest outflow, an amount structured just
  under a reporting limit, an hour or channel the payer never uses) and the
  payee's (blacklisted, already flagged, collecting from many payers, opened
  days ago and not the payer's own: the account registry's openings are an
  input) and the money trail (the payer is a flagged mule: the payee is its
  next hop). The entity is the payee account; the counter or ATM where the
  payer stands, the bank's risk team and (when severe) the police are the
  audience.
- ``mule_account``: an account that moves most of what it received on within
  minutes and collects from several payers.

There is no balance field: the payer's largest outflow in the history stands
for what they usually move. State per account (``AccountState``): recent
outflows (payees, amounts, hours, channels), recent inflows of scored size, and
until when the account is flagged. A transfer already in the state is not
scored again, and features only count state at or before the transfer, so a
replay gives the same alerts with the same ids; state is written whole from the
prior state, so writing it twice changes nothing.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import NamedTuple

import numpy as np

from antifraud.alerts.models import Alert, Audience, Entity, Reason
from antifraud.events.models import BankTransfer
from antifraud.state.accounts import AccountInfo
from antifraud.thresholds import FeatureRule, TransferRiskThresholds

DETECTOR = "transfer_risk"
MULE_DETECTOR = "mule_account"
MAX_EVIDENCE = 50
HABIT_HOURS = 2
"""An hour of day within this many hours of a past outflow's is habitual."""


class Flow(NamedTuple):
    """One transfer as an account's state keeps it; ``other`` is the counterpart account.

    A named tuple, not a dataclass: states decode tens of these per transfer (and per
    pre-transfer check), and a tuple is built several times faster."""

    event_id: str
    at: float
    other: str
    amount_fen: int
    channel: str
    own: bool
    """Payer and payee in the same name: money between one's own accounts."""


@dataclass(frozen=True)
class AccountState:
    outflows: tuple[Flow, ...] = ()
    inflows: tuple[Flow, ...] = ()
    """Only inflows of at least ``min_amount_fen``."""
    flagged_until: float = 0.0
    """The account is a suspected mule until then: no new mule alert, its payees are next hops."""


@dataclass(frozen=True)
class Call:
    """A listed or flagged number's contact with a payer's phone."""

    last_at: float
    """Epoch of its last call."""
    longest_s: int
    """Its longest call: a victim is kept on the line, a stranger hangs up."""


@dataclass(frozen=True)
class Context:
    """What Redis knows besides account states: the blacklist, calls from flagged numbers, payees' openings."""

    blacklisted: frozenset[str] = frozenset()
    reached: Mapping[str, Mapping[str, Call]] = field(default_factory=dict)
    """Payer phone -> {listed or flagged number: its calls to that phone}."""
    opened: Mapping[str, AccountInfo] = field(default_factory=dict)
    """Payee account -> its opening, for the payees the account registry knows (the others count as old)."""


@dataclass
class TransferRiskResult:
    alerts: list[Alert]
    states: dict[str, AccountState]
    """The new state of every account whose state changed."""


def _local_hour(at: np.ndarray | float, limits: TransferRiskThresholds) -> np.ndarray:
    return ((np.asarray(at) + limits.utc_offset_hours * 3600) % 86400) // 3600


def _hit(name: str, value: float, rule: FeatureRule) -> bool:
    """A name ending ``_max`` must stay at or under its threshold; others must reach it."""
    return value <= rule.threshold if name.endswith("_max") else value >= rule.threshold


def structuring_share(amount_fen: int, channel: str, limits: TransferRiskThresholds) -> float:
    """The amount as a share of the lowest reporting limit of the channel it stays under (0 when none)."""
    above = [limit for limit in limits.reporting_limits_fen.get(channel, []) if amount_fen < limit]
    return amount_fen / min(above) if above else 0.0


def payer_features(transfer: BankTransfer, payer: AccountState, ctx: Context, limits: TransferRiskThresholds
                   ) -> dict[str, float]:
    """Payer-side features of a transfer, from the payer's outflows before it."""
    at = transfer.event_time.timestamp()
    past = [f for f in payer.outflows if f.at < at and not f.own]
    values: dict[str, float] = {"new_payee": float(all(f.other != transfer.payee_account for f in past))}
    usual = max((f.amount_fen for f in past), default=0)
    values["amount_multiple"] = transfer.amount_fen / max(usual, limits.min_amount_fen)
    values["structuring_share"] = structuring_share(transfer.amount_fen, transfer.channel, limits)
    calls = ctx.reached.get(transfer.payer_phone or "", {}).values()
    recent = [c for c in calls if 0 <= at - c.last_at <= limits.call_window_seconds]
    if recent:
        values["call_before_hours_max"] = round(min(at - c.last_at for c in recent) / 3600, 2)
        values["flagged_call_minutes"] = round(max(c.longest_s for c in recent) / 60, 2)
    if len(past) >= limits.min_history:
        hours = _local_hour(np.array([f.at for f in past]), limits)
        gap = np.abs(hours - _local_hour(at, limits))
        values["hour_habit_max"] = float(np.count_nonzero(np.minimum(gap, 24 - gap) <= HABIT_HOURS))
        values["channel_habit_max"] = float(sum(f.channel == transfer.channel for f in past))
    return values


def _own(transfer: BankTransfer) -> bool:
    """Payer and payee in the same name: money between one's own accounts."""
    return transfer.payer_name == transfer.payee_name


def payee_age_days(transfer: BankTransfer, ctx: Context) -> float | None:
    """Days since the payee account was opened; None when it is the payer's own, unknown (old) or not yet open."""
    info = ctx.opened.get(transfer.payee_account)
    at = transfer.event_time.timestamp()
    if info is None or info.opened_at > at or _own(transfer) or info.holder_id_number == transfer.payer_id_number:
        return None
    return round(info.age_days(at), 2)


def fan_in(state: AccountState, at: float, limits: TransferRiskThresholds) -> int:
    """Distinct payers in other names into the account over the fan-in window up to ``at``."""
    since = at - limits.fan_in_window_seconds
    return len({f.other for f in state.inflows if since < f.at <= at and not f.own})


def pass_through(state: AccountState, at: float, limits: TransferRiskThresholds) -> float:
    """Share of the inflows (other names) of the last half hour moved on to other names by ``at``."""
    since = at - limits.pass_through_seconds
    received = sum(f.amount_fen for f in state.inflows if since < f.at <= at and not f.own)
    if not received:
        return 0.0
    moved = sum(f.amount_fen for f in state.outflows if since < f.at <= at and not f.own)
    return round(min(1.0, moved / received), 4)


def _rule(name: str, limits: TransferRiskThresholds) -> FeatureRule:
    rule: FeatureRule = getattr(limits, name)
    return rule


def _score(values: Mapping[str, float], limits: TransferRiskThresholds) -> tuple[float, list[Reason]]:
    """Sum of the weights of the features past their thresholds, and those features as reasons."""
    reasons = [
        Reason(feature=name, value=round(value, 4), threshold=_rule(name, limits).threshold)
        for name, value in values.items()
        if _hit(name, value, _rule(name, limits))
    ]
    return round(sum(_rule(r.feature, limits).weight for r in reasons), 4), reasons


def _audience(transfer: BankTransfer, police: bool) -> list[Audience]:
    """The counter or ATM where the payer stands (a live warning), the bank's risk team, police when severe."""
    audience = []
    if transfer.branch_id is not None:
        audience.append(Audience(kind="branch", id=transfer.branch_id))
    if transfer.atm_id is not None:
        audience.append(Audience(kind="atm", id=transfer.atm_id))
    audience.append(Audience(kind="bank_risk"))
    if police:
        audience.append(Audience(kind="police"))
    return audience


def _transfer_alert(transfer: BankTransfer, total: float, reasons: list[Reason], limits: TransferRiskThresholds
                    ) -> Alert:
    strongest = {r.feature for r in reasons} & {"call_before_hours_max", "blacklisted_payee"}
    severity = "critical" if strongest else "high" if total >= limits.alert_score + 0.25 else "medium"
    reasons = [*reasons, Reason(feature="score", value=total, threshold=limits.alert_score)]
    return Alert.create(
        detector=DETECTOR, entity=Entity(kind="account", value=transfer.payee_account),
        window_start=transfer.event_time, window_end=transfer.event_time, severity=severity, score=total,
        reasons=reasons, evidence_event_ids=[transfer.event_id],
        audience=_audience(transfer, police=severity in ("critical", "high")),
    )


def _mule_alert(account: str, state: AccountState, at: float, total: float, reasons: list[Reason],
                limits: TransferRiskThresholds) -> Alert:
    since = at - limits.fan_in_window_seconds
    flows = sorted((f for f in (*state.inflows, *state.outflows) if since < f.at <= at), key=lambda f: (f.at, f.event_id))
    end = datetime.fromtimestamp(at, timezone.utc)
    return Alert.create(
        detector=MULE_DETECTOR, entity=Entity(kind="account", value=account),
        window_start=datetime.fromtimestamp(since, timezone.utc), window_end=end,
        severity="high", score=total,
        reasons=[*reasons, Reason(feature="score", value=total, threshold=limits.mule_alert_score)],
        evidence_event_ids=[f.event_id for f in flows[-MAX_EVIDENCE:]],
        audience=[Audience(kind="bank_risk"), Audience(kind="police")],
    )


def _kept(flows: Sequence[Flow], horizon: float, cap: int) -> tuple[Flow, ...]:
    return tuple(sorted((f for f in flows if f.at > horizon), key=lambda f: (f.at, f.event_id))[-cap:])


class _Accounts:
    """The batch's account states as they evolve, transfer by transfer."""

    def __init__(self, prior: Mapping[str, AccountState], limits: TransferRiskThresholds) -> None:
        self.states = dict(prior)
        self.changed: set[str] = set()
        self.limits = limits

    def get(self, account: str) -> AccountState:
        return self.states.get(account, AccountState())

    def record(self, transfer: BankTransfer) -> None:
        """Add the transfer to its payer's outflows and (if large enough) its payee's inflows."""
        at, limits = transfer.event_time.timestamp(), self.limits
        own = _own(transfer)
        payer = self.get(transfer.payer_account)
        out = Flow(transfer.event_id, at, transfer.payee_account, transfer.amount_fen, transfer.channel, own)
        self._set(transfer.payer_account, replace(payer, outflows=_kept(
            [*payer.outflows, out], at - limits.history_days * 86400, limits.max_outflows_kept)))
        if transfer.amount_fen >= limits.min_amount_fen:
            payee = self.get(transfer.payee_account)
            inflow = Flow(transfer.event_id, at, transfer.payer_account, transfer.amount_fen, transfer.channel, own)
            self._set(transfer.payee_account, replace(payee, inflows=_kept(
                [*payee.inflows, inflow], at - limits.fan_in_window_seconds, limits.max_inflows_kept)))

    def flag(self, account: str, until: float) -> None:
        state = self.get(account)
        if until > state.flagged_until:
            self._set(account, replace(state, flagged_until=until))

    def _set(self, account: str, state: AccountState) -> None:
        self.states[account] = state
        self.changed.add(account)


def _mule_check(account: str, accounts: _Accounts, at: float, limits: TransferRiskThresholds) -> Alert | None:
    """A mule alert on ``account`` if its pattern at ``at`` scores and it is not flagged already."""
    state = accounts.get(account)
    if at < state.flagged_until:
        return None
    total, reasons = _score({"pass_through_share": pass_through(state, at, limits),
                             "fan_in_payers": float(fan_in(state, at, limits))}, limits)
    if total < limits.mule_alert_score:
        return None
    accounts.flag(account, at + limits.quiet_seconds)
    return _mule_alert(account, state, at, total, reasons, limits)


def detect(transfers: Sequence[BankTransfer], prior: Mapping[str, AccountState], ctx: Context,
           limits: TransferRiskThresholds) -> TransferRiskResult:
    """Score every new transfer of the batch (any order) in event-time order; alert on the suspicious party."""
    accounts = _Accounts(prior, limits)
    alerts: list[Alert] = []
    order = sorted(transfers, key=lambda t: (t.event_time, t.event_id))
    for transfer in order:
        payer = accounts.get(transfer.payer_account)
        if any(f.event_id == transfer.event_id for f in payer.outflows):
            continue  # already scored: a replay
        at = transfer.event_time.timestamp()
        accounts.record(transfer)
        # The payer moving money on may reveal it as a mule before this transfer is judged.
        mule = _mule_check(transfer.payer_account, accounts, at, limits)
        alerts += [mule] if mule else []
        if transfer.amount_fen < limits.min_amount_fen and transfer.payee_account not in ctx.blacklisted:
            continue
        payee = accounts.get(transfer.payee_account)
        values = payer_features(transfer, payer, ctx, limits)
        values["blacklisted_payee"] = float(transfer.payee_account in ctx.blacklisted)
        values["payee_fan_in"] = float(fan_in(payee, at, limits))
        values["payee_flagged"] = float(at < payee.flagged_until)
        values["payer_flagged"] = float(at < accounts.get(transfer.payer_account).flagged_until)
        if (age := payee_age_days(transfer, ctx)) is not None:
            values["payee_account_age_days_max"] = age
        total, reasons = _score(values, limits)
        if total >= limits.alert_score:
            alerts.append(_transfer_alert(transfer, total, reasons, limits))
            accounts.flag(transfer.payee_account, at + limits.quiet_seconds)
        else:
            mule = _mule_check(transfer.payee_account, accounts, at, limits)
            alerts += [mule] if mule else []
    return TransferRiskResult(alerts=alerts, states={a: accounts.states[a] for a in accounts.changed})
