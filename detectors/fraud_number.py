"""Fraud-number score: how much a number's outbound calls look like cold-calling.

Per number, the latest outbound calls (a day, capped) and who has called it
(``called_by``: caller -> earliest inbound call) are the state. Each new call is
scored over the calls up to it: burst volume, distinct callees, short-call,
one-ring, international and night shares, handset (IMEI) changes, the callback
and repeat-callee ratios. Features past their threshold add their weight; a
number with enough distinct callees whose score reaches ``alert_score`` is
alerted once per profile window (a quiet period follows).

Replay safety: a call already in the state is not scored again, features only
count calls and callbacks at or before the scored call, and the alert window
is anchored on that call, so the same input gives the same ``alert_id`` and a
batch split in two gives the same alerts as one. State changes are keyed by
event id and caller, so writing them twice changes nothing.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np

from antifraud.alerts.models import Alert, Audience, Entity, Reason
from antifraud.events.models import CallRecord
from antifraud.thresholds import FeatureRule, FraudNumberThresholds

DETECTOR = "fraud_number"
MAX_EVIDENCE = 50


@dataclass(frozen=True)
class OutCall:
    """One outbound call as the state keeps it."""

    at: float
    """Epoch seconds when the call ended."""
    event_id: str
    callee: str
    duration_s: int
    international: bool
    imei: str


@dataclass(frozen=True)
class NumberState:
    calls: tuple[OutCall, ...] = ()
    called_by: Mapping[str, float] = field(default_factory=dict)
    """Who called this number -> epoch of their earliest call kept."""
    alerted_until: float = 0.0


@dataclass
class NumberChange:
    """What to write back for one caller: calls to add and drop, the new quiet period."""

    added: dict[str, OutCall] = field(default_factory=dict)
    dropped: set[str] = field(default_factory=set)
    alerted_until: float | None = None


@dataclass
class FraudNumberResult:
    alerts: list[Alert]
    changes: dict[str, NumberChange]
    called_by: dict[str, dict[str, float]]
    """Callee -> {caller: earliest call in this batch}: the callbacks to record, any worker's callers."""


def out_call(call: CallRecord) -> OutCall:
    return OutCall(call.event_time.timestamp(), call.event_id, call.callee, call.duration_s, call.international, call.imei)


def inbound(calls: Sequence[CallRecord]) -> dict[str, dict[str, float]]:
    """Callee -> {caller: earliest call}: in this batch, who called whom."""
    seen: dict[str, dict[str, float]] = {}
    for call in calls:
        at = call.event_time.timestamp()
        by_caller = seen.setdefault(call.callee, {})
        if at < by_caller.get(call.caller, float("inf")):
            by_caller[call.caller] = at
    return seen


def _prefix(flags: np.ndarray) -> np.ndarray:
    """Cumulative counts with a leading zero: ``c[j] - c[i]`` counts flags in ``[i, j)``."""
    return np.concatenate(([0], np.cumsum(flags, dtype=np.int64)))


class _Profile:
    """A number's calls (kept and new) as arrays, sorted by time, for window features."""

    def __init__(self, calls: Sequence[OutCall], called_by: Mapping[str, float], limits: FraudNumberThresholds) -> None:
        self.calls = calls
        self.at = np.array([c.at for c in calls], dtype=np.float64)
        durations = np.array([c.duration_s for c in calls], dtype=np.int64)
        local_hour = ((self.at + limits.utc_offset_hours * 3600) % 86400) // 3600
        if limits.night_start_hour > limits.night_end_hour:
            night = (local_hour >= limits.night_start_hour) | (local_hour < limits.night_end_hour)
        else:
            night = (local_hour >= limits.night_start_hour) & (local_hour < limits.night_end_hour)
        self.short = _prefix(durations < limits.short_call_seconds)
        self.ring = _prefix(durations <= limits.one_ring_seconds)
        self.intl = _prefix(np.array([c.international for c in calls], dtype=bool))
        self.night = _prefix(night)
        imeis = [c.imei for c in calls]
        self.imei_change = _prefix(np.array([False] + [a != b for a, b in zip(imeis, imeis[1:])], dtype=bool))
        last: dict[str, int] = {}
        previous = np.empty(len(calls), dtype=np.int64)
        for i, call in enumerate(calls):
            previous[i] = last.get(call.callee, -1)
            last[call.callee] = i
        self.previous_same = previous
        self.callback_at = np.array([called_by.get(c.callee, np.inf) for c in calls], dtype=np.float64)

    def features(self, i: int, limits: FraudNumberThresholds) -> dict[str, float] | None:
        """Feature values over the window ending at call ``i``; None below the distinct-callee gate."""
        now = self.at[i]
        lo = int(np.searchsorted(self.at, now - limits.profile_window_seconds, side="right"))
        hi = i + 1
        count = hi - lo
        if count < limits.min_distinct_callees:
            return None
        first = self.previous_same[lo:hi] < lo
        distinct = int(np.count_nonzero(first))
        if distinct < limits.min_distinct_callees:
            return None
        called_back = int(np.count_nonzero(first & (self.callback_at[lo:hi] <= now)))
        burst_lo = int(np.searchsorted(self.at, now - limits.burst_window_seconds, side="right"))
        return {
            "distinct_callees": distinct,
            "burst_calls": hi - burst_lo,
            "short_call_share": (self.short[hi] - self.short[lo]) / count,
            "one_ring_share": (self.ring[hi] - self.ring[lo]) / count,
            "international_share": (self.intl[hi] - self.intl[lo]) / count,
            "night_share": (self.night[hi] - self.night[lo]) / count,
            "imei_changes": int(self.imei_change[hi] - self.imei_change[lo + 1]),
            "callback_ratio_max": called_back / distinct,
            "repeat_callee_ratio_max": 1 - distinct / count,
        }


