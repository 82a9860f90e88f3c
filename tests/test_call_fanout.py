"""The call fan-out detector as a pure function: alerts, quiet period, order and replay safety."""

import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone

import pytest

from antifraud.alerts.models import Alert, Audience, Entity, alert_id_for
from antifraud.events.models import CallRecord
from antifraud.thresholds import CallFanoutThresholds
from detectors.call_fanout import DETECTOR, CalleeSeen, CallerChange, CallerState, detect

LIMITS = CallFanoutThresholds(window_seconds=600, max_distinct_callees=5)
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
CALLER = "17012340001"
BUSY = "13900008888"


def call(n: int, callee: str, at: float, caller: str = CALLER) -> CallRecord:
    """Call number ``n`` ending ``at`` seconds after T0."""
    end = T0 + timedelta(seconds=at)
    return CallRecord(
        event_id=f"call-{caller[-4:]}-{n:04d}", event_time=end, caller=caller, callee=callee,
        start=end - timedelta(seconds=20), duration_s=20, cell_id="cell-4", imei="86000000000001",
    )


def fanout(count: int, start: float, *, first: int = 0, step: float = 10, caller: str = CALLER) -> list[CallRecord]:
    """``count`` calls to distinct callees, ``step`` seconds apart; ``first`` numbers both calls and callees."""
    return [call(first + i, f"1380000{first + i:04d}", start + i * step, caller) for i in range(count)]


def fold(prior: Mapping[str, CallerState], changes: Mapping[str, CallerChange]) -> dict[str, CallerState]:
    """Write ``changes`` back as the Redis store does: drop removals, upsert callees, keep the latest quiet period."""
    state = dict(prior)
    for caller, change in changes.items():
        assert not change.upserts.keys() & change.removals, "a callee both upserted and removed"
        old = state.get(caller, CallerState())
        callees = {c: seen for c, seen in old.callees.items() if c not in change.removals} | change.upserts
        until = old.alerted_until if change.alerted_until is None else change.alerted_until
        state[caller] = CallerState(callees=callees, alerted_until=until)
    return state


def run_batches(batches: Sequence[Sequence[CallRecord]]) -> list[Alert]:
    """Run consecutive batches, carrying the state across them; all alerts in order."""
    state: dict[str, CallerState] = {}
    alerts: list[Alert] = []
    for batch in batches:
        result = detect(batch, state, LIMITS)
        alerts += result.alerts
        state = fold(state, result.changes)
    return alerts


def ids(alerts: Sequence[Alert]) -> list[str]:
    return [alert.alert_id for alert in alerts]


# Three bursts: 6 callees (alert), 6 more inside the quiet period, 6 more well after it (alert).
EPISODES = fanout(6, 0) + fanout(6, 100, first=6) + fanout(6, 1000, first=12)
# A busy honest caller: 40 calls to 3 regular callees over 400 s.
BUSY_CALLS = [call(i, f"1390000000{i % 3}", i * 10, BUSY) for i in range(40)]
# Two small groups more than a window apart: never more than 3 distinct callees in any window.
SPARSE = fanout(3, 0) + fanout(3, 700, first=3)
# Three callees already in state, reached 100 s before T0.
EARLIER_CALLEES = {f"1370000{i:04d}": CalleeSeen(T0.timestamp() - 100 + i, f"old-{i}") for i in range(3)}


def test_crossing_the_limit_alerts_once() -> None:
    batch = fanout(LIMITS.max_distinct_callees + 1, 0)
    [alert] = detect(batch, {}, LIMITS).alerts
    crossed = batch[-1].event_time
    assert alert.detector == DETECTOR
    assert alert.entity == Entity(kind="phone", value=CALLER)
    assert [(r.value, r.threshold) for r in alert.reasons] == [(6, 5)]
    assert sorted(alert.evidence_event_ids) == sorted(c.event_id for c in batch)
    assert alert.audience == [Audience(kind="police")]
    assert (alert.window_start, alert.window_end) == (crossed - timedelta(seconds=600), crossed)
    assert alert.alert_id == alert_id_for(DETECTOR, alert.entity, alert.window_start)


def test_evidence_is_only_calls_in_window() -> None:
    batch = fanout(2, 0, first=90) + fanout(6, 650)  # the first two have left the window at t=650
    [alert] = detect(batch, {}, LIMITS).alerts
    assert sorted(alert.evidence_event_ids) == sorted(c.event_id for c in batch[2:])


