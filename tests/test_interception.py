"""Interception decisions and victim warnings as pure functions: who is blocked, warned, traced, in what order."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest

from antifraud.blocklist import BlockEntry
from antifraud.events.models import CallRecord
from antifraud.interceptions import decision_id_for, warning_id_for
from antifraud.thresholds import InterceptionThresholds
from detectors.fraud_number import OutCall, out_call
from detectors.interception import Flag, InterceptionResult, acted_on, intercept, victims

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)
LISTED, FLAGGED, HONEST = "17012340001", "17012340002", "13900001111"
LIMITS = InterceptionThresholds(max_victim_warnings_per_number=3, warn_on_alert=True)
ENTRY = BlockEntry(number=LISTED, action="block", reason="confirmed", source="case:9", listed_at=T0 - timedelta(days=1))


def call(eid: str, caller: str, callee: str, at: float, duration: int = 20) -> CallRecord:
    end = T0 + timedelta(seconds=at)
    return CallRecord(
        event_id=eid,
        event_time=end,
        caller=caller,
        callee=callee,
        start=end - timedelta(seconds=duration),
        duration_s=duration,
        cell_id="c1",
        imei="860000000000001",
    )


@dataclass(frozen=True)
class Window:
    """A number's kept calls and who called it back, as the call stage hands them over."""

    calls: tuple[OutCall, ...]
    called_by: dict[str, float] = field(default_factory=dict)


def state_of(calls: list[CallRecord], called_by: dict[str, float] | None = None) -> Window:
    return Window(tuple(out_call(c) for c in calls), called_by or {})


def run_intercept(
    calls: list[CallRecord],
    listed: Mapping[str, BlockEntry],
    flags: Mapping[str, Flag],
    states: Mapping[str, Window],
    warned: Mapping[str, set[str]],
) -> InterceptionResult:
    return intercept(
        calls,
        listed,
        flags,
        {n: w.calls for n, w in states.items()},
        {n: w.called_by for n, w in states.items()},
        {n: frozenset(v) for n, v in warned.items()},
        LIMITS,
    )


FLAG = Flag(since=(T0 + timedelta(seconds=100)).timestamp(), until=(T0 + timedelta(days=1)).timestamp())


def test_listed_callers_are_blocked_flagged_ones_warned_from_their_alert_on() -> None:
    batch = [
        call("l1", LISTED, "13600000001", 10),
        call("f0", FLAGGED, "13600000002", 50),
        call("f1", FLAGGED, "13600000003", 150),
        call("h1", HONEST, "13600000004", 200),
    ]
    states = {LISTED: state_of(batch[:1]), FLAGGED: state_of(batch[1:3])}
    result = run_intercept(batch, {LISTED: ENTRY}, {FLAGGED: FLAG}, states, {})
    assert [(d.call_event_id, d.action, d.basis) for d in result.decisions] == [
        ("l1", "block", "block_list"),
        ("f1", "warn", "fraud_score"),
    ]
    assert result.decisions[0].decision_id == decision_id_for("l1")
    assert "case:9" in result.decisions[0].reason and "confirmed" in result.decisions[0].reason
    assert acted_on(batch, {LISTED: ENTRY}, {FLAGGED: FLAG}) == {LISTED, FLAGGED}
    assert {(w.number, w.victim) for w in result.warnings} == {
        (LISTED, "13600000001"),
        (FLAGGED, "13600000002"),
        (FLAGGED, "13600000003"),
    }


def test_a_warn_listing_warns() -> None:
    entry = ENTRY.model_copy(update={"action": "warn"})
    batch = [call("l1", LISTED, "13600000001", 10)]
    [decision] = run_intercept(batch, {LISTED: entry}, {}, {LISTED: state_of(batch)}, {}).decisions
    assert (decision.action, decision.basis) == ("warn", "block_list")


def test_victims_ranked_by_longest_call_then_callback_then_recency() -> None:
    reached = [
        call("a", LISTED, "13600000001", 10, duration=30),
        call("b", LISTED, "13600000002", 20, duration=600),  # the long talk: most at risk
        call("c", LISTED, "13600000003", 30, duration=30),  # called back: before the same-length others
        call("d", LISTED, "13600000004", 40, duration=30),  # the most recent of the rest
        call("e", LISTED, "13600000001", 50, duration=5),  # a second call to the first
    ]
    called_by = {"13600000003": (T0 + timedelta(seconds=90)).timestamp()}
    ranked = victims(LISTED, state_of(reached, called_by).calls, called_by, frozenset(), "block_list", cap=10)
    assert [(w.victim, w.rank) for w in ranked] == [
        ("13600000002", 1),
        ("13600000003", 2),
        ("13600000001", 3),
        ("13600000004", 4),
    ]
    first = next(w for w in ranked if w.victim == "13600000001")
    assert (first.calls, first.longest_call_s, first.called_back) == (2, 30, False)
    assert first.last_call_at == T0 + timedelta(seconds=50)
    assert ranked[1].called_back and ranked[0].warning_id == warning_id_for(LISTED, "13600000002")


