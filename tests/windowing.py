"""Test helpers for the windowed detectors: write changes back as the Redis store does."""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from antifraud.alerts.models import Alert
from detectors.window import EntityChange, EntityState, WindowResult


def fold(prior: Mapping[str, EntityState], changes: Mapping[str, EntityChange]) -> dict[str, EntityState]:
    """Drop removals, upsert sightings, keep the latest quiet period: what ``WindowStore.apply`` does."""
    state = dict(prior)
    for entity, change in changes.items():
        assert not change.upserts.keys() & change.removals, "a key both upserted and removed"
        old = state.get(entity, EntityState())
        groups = {group: dict(seen) for group, seen in old.groups.items()}
        for group, key in change.removals:
            groups.get(group, {}).pop(key, None)
        for (group, key), seen in change.upserts.items():
            groups.setdefault(group, {})[key] = seen
        until = old.alerted_until if change.alerted_until is None else change.alerted_until
        state[entity] = EntityState(groups={g: s for g, s in groups.items() if s}, alerted_until=until)
    return state


Detect = Callable[[Sequence[Any], Mapping[str, EntityState]], WindowResult]


def run_batches(detect: Detect, batches: Sequence[Sequence[Any]],
                state: dict[str, EntityState] | None = None) -> tuple[list[Alert], dict[str, EntityState]]:
    """Run consecutive batches, carrying the state across them as the stage does (the states the detector
    returns; the changes folded for one that returns none); all alerts in order and the final state."""
    state = dict(state or {})
    alerts: list[Alert] = []
    for batch in batches:
        result = detect(batch, state)
        alerts += result.alerts
        state = {**state, **result.states} if result.states else fold(state, result.changes)
    return alerts, state


def ids(alerts: Sequence[Alert]) -> list[str]:
    return [alert.alert_id for alert in alerts]


def replay_checks(detect: Detect, events: Sequence[Any]) -> None:
    """Same input -> same alert ids; one event per batch -> the same alerts as one batch. (A batch never
    runs again on the state it wrote: the checkpoint writes state and offsets in one transaction,
    ``streams/checkpoint.py``; ``tests/test_determinism.py`` kills workers to show it.)"""
    first = detect(events, {})
    assert first.alerts, "the replay check needs input that alerts"
    assert ids(detect(events, {}).alerts) == ids(first.alerts)
    one_by_one, _ = run_batches(detect, [[e] for e in sorted(events, key=lambda e: (e.event_time, e.event_id))])
    assert ids(one_by_one) == ids(first.alerts)
