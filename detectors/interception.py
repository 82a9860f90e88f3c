"""Interception and victim tracing for listed and flagged numbers (pure).

A call from a listed number gets the listing's action (block or warn); a call
from a number the fraud-number score alerted on, inside its alert's window,
gets a warning when ``warn_on_alert`` is set. The subscribers such a number
reached (its kept calls) become potential victims: ranked by the longest call
(a long talk with a fraudster is the most at risk), then whether they called
back, then recency, and capped per number across batches (``warned`` holds who
was already warned), so a number that called thousands yields a bounded,
most-at-risk-first list.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from antifraud.events.models import CallRecord
from antifraud.interceptions import (
    Basis,
    BlockEntry,
    InterceptionDecision,
    VictimWarning,
    decision_id_for,
    warning_id_for,
)
from antifraud.thresholds import InterceptionThresholds
from detectors.fraud_number import OutCall


@dataclass(frozen=True)
class Flag:
    """A fraud-number alert in force: calls in ``[since, until)`` come from a flagged number."""

    since: float
    until: float


@dataclass
class InterceptionResult:
    decisions: list[InterceptionDecision]
    warnings: list[VictimWarning]


def _basis(call: CallRecord, listed: Mapping[str, BlockEntry], flags: Mapping[str, Flag]) -> Basis | None:
    if call.caller in listed:
        return "block_list"
    flag = flags.get(call.caller)
    at = call.event_time.timestamp()
    return "fraud_score" if flag is not None and flag.since <= at < flag.until else None


def decide(
    call: CallRecord, basis: Basis, listed: Mapping[str, BlockEntry], flags: Mapping[str, Flag]
) -> InterceptionDecision:
    if basis == "block_list":
        entry = listed[call.caller]
        action, reason = (
            entry.action,
            f"listed since {entry.listed_at.date().isoformat()} by {entry.source}: {entry.reason}",
        )
    else:
        since = datetime.fromtimestamp(flags[call.caller].since, timezone.utc)
        action, reason = "warn", f"fraud_number alert at {since.isoformat()}, not yet confirmed"
    return InterceptionDecision(
        decision_id=decision_id_for(call.event_id),
        call_event_id=call.event_id,
        number=call.caller,
        callee=call.callee,
        action=action,
        basis=basis,
        reason=reason,
        call_time=call.event_time,
    )


def victims(
    number: str,
    calls: Sequence[OutCall],
    called_by: Mapping[str, float],
    warned: frozenset[str],
    basis: Basis,
    cap: int,
) -> list[VictimWarning]:
    """The reached subscribers not yet warned, most at risk first, within what is left of the cap."""
    by_victim: dict[str, list[OutCall]] = {}
    for call in calls:
        if call.callee not in warned:
            by_victim.setdefault(call.callee, []).append(call)

    def risk(item: tuple[str, list[OutCall]]) -> tuple[int, bool, float, str]:
        victim, reached = item
        return (-max(c.duration_s for c in reached), victim not in called_by, -max(c.at for c in reached), victim)

    ranked = sorted(by_victim.items(), key=risk)[: max(0, cap - len(warned))]
    return [
        VictimWarning(
            warning_id=warning_id_for(number, victim),
            number=number,
            victim=victim,
            basis=basis,
            rank=rank,
            longest_call_s=max(c.duration_s for c in reached),
            calls=len(reached),
            last_call_at=datetime.fromtimestamp(max(c.at for c in reached), timezone.utc),
            called_back=victim in called_by,
        )
        for rank, (victim, reached) in enumerate(ranked, start=1)
    ]


def acted_on(calls: Sequence[CallRecord], listed: Mapping[str, BlockEntry], flags: Mapping[str, Flag]) -> set[str]:
    """The callers of the batch to intercept and trace (whose warned victims the stage must load)."""
    return {call.caller for call in calls if _basis(call, listed, flags) is not None}


def intercept(
    calls: Sequence[CallRecord],
    listed: Mapping[str, BlockEntry],
    flags: Mapping[str, Flag],
    windows: Mapping[str, Sequence[OutCall]],
    called_by: Mapping[str, Mapping[str, float]],
    warned: Mapping[str, frozenset[str]],
    limits: InterceptionThresholds,
) -> InterceptionResult:
    """Decisions for a piece's calls from listed/flagged numbers; warnings for whom those numbers reached.

    ``flags`` are the fraud-number alerts in force (none when ``warn_on_alert`` is off); ``windows``
    holds each acted-on number's kept calls including this piece's, ``called_by`` who called it back.
    """
    decisions = []
    for call in sorted(calls, key=lambda c: (c.event_time, c.event_id)):
        basis = _basis(call, listed, flags)
        if basis is not None:
            decisions.append(decide(call, basis, listed, flags))
    by_number: dict[str, Basis] = {}
    for decision in decisions:
        by_number.setdefault(decision.number, decision.basis)
    warnings = []
    for number, basis in sorted(by_number.items()):
        warnings += victims(
            number,
            windows.get(number, ()),
            called_by.get(number, {}),
            warned.get(number, frozenset()),
            basis,
            limits.max_victim_warnings_per_number,
        )
    return InterceptionResult(decisions=decisions, warnings=warnings)
