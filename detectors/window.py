"""Sliding windows of sightings per entity, shared by the telecom detectors.

A detector keeps, per entity (an ID number, a cell, an SMS sender), the latest
sighting of each key (a registration, a handset, a receiver) in named groups,
each with its own horizon. Keys come from the events (an event id, an IMEI, a
number), so a change written twice changes nothing more, and features count
only sightings up to the event being judged: a replay that finds later
sightings already in the state still reaches the same decisions.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from antifraud.alerts.models import Alert, Reason


@dataclass(frozen=True, order=True)
class Seen:
    """The latest sighting of a key: when, in which event, and what the detector needs back."""

    at: float
    """Epoch seconds."""
    event_id: str
    detail: str = ""


@dataclass(frozen=True)
class EntityState:
    groups: Mapping[str, Mapping[str, Seen]] = field(default_factory=dict)
    alerted_until: float = 0.0
    """No new alert for this entity for events before this epoch second."""


@dataclass
class EntityChange:
    """What to write back for one entity: upserts and removals by (group, key), the new quiet period."""

    upserts: dict[tuple[str, str], Seen] = field(default_factory=dict)
    removals: set[tuple[str, str]] = field(default_factory=set)
    alerted_until: float | None = None

    def __bool__(self) -> bool:
        return bool(self.upserts or self.removals or self.alerted_until is not None)


@dataclass
class WindowResult:
    """A windowed detector's verdict on a batch: its alerts and the state changes to write back."""

    alerts: list[Alert]
    changes: dict[str, EntityChange]


def ratio(reason: Reason) -> float:
    """How far a feature is past its threshold: above 1 once crossed, defined for a zero threshold."""
    return (reason.value + 1) / (reason.threshold + 1)


class Tracker:
    """One entity's sightings during a batch, recording every change for the store.

    ``horizons`` maps each group to how long its sightings stay (seconds);
    ``max_entries`` bounds a group's size, dropping the oldest sightings first.
    """

    def __init__(self, state: EntityState, horizons: Mapping[str, float], max_entries: int) -> None:
        self.live = {group: dict(state.groups.get(group, {})) for group in horizons}
        self.horizons = horizons
        self.max_entries = max_entries
        self.alerted_until = state.alerted_until
        self.change = EntityChange()

    def see(self, group: str, key: str, seen: Seen) -> None:
        """Keep ``seen`` as the key's sighting unless a later one is already there."""
        live = self.live[group]
        old = live.get(key)
        if old is None or seen > old:
            live[key] = self.change.upserts[(group, key)] = seen
            self.change.removals.discard((group, key))

    def expire(self, now: float) -> None:
        """Drop sightings older than each group's horizon, then the oldest beyond ``max_entries``."""
        for group, live in self.live.items():
            horizon = now - self.horizons[group]
            stale = [key for key, seen in live.items() if seen.at < horizon]
            if len(live) - len(stale) > self.max_entries:
                by_age = sorted((seen, key) for key, seen in live.items() if seen.at >= horizon)
                stale += [key for _, key in by_age[: len(by_age) - self.max_entries]]
            for key in stale:
                del live[key]
                self.change.upserts.pop((group, key), None)
                self.change.removals.add((group, key))

    def upto(self, group: str, now: float, since: float | None = None) -> dict[str, Seen]:
        """The group's sightings at or before ``now`` (and at or after ``since``)."""
        low = float("-inf") if since is None else since
        return {key: seen for key, seen in self.live[group].items() if low <= seen.at <= now}

    def quiet(self, now: float) -> bool:
        return now < self.alerted_until

    def alerted(self, until: float) -> None:
        self.alerted_until = self.change.alerted_until = until


def trackers(
    entities: set[str], prior: Mapping[str, EntityState], horizons: Mapping[str, float], max_entries: int
) -> dict[str, Tracker]:
    """A tracker per entity of the batch, from its prior state (empty when none)."""
    return {entity: Tracker(prior.get(entity, EntityState()), horizons, max_entries) for entity in sorted(entities)}


def changes_of(tracked: Mapping[str, Tracker]) -> dict[str, EntityChange]:
    """The non-empty changes to write back, by entity."""
    return {entity: tracker.change for entity, tracker in tracked.items() if tracker.change}