def rules(limits: FraudNumberThresholds) -> dict[str, FeatureRule]:
    """Scored features by name; a name ending ``_max`` must stay at or under its threshold."""
    names = (
        "burst_calls", "short_call_share", "one_ring_share", "international_share",
        "night_share", "imei_changes", "callback_ratio_max", "repeat_callee_ratio_max",
    )
    return {name: getattr(limits, name) for name in names}


def score(values: Mapping[str, float], limits: FraudNumberThresholds) -> float:
    """Sum of the weights of the features past their thresholds."""
    total = 0.0
    for name, rule in rules(limits).items():
        value = values[name]
        hit = value <= rule.threshold if name.endswith("_max") else value >= rule.threshold
        total += rule.weight if hit else 0.0
    return round(total, 4)


def _alert(number: str, profile: _Profile, i: int, values: Mapping[str, float], total: float,
           limits: FraudNumberThresholds) -> Alert:
    window_end = datetime.fromtimestamp(profile.at[i], timezone.utc)
    lo = int(np.searchsorted(profile.at, profile.at[i] - limits.profile_window_seconds, side="right"))
    evidence = profile.calls[max(lo, i + 1 - MAX_EVIDENCE) : i + 1]
    reasons = [Reason(feature="distinct_callees", value=values["distinct_callees"], threshold=limits.min_distinct_callees)]
    reasons += [Reason(feature=name, value=round(values[name], 4), threshold=rule.threshold) for name, rule in rules(limits).items()]
    reasons.append(Reason(feature="score", value=total, threshold=limits.alert_score))
    return Alert.create(
        detector=DETECTOR,
        entity=Entity(kind="phone", value=number),
        window_start=window_end - timedelta(seconds=limits.profile_window_seconds),
        window_end=window_end,
        severity="high" if total >= limits.alert_score + 0.25 else "medium",
        score=total,
        reasons=reasons,
        evidence_event_ids=[c.event_id for c in evidence],
        audience=[Audience(kind="police")],
    )


def _kept(calls: Sequence[OutCall], limits: FraudNumberThresholds) -> list[OutCall]:
    """The calls the state keeps: inside the profile window of the latest, at most ``max_calls_kept``."""
    if not calls:
        return []
    horizon = calls[-1].at - limits.profile_window_seconds
    return [c for c in calls[-limits.max_calls_kept :] if c.at > horizon]


def _score_new_calls(
    number: str, merged: Sequence[OutCall], new: set[str], called_by: Mapping[str, float],
    alerted_until: float, change: NumberChange, limits: FraudNumberThresholds,
) -> list[Alert]:
    """Score each new call in time order; an alert starts a quiet period recorded in ``change``."""
    profile = _Profile(merged, called_by, limits)
    alerts = []
    for i, call in enumerate(merged):
        if call.event_id not in new or call.at < alerted_until:
            continue
        values = profile.features(i, limits)
        if values is None:
            continue
        total = score(values, limits)
        if total >= limits.alert_score:
            alerts.append(_alert(number, profile, i, values, total, limits))
            alerted_until = change.alerted_until = call.at + limits.profile_window_seconds
    return alerts


def detect(
    calls: Sequence[CallRecord], prior: Mapping[str, NumberState], limits: FraudNumberThresholds
) -> FraudNumberResult:
    """Score every new call of the batch (any order) against its caller's window; alert on crossings."""
    batch_inbound = inbound(calls)
    by_caller: dict[str, dict[str, OutCall]] = {}
    for call in calls:
        by_caller.setdefault(call.caller, {})[call.event_id] = out_call(call)

    alerts: list[Alert] = []
    changes: dict[str, NumberChange] = {}
    for number, batch_calls in by_caller.items():
        state = prior.get(number, NumberState())
        known = {c.event_id for c in state.calls}
        new = {e: c for e, c in batch_calls.items() if e not in known}
        merged = sorted([*state.calls, *new.values()], key=lambda c: (c.at, c.event_id))
        called_by = dict(state.called_by)
        for caller, at in batch_inbound.get(number, {}).items():
            called_by[caller] = min(at, called_by.get(caller, np.inf))
        change = NumberChange()
        # Most numbers place a few calls a day: below the gate there is nothing to score.
        if len(merged) >= limits.min_distinct_callees:
            alerts += _score_new_calls(number, merged, set(new), called_by, state.alerted_until, change, limits)
        kept = _kept(merged, limits)
        kept_ids = {c.event_id for c in kept}
        change.added = {c.event_id: c for c in kept if c.event_id in new}
        change.dropped = known - kept_ids
        changes[number] = change
    return FraudNumberResult(alerts=alerts, changes=changes, called_by=batch_inbound)


def next_state(prior: NumberState, change: NumberChange | None, callers: Mapping[str, float]) -> NumberState:
    """A number's state once a batch's change and callbacks are written (what the store will hold)."""
    calls = {c.event_id: c for c in prior.calls}
    alerted_until = prior.alerted_until
    if change is not None:
        calls = {e: c for e, c in calls.items() if e not in change.dropped} | change.added
        alerted_until = alerted_until if change.alerted_until is None else change.alerted_until
    called_by = dict(prior.called_by)
    for caller, at in callers.items():
        called_by[caller] = min(at, called_by.get(caller, at))
    return NumberState(tuple(sorted(calls.values(), key=lambda c: (c.at, c.event_id))), called_by, alerted_until)
