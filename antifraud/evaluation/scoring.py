"""Detection quality: alerts judged against the ground truth of a simulated stream.

Definitions (alerts with the same ``alert_id`` count once; matching is by
entity ``(kind, value)``; an alert's time is its ``window_end``, the event time
of the event that triggered it):

- **Targets** of a scenario: its entities with ``target=True`` (fraud numbers,
  mule accounts, dealers' ID numbers). Benign scenarios have none. A **fraud
  target** is a target of any fraud scenario.
- **Alerted entity**: an entity with at least one alert, by any detector (or by
  the one detector, in the per-detector figures).
- **False-positive entity**: an alerted entity that is no fraud target: a
  bystander, a victim, an entity of a benign scenario, or one in no scenario.
- Per fraud scenario **type** (``fraud_call_team``, ``card_dealer``...), over
  the distinct target entities of all its instances:

  - recall = alerted targets / targets (null when the type has no targets);
  - the detectors that **caught** the type: those with an alert on one of its targets;
  - precision = alerted targets / (alerted targets + false-positive entities
    alerted by the detectors that caught the type). Alerts on another fraud
    type's targets count neither way. With no detector catching the type,
    precision is null (undefined) and recall 0.

- **Time to detect** of a scenario instance: the first alert on any of its
  targets at or after the scenario start, minus the start, in seconds (alerts
  on a target before its scenario began concern earlier activity and are
  ignored). **Events to detect**: how many of the scenario's events happened
  at or before that alert (so the triggering event counts); needs event times.
  Per type: median and 90th percentile (linear interpolation between ranks,
  numpy's default) over detected instances; undetected instances are listed.
- Per target **role** of a scenario type (``fraud_call_team/fraud_number``,
  ``fraud_call_team/mule``...): recall, precision (as for the type, with the
  detectors that caught this role), median seconds to each target's first
  alert, the median of **own events to detect** (the scenario events the
  target itself made, as caller, sender, payer or registrant, up to its first
  alert: a fraud number's calls before it was flagged), and the share of
  targets **detected before acting** (alerted before their first own event: a
  mule flagged before the money leaves it). The last two need event facts.
- Per **detector**: distinct alerts, alerted entities, true-positive entities
  (fraud targets), false-positive entities, precision = TP / alerted entities.
- **Benign false positives**: distinct alerted entities of benign scenarios
  (an entity that is also a fraud target is not one), listed per benign type.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from antifraud.alerts.models import Alert, Entity
from antifraud.evaluation.models import (
    AlertCounts,
    DetectorScore,
    EvaluationReport,
    InstanceDetection,
    RoleScore,
    ScenarioScore,
    TargetDetection,
)
from simulators.ground_truth import GroundTruth, ScenarioTruth


@dataclass(frozen=True)
class EventFact:
    """What evaluation needs of an event: when it happened and who made it (its partition key)."""

    time: datetime
    actor: str | None


class EvaluationError(ValueError):
    """The inputs cannot be evaluated together (e.g. event times missing for scenario events)."""


def _entity_order(entity: Entity) -> tuple[str, str]:
    return entity.kind, entity.value


def _sorted(entities: Iterable[Entity]) -> list[Entity]:
    return sorted(entities, key=_entity_order)


def _quantile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


class _AlertIndex:
    """Distinct alerts grouped by entity and by detector."""

    def __init__(self, alerts: Iterable[Alert]) -> None:
        distinct: dict[str, Alert] = {}
        self.received = 0
        for alert in alerts:
            self.received += 1
            distinct.setdefault(alert.alert_id, alert)
        self.distinct = len(distinct)
        self.by_entity: dict[Entity, list[Alert]] = defaultdict(list)
        self.entities_by_detector: dict[str, set[Entity]] = defaultdict(set)
        self.alerts_by_detector: dict[str, int] = defaultdict(int)
        for alert in sorted(distinct.values(), key=lambda a: (a.window_end, a.detector)):
            self.by_entity[alert.entity].append(alert)
            self.entities_by_detector[alert.detector].add(alert.entity)
            self.alerts_by_detector[alert.detector] += 1

    def detectors_of(self, entity: Entity) -> set[str]:
        return {a.detector for a in self.by_entity.get(entity, [])}

    def first_alert(self, entity: Entity, since: datetime) -> Alert | None:
        return next((a for a in self.by_entity.get(entity, []) if a.window_end >= since), None)


def _targets(scenario: ScenarioTruth) -> list[tuple[Entity, str]]:
    return [(Entity(kind=e.kind, value=e.value), e.role) for e in scenario.entities if e.target]


def _instance(scenario: ScenarioTruth, index: _AlertIndex, events: Mapping[str, EventFact] | None) -> InstanceDetection:
    targets = []
    for entity, role in _targets(scenario):
        alert = index.first_alert(entity, scenario.start)
        targets.append(
            TargetDetection(
                entity=entity,
                role=role,
                first_alert_at=alert.window_end if alert else None,
                detector=alert.detector if alert else None,
            )
        )
    count = None
    first = min(
        (t for t in targets if t.first_alert_at is not None), key=lambda t: (t.first_alert_at, t.detector), default=None
    )
    detected_at = first.first_alert_at if first else None
    if detected_at is not None and events is not None:
        count = sum(1 for event_id in scenario.event_ids if events[event_id].time <= detected_at)
    return InstanceDetection(
        scenario_id=scenario.scenario_id,
        scenario=scenario.scenario,
        start=scenario.start,
        detected_at=detected_at,
        detector=first.detector if first else None,
        seconds_to_detect=(detected_at - scenario.start).total_seconds() if detected_at is not None else None,
        events_to_detect=count,
        targets=targets,
    )


def _scenario_score(
    instances: list[InstanceDetection], targets: set[Entity], fraud_targets: set[Entity], index: _AlertIndex
) -> ScenarioScore:
    alerted = {e for e in targets if e in index.by_entity}
    detectors, false_positives = _caught_by(alerted, fraud_targets, index)
    detected = [i for i in instances if i.detected_at is not None]
    seconds = [i.seconds_to_detect for i in detected if i.seconds_to_detect is not None]
    events = [float(i.events_to_detect) for i in detected if i.events_to_detect is not None]
    return ScenarioScore(
        instances=len(instances),
        detected_instances=len(detected),
        targets=len(targets),
        alerted_targets=len(alerted),
        detectors=detectors,
        false_positive_entities=len(false_positives),
        precision=len(alerted) / (len(alerted) + len(false_positives)) if detectors else None,
        recall=len(alerted) / len(targets) if targets else None,
        median_seconds_to_detect=_quantile(seconds, 50),
        p90_seconds_to_detect=_quantile(seconds, 90),
        median_events_to_detect=_quantile(events, 50),
        p90_events_to_detect=_quantile(events, 90),
        undetected=[i.scenario_id for i in instances if i.detected_at is None],
        missed_targets=_sorted(targets - alerted),
    )


def _caught_by(entities: set[Entity], fraud_targets: set[Entity], index: _AlertIndex) -> tuple[list[str], set[Entity]]:
    """The detectors that alerted any of ``entities``, and their false-positive entities."""
    detectors = sorted({d for e in entities for d in index.detectors_of(e)})
    return detectors, {e for d in detectors for e in index.entities_by_detector[d]} - fraud_targets


def _own_events(scenario: ScenarioTruth, target: TargetDetection, events: Mapping[str, EventFact]) -> list[datetime]:
    return [events[e].time for e in scenario.event_ids if events[e].actor == target.entity.value]


def _role_scores(
    fraud: list[ScenarioTruth],
    instances: list[InstanceDetection],
    fraud_targets: set[Entity],
    index: _AlertIndex,
    events: Mapping[str, EventFact] | None,
) -> dict[str, RoleScore]:
    by_role: dict[tuple[str, str], list[tuple[ScenarioTruth, TargetDetection]]] = defaultdict(list)
    for scenario, instance in zip(fraud, instances):
        for target in instance.targets:
            by_role[(scenario.scenario, target.role)].append((scenario, target))
    roles = {}
    for (name, role), members in sorted(by_role.items()):
        targets = {t.entity for _, t in members}
        alerted = {e for e in targets if e in index.by_entity}
        detectors, false_positives = _caught_by(alerted, fraud_targets, index)
        detected = [(s, t) for s, t in members if t.first_alert_at is not None]
        seconds = [(t.first_alert_at - s.start).total_seconds() for s, t in detected if t.first_alert_at]
        own_counts: list[float] = []
        before_acting = 0
        if events is not None:
            for scenario, target in detected:
                own = _own_events(scenario, target, events)
                own_counts.append(
                    float(sum(1 for when in own if target.first_alert_at and when <= target.first_alert_at))
                )
                before_acting += bool(target.first_alert_at and (not own or target.first_alert_at < min(own)))
        roles[f"{name}/{role}"] = RoleScore(
            scenario=name,
            role=role,
            targets=len(targets),
            alerted_targets=len(alerted),
            false_positive_entities=len(false_positives),
            precision=len(alerted) / (len(alerted) + len(false_positives)) if detectors else None,
            recall=len(alerted) / len(targets),
            median_seconds_to_detect=_quantile(seconds, 50),
            median_own_events_to_detect=_quantile(own_counts, 50),
            detected_before_acting=before_acting / len(members) if events is not None else None,
        )
    return roles


def _check_event_times(scenarios: list[ScenarioTruth], events: Mapping[str, EventFact]) -> None:
    missing = [(s.scenario_id, e) for s in scenarios for e in s.event_ids if e not in events]
    if missing:
        raise EvaluationError(
            f"no event time for {len(missing)} scenario events (first: {missing[0][1]!r} of {missing[0][0]})"
        )


def evaluate(
    truth: GroundTruth, alerts: Iterable[Alert], events: Mapping[str, EventFact] | None = None
) -> EvaluationReport:
    """Score ``alerts`` against ``truth``; ``events`` (event id -> time and actor) enables event counts."""
    fraud = [s for s in truth.scenarios if not s.benign]
    if events is not None:
        _check_event_times(fraud, events)
    index = _AlertIndex(alerts)
    alerted = set(index.by_entity)

    targets_by_type: dict[str, set[Entity]] = defaultdict(set)
    instances_by_type: dict[str, list[InstanceDetection]] = defaultdict(list)
    instances = [_instance(scenario, index, events) for scenario in fraud]
    for scenario, instance in zip(fraud, instances):
        targets_by_type[scenario.scenario].update(entity for entity, _ in _targets(scenario))
        instances_by_type[scenario.scenario].append(instance)
    fraud_targets = set().union(*targets_by_type.values())

    benign_alerted: dict[str, set[Entity]] = defaultdict(set)
    for scenario in truth.scenarios:
        if scenario.benign:
            entities = {Entity(kind=e.kind, value=e.value) for e in scenario.entities}
            benign_alerted[scenario.scenario].update((entities & alerted) - fraud_targets)

    detectors = {}
    for name in sorted(index.entities_by_detector):
        entities = index.entities_by_detector[name]
        true_positives = entities & fraud_targets
        caught = {t: len(targets & entities) for t, targets in sorted(targets_by_type.items())}
        detectors[name] = DetectorScore(
            alerts=index.alerts_by_detector[name],
            alerted_entities=len(entities),
            true_positive_entities=len(true_positives),
            false_positive_entities=len(entities - true_positives),
            precision=len(true_positives) / len(entities),
            caught_targets={t: n for t, n in caught.items() if n},
            false_positives=_sorted(entities - true_positives),
        )

    return EvaluationReport(
        scenarios={
            name: _scenario_score(instances_by_type[name], targets_by_type[name], fraud_targets, index)
            for name in sorted(instances_by_type)
        },
        roles=_role_scores(fraud, instances, fraud_targets, index, events),
        detectors=detectors,
        alerts=AlertCounts(
            received=index.received, distinct=index.distinct, duplicates=index.received - index.distinct
        ),
        alerted_entities=len(alerted),
        false_positive_entities=len(alerted - fraud_targets),
        benign_false_positive_entities={name: _sorted(e) for name, e in sorted(benign_alerted.items())},
        events_known=events is not None,
        instances=[i for name in sorted(instances_by_type) for i in instances_by_type[name]],
    )
