"""Sliding windows of sightings per entity, shared by the telecom detectors.

A detector keeps, per entity (an ID number, a cell, an SMS sender), the latest
sighting of each key (a registration, a handset, a receiver) in named groups,
each with its own horizon. Keys come from the events (an event id, an IMEI, a
number), so a change written twice changes nothing more, and features count
only sightings up to the event being judged: a replay that finds later
sightings already in the state still reaches the same decisions.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TypeVar

from antifraud.alerts.models import Alert, Audience, Entity, Reason
from antifraud.events.models import CardOpening, SimRegistration
from antifraud.thresholds import PerIdWindows


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
    """A windowed detector's verdict on a batch: its alerts, the state changes to write back and the
    states they lead to (of the entities that changed)."""

    alerts: list[Alert]
    changes: dict[str, EntityChange]
    states: dict[str, EntityState] = field(default_factory=dict)


DAY = 86400.0


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

    def state(self) -> EntityState:
        """The entity's state now."""
        return EntityState(
            groups={g: dict(live) for g, live in self.live.items() if live}, alerted_until=self.alerted_until
        )


def trackers(
    entities: set[str], prior: Mapping[str, EntityState], horizons: Mapping[str, float], max_entries: int
) -> dict[str, Tracker]:
    """A tracker per entity of the batch, from its prior state (empty when none)."""
    return {entity: Tracker(prior.get(entity, EntityState()), horizons, max_entries) for entity in sorted(entities)}


def result_of(alerts: list[Alert], tracked: Mapping[str, Tracker]) -> WindowResult:
    """The alerts with the non-empty changes to write back, and the states they lead to, by entity."""
    changed = {entity: tracker for entity, tracker in tracked.items() if tracker.change}
    return WindowResult(
        alerts=alerts,
        changes={e: t.change for e, t in changed.items()},
        states={e: t.state() for e, t in changed.items()},
    )


def judge(
    tracker: Tracker,
    group: str,
    seen: Seen,
    reasons_of: Callable[[Mapping[str, Seen], float], list[Reason]],
    quiet_until: float,
) -> tuple[dict[str, Seen], list[Reason]] | None:
    """Keep ``seen``, then judge the entity on its sightings up to it (on replay the state may
    already hold later ones): the sightings and reasons when a limit is crossed outside a quiet
    period, which then lasts until ``quiet_until``; None otherwise."""
    tracker.see(group, seen.event_id, seen)
    tracker.expire(seen.at)
    held = tracker.upto(group, seen.at)
    reasons = reasons_of(held, seen.at)
    if tracker.quiet(seen.at) or not any(r.value > r.threshold for r in reasons):
        return None
    tracker.alerted(quiet_until)
    return held, reasons


def limit_alert(
    detector: str,
    entity: Entity,
    window: tuple[datetime, float],
    reasons: list[Reason],
    evidence: Sequence[str],
    audience: list[Audience],
    trigger: str,
) -> Alert:
    """An alert on crossed limits: scored by the feature furthest past its threshold, high when
    two limits are crossed or one is doubled. ``window`` is its start and the judged epoch;
    ``trigger`` the event judged."""
    start, now = window
    score = max(ratio(r) for r in reasons)
    crossed = sum(r.value > r.threshold for r in reasons)
    return Alert.create(
        detector=detector,
        entity=entity,
        trigger=trigger,
        window_start=start,
        window_end=datetime.fromtimestamp(now, timezone.utc),
        severity="high" if crossed >= 2 or score >= 2 else "medium",
        score=round(score, 4),
        reasons=reasons,
        evidence_event_ids=list(evidence),
        audience=audience,
    )


def id_history_alert(
    detector: str,
    tracker: Tracker,
    group: str,
    id_number: str,
    seen: Seen,
    reasons_of: Callable[[Mapping[str, Seen], float], list[Reason]],
    limits: PerIdWindows,
    audience_of: Callable[[list[Seen]], list[Audience]],
) -> Alert | None:
    """The verdict of a per-ID-number history (SIM registrations, card openings) on one sighting:
    an alert over ``window_days`` up to it, then quiet for ``burst_days``."""
    verdict = judge(tracker, group, seen, reasons_of, seen.at + limits.burst_days * DAY)
    if verdict is None:
        return None
    held, reasons = verdict
    evidence = sorted(held.values())
    end = datetime.fromtimestamp(seen.at, timezone.utc)
    return limit_alert(
        detector,
        Entity(kind="id_number", value=id_number),
        (end - timedelta(days=limits.window_days), seen.at),
        reasons,
        [s.event_id for s in evidence],
        audience_of(evidence),
        seen.event_id,
    )


Identified = TypeVar("Identified", SimRegistration, CardOpening)


def fold_id_histories(
    events: Sequence[Identified],
    prior: Mapping[str, EntityState],
    group: str,
    limits: PerIdWindows,
    max_tracked: int,
    judge_one: Callable[[Tracker, Identified], Alert | None],
) -> WindowResult:
    """Fold a piece's per-ID-number events (in batch order) into their histories; alert on crossings."""
    tracked = trackers({e.id_number for e in events}, prior, {group: limits.history_days * DAY}, max_tracked)
    alerts = [alert for event in events if (alert := judge_one(tracked[event.id_number], event)) is not None]
    return result_of(alerts, tracked)
