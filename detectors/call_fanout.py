"""Call fan-out: a number calling more distinct callees in a window than a person would.

A fraud call team cold-calls strangers: many distinct callees in minutes. The
detector keeps, per caller, the callees reached within the window (with the
time and event id of the latest call to each) and raises one alert per episode:
after alerting, the caller is quiet until the window has passed.

Replay safety: the alert's window is anchored on the call that crossed the
threshold, so the same input gives the same ``alert_id``; state changes are
upserts keyed by callee, so applying them twice changes nothing.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from antifraud.alerts.models import Alert, Audience, Entity, Reason
from antifraud.events.models import CallRecord
from antifraud.thresholds import CallFanoutThresholds

DETECTOR = "call_fanout"
MAX_EVIDENCE = 50


@dataclass(frozen=True)
class CalleeSeen:
    at: float
    """Epoch seconds of the latest call to this callee."""
    event_id: str


@dataclass(frozen=True)
class CallerState:
    callees: Mapping[str, CalleeSeen] = field(default_factory=dict)
    alerted_until: float = 0.0
    """No new alert for this caller for calls before this epoch second."""


@dataclass
class CallerChange:
    """What to write back for one caller: upserts, removals, the new quiet period."""

    upserts: dict[str, CalleeSeen] = field(default_factory=dict)
    removals: set[str] = field(default_factory=set)
    alerted_until: float | None = None


@dataclass
class FanoutResult:
    alerts: list[Alert]
    changes: dict[str, CallerChange]


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def _alert(caller: str, live: Mapping[str, CalleeSeen], now: float, limits: CallFanoutThresholds) -> Alert:
    distinct = len(live)
    window_end = datetime.fromtimestamp(now, timezone.utc)
    evidence = sorted(live.values(), key=lambda seen: (seen.at, seen.event_id))[-MAX_EVIDENCE:]
    ratio = distinct / limits.max_distinct_callees
    return Alert.create(
        detector=DETECTOR,
        entity=Entity(kind="phone", value=caller),
        window_start=window_end - timedelta(seconds=limits.window_seconds),
        window_end=window_end,
        severity="high" if ratio >= 2 else "medium",
        score=round(ratio, 4),
        reasons=[
            Reason(
                feature=f"distinct_callees_{limits.window_seconds}s",
                value=distinct,
                threshold=limits.max_distinct_callees,
            )
        ],
        evidence_event_ids=[seen.event_id for seen in evidence],
        audience=[Audience(kind="police")],
    )


def detect(
    calls: Sequence[CallRecord],
    prior: Mapping[str, CallerState],
    limits: CallFanoutThresholds,
) -> FanoutResult:
    """Fold a batch of calls (any order) into per-caller windows; alert on crossings."""
    alerts: list[Alert] = []
    changes: dict[str, CallerChange] = {}
    by_caller: dict[str, list[CallRecord]] = {}
    for call in calls:
        by_caller.setdefault(call.caller, []).append(call)

    for caller, own_calls in by_caller.items():
        state = prior.get(caller, CallerState())
        live = dict(state.callees)
        alerted_until = state.alerted_until
        change = CallerChange()
        for call in sorted(own_calls, key=lambda c: (c.event_time, c.event_id)):
            now = _ts(call.event_time)
            seen = live.get(call.callee)
            if seen is None or (now, call.event_id) > (seen.at, seen.event_id):
                live[call.callee] = change.upserts[call.callee] = CalleeSeen(now, call.event_id)
                change.removals.discard(call.callee)
            horizon = now - limits.window_seconds
            for callee in [c for c, s in live.items() if s.at < horizon]:
                del live[callee]
                change.upserts.pop(callee, None)
                change.removals.add(callee)
            # Count only calls up to this one: on replay, the state may already hold later ones.
            in_window = {c: s for c, s in live.items() if s.at <= now}
            if len(in_window) > limits.max_distinct_callees and now >= alerted_until:
                alerts.append(_alert(caller, in_window, now, limits))
                alerted_until = change.alerted_until = now + limits.window_seconds
        changes[caller] = change
    return FanoutResult(alerts=alerts, changes=changes)
