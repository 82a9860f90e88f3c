"""Detector stages: each binds a pure detector to its Redis state store.

``build_stages`` is the one place that says which detectors consume which event
kind; the worker (``streams/app.py``) and the offline runner
(``streams/offline.py``) both use it.
"""

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from redis.asyncio import Redis

from antifraud import blocklist
from antifraud.events.models import CallRecord
from antifraud.state.fake_base_station import configured_registry
from antifraud.state.fraud_number import FraudNumberStore
from antifraud.state.interception import WarnedStore
from antifraud.state.window import WindowStore
from antifraud.thresholds import (
    FakeBaseStationThresholds,
    FraudNumberThresholds,
    InterceptionThresholds,
    PhishingSmsThresholds,
    SimRegistrationThresholds,
    Thresholds,
)
from detectors import fake_base_station, fraud_number, interception, phishing_sms, sim_registration
from detectors.window import EntityState, WindowResult
from streams import topics
from streams.batch import Outcome, Stage


class FraudNumberStage:
    """The fraud-number score, then interception and victim tracing for listed and flagged callers.

    One stage because tracing needs the score's alerts and the calls it keeps,
    in the same batch: a listed number's next call is intercepted at once.
    """

    def __init__(
        self, store: FraudNumberStore, warned: WarnedStore, redis: Redis,
        limits: FraudNumberThresholds, interception_limits: InterceptionThresholds,
    ) -> None:
        self.store = store
        self.warned = warned
        self.redis = redis
        self.limits = limits
        self.interception_limits = interception_limits

    async def __call__(self, calls: Sequence[CallRecord]) -> Outcome:
        callers = {call.caller for call in calls}
        prior, listed = await asyncio.gather(self.store.load(callers), blocklist.lookup(self.redis, callers))
        result = fraud_number.detect(calls, prior, self.limits)
        window = self.limits.profile_window_seconds
        flags = {}
        for number, change in result.changes.items():
            until = change.alerted_until or (prior[number].alerted_until if number in prior else 0.0)
            if until and self.interception_limits.warn_on_alert:
                flags[number] = interception.Flag(until - window, until)
        acted = interception.acted_on(calls, listed, flags)
        warned = await self.warned.load(acted)
        after = {
            n: fraud_number.next_state(prior.get(n, fraud_number.NumberState()), result.changes[n], result.called_by.get(n, {}))
            for n in acted
        }
        traced = interception.intercept(calls, listed, flags, after, warned, self.interception_limits)

        async def flush() -> None:
            await self.store.apply(prior, result)
            await self.warned.apply(traced.warnings)

        extra = [(topics.INTERCEPTIONS, d.number.encode(), d.model_dump_json().encode()) for d in traced.decisions]
        extra += [(topics.VICTIM_WARNINGS, w.victim.encode(), w.model_dump_json().encode()) for w in traced.warnings]
        return Outcome(alerts=result.alerts, flush_state=flush, extra=extra)


class WindowStage:
    """A windowed detector (see ``detectors.window``) with its per-entity store."""

    def __init__(
        self,
        store: WindowStore,
        entities: Callable[[Sequence[Any]], set[str]],
        detect: Callable[[Sequence[Any], Mapping[str, EntityState]], WindowResult],
    ) -> None:
        self.store = store
        self.entities = entities
        self.detect = detect

    async def __call__(self, events: Sequence[Any]) -> Outcome:
        prior = await self.store.load(self.entities(events))
        result = self.detect(events, prior)
        return Outcome(alerts=result.alerts, flush_state=lambda: self.store.apply(result.changes))


def _sim_stage(redis: Redis, limits: SimRegistrationThresholds) -> WindowStage:
    return WindowStage(
        WindowStore(redis, prefix="simreg:", ttl_seconds=limits.history_days * 86400),
        lambda registrations: {r.id_number for r in registrations},
        lambda registrations, prior: sim_registration.detect(registrations, prior, limits),
    )


def _fake_base_station_stage(redis: Redis, limits: FakeBaseStationThresholds) -> WindowStage:
    """One stage object for both cell observations and SMS: they fill the same per-cell state."""
    registry = configured_registry(limits)
    return WindowStage(
        WindowStore(redis, prefix="fbs:", ttl_seconds=2 * limits.window_seconds),
        lambda events: {e.cell_id for e in fake_base_station.relevant(events, registry, limits)},
        lambda events, prior: fake_base_station.detect(events, prior, registry, limits),
    )


def _phishing_stage(redis: Redis, limits: PhishingSmsThresholds) -> WindowStage:
    judge = phishing_sms.DomainJudge(limits)
    return WindowStage(
        WindowStore(redis, prefix="phish:", ttl_seconds=2 * limits.window_seconds),
        lambda texts: {t.sender for t in texts if t.link_domains and judge.phishing_link(t)},
        lambda texts, prior: phishing_sms.detect(texts, prior, judge, limits),
    )


def build_stages(redis: Redis, thresholds: Thresholds) -> dict[str, list[Stage]]:
    """Event kind -> the detector stages that consume it, in the order they run."""
    scoring = thresholds.fraud_number
    cells = _fake_base_station_stage(redis, thresholds.fake_base_station)
    return {
        "call_record": [
            FraudNumberStage(
                FraudNumberStore(redis, profile_window_seconds=scoring.profile_window_seconds),
                WarnedStore(redis, ttl_seconds=2 * scoring.profile_window_seconds),
                redis, scoring, thresholds.interception,
            ),
        ],
        "sim_registration": [_sim_stage(redis, thresholds.sim_registration)],
        "cell_observation": [cells],
        "sms_record": [cells, _phishing_stage(redis, thresholds.phishing_sms)],
    }