def test_exactly_the_limit_does_not_alert() -> None:
    result = detect(fanout(LIMITS.max_distinct_callees, 0), {}, LIMITS)
    assert result.alerts == []
    assert len(result.changes[CALLER].upserts) == LIMITS.max_distinct_callees


def test_busy_caller_with_few_callees_does_not_alert() -> None:
    result = detect(BUSY_CALLS, {}, LIMITS)
    assert result.alerts == []
    latest = {c: seen.event_id for c, seen in result.changes[BUSY].upserts.items()}
    assert latest == {f"1390000000{i % 3}": BUSY_CALLS[i].event_id for i in (37, 38, 39)}


def test_callees_spread_over_more_than_the_window_do_not_alert() -> None:
    batch = fanout(6, 0, step=130)  # 0 .. 650 s: the first callee expires before the sixth call
    result = detect(batch, {}, LIMITS)
    assert result.alerts == []
    change = result.changes[CALLER]
    assert change.removals == {batch[0].callee}
    assert set(change.upserts) == {c.callee for c in batch[1:]}


def test_quiet_period_then_new_episode() -> None:
    result = detect(EPISODES, {}, LIMITS)
    first, second = result.alerts
    assert first.window_end == EPISODES[5].event_time
    assert second.window_end == EPISODES[17].event_time
    assert second.window_end >= first.window_end + timedelta(seconds=600)
    assert first.alert_id != second.alert_id
    assert result.changes[CALLER].alerted_until == (second.window_end + timedelta(seconds=600)).timestamp()


def test_prior_quiet_period_suppresses_alert() -> None:
    batch = fanout(6, 0)
    prior = {CALLER: CallerState(alerted_until=(T0 + timedelta(seconds=51)).timestamp())}
    assert detect(batch, prior, LIMITS).alerts == []
    prior = {CALLER: CallerState(alerted_until=(T0 + timedelta(seconds=50)).timestamp())}
    assert len(detect(batch, prior, LIMITS).alerts) == 1


@pytest.mark.parametrize("seed", range(5))
def test_input_order_does_not_matter(seed: int) -> None:
    batch = EPISODES + BUSY_CALLS + fanout(6, 200, caller="13700001111")
    shuffled = random.Random(seed).sample(batch, len(batch))
    in_order, mixed = detect(batch, {}, LIMITS), detect(shuffled, {}, LIMITS)
    assert sorted(ids(mixed.alerts)) == sorted(ids(in_order.alerts))
    assert len(in_order.alerts) == 3
    assert mixed.changes == in_order.changes


@pytest.mark.parametrize(
    "prior",
    [{}, {CALLER: CallerState(callees=EARLIER_CALLEES)}],
    ids=["no_state", "earlier_callees"],
)
def test_replay_on_same_state_gives_identical_alerts(prior: dict[str, CallerState]) -> None:
    first, again = detect(EPISODES, prior, LIMITS), detect(EPISODES, prior, LIMITS)
    assert first.alerts and again.alerts == first.alerts
    assert again.changes == first.changes


@pytest.mark.parametrize(
    "batch",
    [
        pytest.param(fanout(6, 0), id="one_burst"),
        pytest.param(EPISODES, id="two_episodes"),
        pytest.param(EPISODES + BUSY_CALLS, id="two_callers"),
        # Replayed on its own written-back state, the state holds calls later than the one being
        # processed; they must not count towards the earlier call's window.
        pytest.param(SPARSE, id="groups_more_than_a_window_apart"),
    ],
)
def test_replay_on_applied_state_gives_no_new_alerts(batch: list[CallRecord]) -> None:
    applied = fold({}, detect(batch, {}, LIMITS).changes)
    replay = detect(batch, applied, LIMITS)
    assert replay.alerts == []
    assert fold(applied, replay.changes) == applied


@pytest.mark.parametrize("split", range(1, len(EPISODES)))
def test_consecutive_batches_give_the_same_alerts_as_one(split: int) -> None:
    whole = ids(detect(EPISODES, {}, LIMITS).alerts)
    assert len(whole) == 2
    assert ids(run_batches([EPISODES[:split], EPISODES[split:]])) == whole


def test_one_call_per_batch_gives_the_same_alerts_as_one_batch() -> None:
    assert ids(run_batches([[c] for c in EPISODES])) == ids(detect(EPISODES, {}, LIMITS).alerts)
