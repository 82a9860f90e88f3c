"""Suspicious transfers and mule accounts (plan (一)1 items 1 and 6).

Two alerts, both on the suspicious party, never on the payer (a victim is not a suspect):

- ``transfer_risk``: one transfer scored on the payer's side (a call from a
  listed or flagged number hours before, a payee never paid before, an amount
  several times the payer's usual largest outflow, an amount structured just
  under a reporting limit, an hour or channel the payer never uses) and the
  payee's (blacklisted, already flagged, collecting from many payers, opened
  days ago and not the payer's own) and the money trail (the payer is a flagged
  mule: the payee is its next hop). The entity is the payee account; the counter
  or ATM where the payer stands, the bank's risk team and (when severe) the
  police are the audience.
- ``mule_account``: an account that moves most of what it received on within
  minutes and collects from several payers: checked when it pays (its own
  transfer) and when it is paid (an :class:`InflowCheck`, the message its payer's
  side sends it).

There is no balance field: the payer's largest outflow in the history stands for
what they usually move. An account's own outflows and its quiet period are its
state (:class:`Account`, written only by the owner of its partition); what other
accounts' transfers say about it (its inflows, flags on it) and what calls and
openings say (a listed number reached the payer, the payee was opened days ago)
are facts, seen the cross-entity delay after they happened (:class:`View`), so a
worker that owns only some accounts concludes what one owning all would.
"""

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import NamedTuple, Protocol

import numpy as np

from antifraud.alerts.models import Alert, Audience, Entity, Reason, TransferFacts
from antifraud.events.models import BankTransfer
from antifraud.thresholds import FeatureRule, TransferRiskThresholds
from detectors.accounts import AccountInfo
from detectors.baseline import Baseline, relative_score

DETECTOR = "transfer_risk"
MULE_DETECTOR = "mule_account"
MAX_EVIDENCE = 50
HABIT_HOURS = 2
"""An hour of day within this many hours of a past outflow's is habitual."""


class Flow(NamedTuple):
    """One transfer as an account's state or facts keep it; ``other`` is the counterpart account.

    A named tuple, not a dataclass: states decode tens of these per transfer (and per
    pre-transfer check), and a tuple is built several times faster."""

    event_id: str
    at: float
    other: str
    amount_fen: int
    channel: str
    own: bool
    """Payer and payee in the same name: money between one's own accounts."""


@dataclass
class Account:
    """An account's own side: its outflows (oldest first, within ``history_days``, at most
    ``max_outflows_kept``) and until when it gets no new mule alert."""

    outflows: list[Flow] = field(default_factory=list)
    quiet_until: float = 0.0


@dataclass(frozen=True)
class Call:
    """A listed or flagged number's call to a payer's phone."""

    number: str
    at: float
    """Epoch of the call's end."""
    duration_s: int
    event_id: str
    """The call's (or, for a warning that sums several calls, the warning's) id."""


@dataclass(frozen=True)
class Flag:
    """An alert on an account: it is a suspect from ``at`` until ``until``."""

    alert_id: str
    detector: str
    score: float
    at: float
    until: float


class View(Protocol):
    """What is known at event time ``at`` about other entities (facts the cross-entity delay old)."""

    def inflows(self, account: str, at: float) -> Sequence[Flow]:
        """Transfers into ``account`` of at least ``min_amount_fen``, oldest first (``other``: the payer)."""

    def flags(self, account: str, at: float) -> Sequence[Flag]: ...

    def reached(self, phone: str, at: float) -> Sequence[Call]:
        """Calls of listed or flagged numbers to ``phone``."""

    def opened(self, account: str, at: float) -> AccountInfo | None: ...

    def blacklisted(self, account: str) -> bool: ...


@dataclass(frozen=True)
class InflowCheck:
    """The message a payment sends its payee: check the payee for a mule at ``at`` (the payment's
    time plus the cross-entity delay, when the payment is a fact the payee sees)."""

    at: float
    account: str
    event_id: str
    """The payment's event id: the trigger of a mule alert it leads to."""


@dataclass
class AccountChange:
    """What to write back for an account's own side: outflows added, the new quiet period."""

    added: list[Flow] = field(default_factory=list)
    quiet_until: float | None = None