def test_a_number_that_called_thousands_yields_the_cap_most_at_risk_first() -> None:
    reached = [call(f"x{i}", LISTED, f"1360{i:07d}", i, duration=i % 700) for i in range(5000)]
    warnings = run_intercept(reached[-1:], {LISTED: ENTRY}, {}, {LISTED: state_of(reached)}, {}).warnings
    assert [w.longest_call_s for w in warnings] == [699, 699, 699]
    assert [w.rank for w in warnings] == [1, 2, 3]


def test_the_cap_holds_across_batches_and_nobody_is_warned_twice() -> None:
    reached = [call(f"x{i}", LISTED, f"136000000{i:02d}", i, duration=100 - i) for i in range(6)]
    states = {LISTED: state_of(reached[:2])}
    first = run_intercept(reached[:2], {LISTED: ENTRY}, {}, states, {}).warnings
    assert [w.victim for w in first] == ["13600000000", "13600000001"]
    warned = {LISTED: {w.victim for w in first}}
    later = run_intercept(reached[2:], {LISTED: ENTRY}, {}, {LISTED: state_of(reached)}, warned).warnings
    assert [w.victim for w in later] == ["13600000002"]
    full = {LISTED: warned[LISTED] | {"13600000002"}}
    assert run_intercept(reached[5:], {LISTED: ENTRY}, {}, {LISTED: state_of(reached)}, full).warnings == []


@pytest.mark.parametrize("warned", [{}, {LISTED: {"13600000000"}}], ids=["fresh", "partly_warned"])
def test_replay_gives_the_same_ids(warned: dict[str, set[str]]) -> None:
    batch = [call(f"x{i}", LISTED, f"136000000{i:02d}", i) for i in range(5)]
    states = {LISTED: state_of(batch)}
    first = run_intercept(batch, {LISTED: ENTRY}, {}, states, warned)
    again = run_intercept(list(reversed(batch)), {LISTED: ENTRY}, {}, states, warned)
    assert first == again
    applied = {LISTED: warned.get(LISTED, set()) | {w.victim for w in first.warnings}}
    assert run_intercept(batch, {LISTED: ENTRY}, {}, states, applied).warnings == []


def test_a_flag_covers_calls_from_its_alert_until_it_ends() -> None:
    since, until = FLAG.since - T0.timestamp(), FLAG.until - T0.timestamp()
    batch = [
        call("before", FLAGGED, "13600000001", since - 1, duration=300),
        call("at", FLAGGED, "13600000002", since),
        call("last", FLAGGED, "13600000003", until - 1),
        call("ended", FLAGGED, "13600000004", until),
    ]
    result = run_intercept(batch, {}, {FLAGGED: FLAG}, {FLAGGED: state_of(batch)}, {})
    assert [d.call_event_id for d in result.decisions] == ["at", "last"]
    assert all((d.action, d.basis) == ("warn", "fraud_score") for d in result.decisions)
    assert "not yet confirmed" in result.decisions[0].reason
    # Whom the flagged number reached in its window is warned, the long call before the alert first; then the
    # most recent within the cap of three.
    assert [w.victim for w in result.warnings] == ["13600000001", "13600000004", "13600000003"]
    assert acted_on(batch[:1] + batch[3:], {}, {FLAGGED: FLAG}) == set()


def test_a_listing_wins_over_a_flag_and_unlisted_unflagged_callers_are_left_alone() -> None:
    batch = [call("l1", LISTED, "13600000001", 150), call("h1", HONEST, "13600000002", 150)]
    result = run_intercept(batch, {LISTED: ENTRY}, {LISTED: FLAG}, {LISTED: state_of(batch[:1])}, {})
    assert [(d.call_event_id, d.action, d.basis) for d in result.decisions] == [("l1", "block", "block_list")]
    assert [(w.number, w.basis) for w in result.warnings] == [(LISTED, "block_list")]
