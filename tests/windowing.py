"""Test helpers for the windowed detectors (``detectors/window.py``): run batches as the stage runs them,
and check that what goes to Redis leads to the state kept in memory."""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from antifraud.alerts.models import Alert
from detectors.window import EntityChange, EntityState, WindowResult


def fold(prior: Mapping[str, EntityState], changes: Mapping[str, EntityChange]) -> dict[str, EntityState]:
    """Drop removals, upsert sightings, keep the latest quiet period: what ``WindowCodec.write`` does to the
    stored hashes (``antifraud/state/window.py``)."""
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


def carried(prior: Mapping[str, EntityState], result: WindowResult) -> dict[str, EntityState]:
    """The states after a batch as the stage keeps them in memory (``OwnedStore.apply`` of each changed
    entity's new state), checked against what its changes make of the stored state: a worker that reads
    the state back from Redis must see what the one that wrote it kept."""
    assert set(result.states) == set(result.changes), "a changed entity without its new state, or the reverse"
    written = fold(prior, result.changes)
    assert {e: written[e] for e in result.changes} == result.states, "Redis would hold another state than memory"
    return {**prior, **result.states}


def run_batches(
    detect: Detect, batches: Sequence[Sequence[Any]], state: dict[str, EntityState] | None = None
) -> tuple[list[Alert], dict[str, EntityState]]:
    """Run consecutive batches, carrying the state across them as the stage does (checked against the
    written changes, :func:`carried`); all alerts in order and the final state."""
    state = dict(state or {})
    alerts: list[Alert] = []
    for batch in batches:
        result = detect(batch, state)
        alerts += result.alerts
        state = carried(state, result)
    return alerts, state


def ids(alerts: Sequence[Alert]) -> list[str]:
    return [alert.alert_id for alert in alerts]


def replay_checks(detect: Detect, events: Sequence[Any]) -> None:
    """Same input -> same alert ids; one event per batch -> the same alerts as one batch; the state kept in
    memory is the state written, either way. (A batch never runs again on the state it wrote: the
    checkpoint writes state and offsets in one transaction, ``streams/checkpoint.py``;
    ``tests/test_determinism.py`` kills workers to show it.)"""
    first = detect(events, {})
    assert first.alerts, "the replay check needs input that alerts"
    whole = carried({}, first)
    assert ids(detect(events, {}).alerts) == ids(first.alerts)
    one_by_one, state = run_batches(detect, [[e] for e in sorted(events, key=lambda e: (e.event_time, e.event_id))])
    assert ids(one_by_one) == ids(first.alerts)
    assert state == whole