@dataclass
class TransferRiskResult:
    alerts: list[Alert] = field(default_factory=list)
    changes: dict[str, AccountChange] = field(default_factory=dict)
    inflows: list[tuple[str, Flow]] = field(default_factory=list)
    """Facts to add: (payee, the payment as its inflow)."""
    flags: list[tuple[str, Flag]] = field(default_factory=list)
    """Facts to add: (account, the alert that flags it)."""
    checks: list[InflowCheck] = field(default_factory=list)
    """Messages to payees."""


def _local_hour(at: np.ndarray | float, limits: TransferRiskThresholds) -> np.ndarray:
    return ((np.asarray(at) + limits.utc_offset_hours * 3600) % 86400) // 3600


def _hit(name: str, value: float, rule: FeatureRule) -> bool:
    """A name ending ``_max`` must stay at or under its threshold; others must reach it."""
    return value <= rule.threshold if name.endswith("_max") else value >= rule.threshold


def structuring_share(amount_fen: int, channel: str, limits: TransferRiskThresholds) -> float:
    """The amount as a share of the lowest reporting limit of the channel it stays under (0 when none)."""
    above = [limit for limit in limits.reporting_limits_fen.get(channel, []) if amount_fen < limit]
    return amount_fen / min(above) if above else 0.0


def own(transfer: BankTransfer) -> bool:
    """Payer and payee in the same name: money between one's own accounts."""
    return transfer.payer_name == transfer.payee_name


def in_force(flags: Sequence[Flag], at: float) -> bool:
    return any(f.at <= at < f.until for f in flags)


def payer_features(
    transfer: BankTransfer, payer: Account, view: View, limits: TransferRiskThresholds
) -> dict[str, float]:
    """Payer-side features of a transfer, from the payer's outflows before it and calls it received."""
    at = transfer.event_time.timestamp()
    past = [f for f in payer.outflows if f.at < at and not f.own]
    values: dict[str, float] = {"new_payee": float(all(f.other != transfer.payee_account for f in past))}
    usual = max((f.amount_fen for f in past), default=0)
    values["amount_multiple" if past else "amount_no_history"] = transfer.amount_fen / max(usual, limits.min_amount_fen)
    values["structuring_share"] = structuring_share(transfer.amount_fen, transfer.channel, limits)
    if transfer.payer_phone:
        recent = [c for c in view.reached(transfer.payer_phone, at) if 0 <= at - c.at <= limits.call_window_seconds]
        if recent:
            values["call_before_hours_max"] = round(min(at - c.at for c in recent) / 3600, 2)
            values["flagged_call_minutes"] = round(max(c.duration_s for c in recent) / 60, 2)
    if len(past) >= limits.min_history:
        hours = _local_hour(np.array([f.at for f in past]), limits)
        gap = np.abs(hours - _local_hour(at, limits))
        values["hour_habit_max"] = float(np.count_nonzero(np.minimum(gap, 24 - gap) <= HABIT_HOURS))
        values["channel_habit_max"] = float(sum(f.channel == transfer.channel for f in past))
    return values


def payee_age_days(transfer: BankTransfer, view: View) -> float | None:
    """Days since the payee account was opened; None when it is the payer's own, unknown (old) or not yet open."""
    at = transfer.event_time.timestamp()
    info = view.opened(transfer.payee_account, at)
    if info is None or info.opened_at > at or own(transfer) or info.holder_id_number == transfer.payer_id_number:
        return None
    return round(info.age_days(at), 2)


def fan_in(inflows: Sequence[Flow], at: float, limits: TransferRiskThresholds, also: str | None = None) -> int:
    """Distinct payers in other names over the fan-in window up to ``at`` (with ``also``, one more payer)."""
    since = at - limits.fan_in_window_seconds
    payers = {f.other for f in inflows if since < f.at <= at and not f.own}
    if also is not None:
        payers.add(also)
    return len(payers)


def pass_through(inflows: Sequence[Flow], outflows: Sequence[Flow], at: float, limits: TransferRiskThresholds) -> float:
    """Share of the inflows (other names) of the last half hour moved on to other names by ``at``."""
    since = at - limits.pass_through_seconds
    received = sum(f.amount_fen for f in inflows if since < f.at <= at and not f.own)
    if not received:
        return 0.0
    moved = sum(f.amount_fen for f in outflows if since < f.at <= at and not f.own)
    return round(min(1.0, moved / received), 4)


def passed_on(received: Sequence[Flow], paid: Sequence[Flow], whole: float) -> tuple[list[Flow], int]:
    """The inflows moved on nearly whole, and how many outflows moved none on. Each outflow, in time order,
    takes the earliest inflow before it not yet taken that it moves at least ``whole`` of (a cut kept, the
    rest passed on in one transfer)."""
    taken: list[Flow] = []
    left = sorted(received, key=lambda f: (f.amount_fen, f.at, f.event_id))
    amounts = [f.amount_fen for f in left]
    others = 0
    for out in sorted(paid, key=lambda f: (f.at, f.event_id)):
        # Only inflows of out.amount_fen to out.amount_fen / whole can be what it moved on: found by amount, so
        # a busy account's check costs no more than its few candidates.
        low, high = bisect.bisect_left(amounts, out.amount_fen), bisect.bisect_right(amounts, out.amount_fen / whole)
        earlier = [k for k in range(low, high) if left[k].at <= out.at]
        if not earlier:
            others += 1
            continue
        k = min(earlier, key=lambda k: (left[k].at, left[k].event_id))
        taken.append(left.pop(k))
        del amounts[k]
    return taken, others


MULE_FEATURES = ("pass_on_share", "whole_pass_ons", "passed_amount_yuan", "fan_in_payers", "other_outflows_max")
"""What the ranked mule score sees of an account (:func:`mule_features`)."""


def mule_features(
    inflows: Sequence[Flow], outflows: Sequence[Flow], at: float, limits: TransferRiskThresholds
) -> dict[str, float]:
    """How an account moved money over the pass-on window (hours to days) up to ``at``, in other names
    only: the share of what it received that it moved on nearly whole, how many inflows so, the largest of
    them, its distinct payers, and its outflows that moved nothing on (a mule has no life of its own; an
    ordinary account pays shops and friends). Judged against the population, not fixed floors: any amount
    counts (of what the worker keeps: inflows of at least ``min_amount_fen``)."""
    since = at - limits.pass_on_window_seconds
    received = [f for f in inflows if since < f.at <= at and not f.own]
    paid = [f for f in outflows if since < f.at <= at and not f.own]
    taken, others = passed_on(received, paid, limits.whole_share)
    total = sum(f.amount_fen for f in received)
    return {
        "pass_on_share": round(sum(f.amount_fen for f in taken) / total, 4) if total else 0.0,
        "whole_pass_ons": float(len(taken)),
        "passed_amount_yuan": max((f.amount_fen for f in taken), default=0) / 100,
        "fan_in_payers": float(len({f.other for f in received})),
        "other_outflows_max": float(others),
    }


SAME_RULE = {"amount_no_history": "amount_multiple"}
"""A feature judged by another's rule. A payer with no earlier payment has the amount compared with
``min_amount_fen`` under ``amount_multiple``'s rule, and the reason says there was nothing to compare with
(not "N times the payer's usual largest payment")."""


def rule_of(name: str, limits: TransferRiskThresholds) -> FeatureRule:
    rule: FeatureRule = getattr(limits, SAME_RULE.get(name, name))
    return rule


def _score(values: Mapping[str, float], limits: TransferRiskThresholds) -> tuple[float, list[Reason]]:
    """Sum of the weights of the features past their thresholds, and those features as reasons."""
    reasons = [
        Reason(feature=name, value=round(value, 4), threshold=rule_of(name, limits).threshold)
        for name, value in values.items()
        if _hit(name, value, rule_of(name, limits))
    ]
    return round(sum(rule_of(r.feature, limits).weight for r in reasons), 4), reasons


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


def score_transfer(
    transfer: BankTransfer, payer: Account, view: View, limits: TransferRiskThresholds
) -> tuple[float, list[Reason]] | None:
    """The transfer's score and the features past their thresholds; None for a small transfer to a payee
    not blacklisted (not scored). Only the payer's outflows before the transfer count."""
    if transfer.amount_fen < limits.min_amount_fen and not view.blacklisted(transfer.payee_account):
        return None
    at = transfer.event_time.timestamp()
    payee = transfer.payee_account
    values = payer_features(transfer, payer, view, limits)
    values["blacklisted_payee"] = float(view.blacklisted(payee))
    values["payee_fan_in"] = float(
        fan_in(view.inflows(payee, at), at, limits, None if own(transfer) else transfer.payer_account)
    )
    values["payee_flagged"] = float(in_force(view.flags(payee, at), at))
    values["payer_flagged"] = float(at < payer.quiet_until or in_force(view.flags(transfer.payer_account, at), at))
    if (age := payee_age_days(transfer, view)) is not None:
        values["payee_account_age_days_max"] = age
    return _score(values, limits)


def transfer_alert(
    transfer: BankTransfer, total: float, reasons: list[Reason], limits: TransferRiskThresholds
) -> Alert:
    strongest = {r.feature for r in reasons} & {"call_before_hours_max", "blacklisted_payee"}
    severity = "critical" if strongest else "high" if total >= limits.alert_score + 0.25 else "medium"
    reasons = [*reasons, Reason(feature="score", value=total, threshold=limits.alert_score)]
    return Alert.create(
        detector=DETECTOR,
        entity=Entity(kind="account", value=transfer.payee_account),
        trigger=transfer.event_id,
        window_start=transfer.event_time,
        window_end=transfer.event_time,
        severity=severity,
        score=total,
        reasons=reasons,
        evidence_event_ids=[transfer.event_id],
        audience=_audience(transfer, police=severity in ("critical", "high")),
        transfer=TransferFacts.of(transfer),
    )


def mule_score(
    inflows: Sequence[Flow], account: Account, at: float, limits: TransferRiskThresholds
) -> tuple[float, list[Reason]]:
    return _score(
        {
            "pass_through_share": pass_through(inflows, account.outflows, at, limits),
            "fan_in_payers": float(fan_in(inflows, at, limits)),
        },
        limits,
    )


def mule_population(
    inflows: Sequence[Flow], account: Account, at: float, limits: TransferRiskThresholds, population: Baseline
) -> tuple[float, list[Reason]]:
    """The ranked mule score: how rare the account's money moves (:func:`mule_features`) are together among
    the population's, and each feature as a reason with its value, the population's share as far out and
    how rare that is (its part of the score; a population reason crosses no threshold of its own)."""
    total, parts = relative_score(mule_features(inflows, account.outflows, at, limits), population)
    reasons = [
        Reason(
            feature=p.feature,
            value=p.value,
            threshold=0.0,
            population_share=round(p.beyond, 6),
            rarity=round(p.contribution, 4),
        )
        for p in parts
    ]
    return round(total, 4), reasons


def mule_verdict(
    inflows: Sequence[Flow], account: Account, at: float, limits: TransferRiskThresholds, population: Baseline | None
) -> tuple[Reason, list[Reason]] | None:
    """Whether the account is a mule at ``at``: by the rules (moved on within minutes, several payers) or,
    with the accounts' baseline, by how rare its money moves over days are together; the score (a reason
    with its threshold) and the reasons. None when neither reaches its threshold."""
    total, reasons = mule_score(inflows, account, at, limits)
    if total >= limits.mule_alert_score:
        return Reason(feature="score", value=total, threshold=limits.mule_alert_score), reasons
    if population is None:
        return None
    total, reasons = mule_population(inflows, account, at, limits, population)
    if total < limits.mule_population_score:
        return None
    return Reason(feature="population_score", value=total, threshold=limits.mule_population_score), reasons


def _mule_alert(
    name: str,
    inflows: Sequence[Flow],
    account: Account,
    at: float,
    score: Reason,
    reasons: list[Reason],
    trigger: str,
    limits: TransferRiskThresholds,
) -> Alert:
    window = limits.pass_on_window_seconds if score.feature == "population_score" else limits.fan_in_window_seconds
    since = at - window  # the evidence: the flows the verdict looked at
    flows = sorted((f for f in (*inflows, *account.outflows) if since < f.at <= at), key=lambda f: (f.at, f.event_id))
    return Alert.create(
        detector=MULE_DETECTOR,
        entity=Entity(kind="account", value=name),
        trigger=trigger,
        window_start=datetime.fromtimestamp(since, timezone.utc),
        window_end=datetime.fromtimestamp(at, timezone.utc),
        severity="high",
        score=score.value,
        reasons=[*reasons, score],
        evidence_event_ids=[f.event_id for f in flows[-MAX_EVIDENCE:]],
        audience=[Audience(kind="bank_risk"), Audience(kind="police")],
    )


def add_outflow(account: Account, flow: Flow, limits: TransferRiskThresholds) -> None:
    """Keep ``flow`` among the account's outflows (in time order), dropping those past the history or the cap."""
    if account.outflows and (flow.at, flow.event_id) < (account.outflows[-1].at, account.outflows[-1].event_id):
        bisect.insort(account.outflows, flow, key=lambda f: (f.at, f.event_id))
    else:
        account.outflows.append(flow)
    horizon = account.outflows[-1].at - limits.history_days * 86400
    drop = bisect.bisect_right(account.outflows, horizon, key=lambda f: f.at)
    drop = max(drop, len(account.outflows) - limits.max_outflows_kept)
    if drop > 0:
        del account.outflows[:drop]


class _Run:
    """One piece of the detector: its accounts as they change, and what it concludes."""

    def __init__(
        self,
        accounts: Mapping[str, Account],
        view: View,
        limits: TransferRiskThresholds,
        population: Baseline | None,
    ) -> None:
        self.accounts = accounts
        self.view = view
        self.limits = limits
        self.population = population
        self.result = TransferRiskResult()

    def change(self, name: str) -> AccountChange:
        change = self.result.changes.get(name)
        if change is None:
            change = self.result.changes[name] = AccountChange()
        return change

    def flag(self, name: str, alert: Alert, at: float) -> None:
        self.result.flags.append(
            (name, Flag(alert.alert_id, alert.detector, alert.score, at, at + self.limits.quiet_seconds))
        )

    def mule_check(self, name: str, at: float, trigger: str) -> None:
        """A mule alert on ``name`` (an account this run owns) by :func:`mule_verdict`; not in a quiet
        period or when flagged already."""
        account, limits = self.accounts[name], self.limits
        if at < account.quiet_until or in_force(self.view.flags(name, at), at):
            return
        inflows = self.view.inflows(name, at)
        verdict = mule_verdict(inflows, account, at, limits, self.population)
        if verdict is None:
            return
        account.quiet_until = self.change(name).quiet_until = at + limits.quiet_seconds
        alert = _mule_alert(name, inflows, account, at, *verdict, trigger, limits)
        self.result.alerts.append(alert)
        self.flag(name, alert, at)

    def transfer(self, transfer: BankTransfer) -> None:
        limits, at = self.limits, transfer.event_time.timestamp()
        name = transfer.payer_account
        payer = self.accounts[name]
        if any(f.event_id == transfer.event_id for f in payer.outflows):
            return  # the same transfer twice in the input
        flow = Flow(transfer.event_id, at, transfer.payee_account, transfer.amount_fen, transfer.channel, own(transfer))
        add_outflow(payer, flow, limits)
        self.change(name).added.append(flow)
        # The payer moving money on may reveal it as a mule, and its payee as the next hop.
        self.mule_check(name, at, transfer.event_id)
        scored = score_transfer(transfer, payer, self.view, limits)
        if transfer.amount_fen >= limits.min_amount_fen:
            self.result.inflows.append((transfer.payee_account, flow._replace(other=name)))
            self.result.checks.append(InflowCheck(at, transfer.payee_account, transfer.event_id))
        if scored is not None and scored[0] >= limits.alert_score:
            alert = transfer_alert(transfer, scored[0], scored[1], limits)
            self.result.alerts.append(alert)
            self.flag(transfer.payee_account, alert, at)


def detect(
    items: Sequence[BankTransfer | InflowCheck],
    accounts: Mapping[str, Account],
    view: View,
    limits: TransferRiskThresholds,
    population: Baseline | None = None,
) -> TransferRiskResult:
    """A piece's transfers (of the payers it owns) and inflow checks (of the payees it owns), in batch
    order, advancing ``accounts`` (one per payer and checked payee); alert on the suspicious party, a mule
    also by ``population`` (the accounts' baseline) when given. An inflow check's ``at`` is when it is
    delivered; the checks the run sends carry the payment's time, for the caller to add the delay."""
    run = _Run(accounts, view, limits, population)
    for item in items:
        if isinstance(item, InflowCheck):
            run.mule_check(item.account, item.at, item.event_id)
        else:
            run.transfer(item)
    return run.result
