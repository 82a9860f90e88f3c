"""The shape of an evaluation report, as the table, the JSON and the charts read it.

Fields holding :class:`~antifraud.alerts.models.Entity` values carry full
identifiers (phone, account and ID numbers). They stay in the in-memory report
so a caller can act on them, but :meth:`EvaluationReport.to_json` leaves them
out unless asked, and the table masks them.
"""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, computed_field

from antifraud.alerts.models import Entity


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetDetection(_Frozen):
    """When one target entity of an instance was first alerted (the hook for per-target figures)."""

    entity: Entity
    role: str
    first_alert_at: datetime | None
    detector: str | None


class InstanceDetection(_Frozen):
    """Time to detect one scenario instance: its first alert on any of its targets."""

    scenario_id: str
    scenario: str
    start: datetime
    detected_at: datetime | None
    detector: str | None
    seconds_to_detect: float | None
    events_to_detect: int | None
    """Scenario events at or before ``detected_at``; None without event times or detection."""
    targets: list[TargetDetection]


class ScenarioScore(_Frozen):
    """Detection quality for one fraud scenario type, over all its instances."""

    instances: int
    detected_instances: int
    targets: int
    alerted_targets: int
    detectors: list[str]
    """Detectors with at least one alert on a target of this type."""
    false_positive_entities: int
    """Alerted non-target entities of those detectors."""
    precision: float | None
    recall: float | None
    median_seconds_to_detect: float | None
    p90_seconds_to_detect: float | None
    median_events_to_detect: float | None
    p90_events_to_detect: float | None
    undetected: list[str]
    """Scenario ids of instances with no alert on any target."""
    missed_targets: list[Entity]


class RoleScore(_Frozen):
    """Detection of one target role of one scenario type (fraud numbers, mule accounts, ...)."""

    scenario: str
    role: str
    targets: int
    alerted_targets: int
    false_positive_entities: int
    """Entities no fraud targets that the detectors which caught this role alerted."""
    precision: float | None
    """Alerted targets against the false-positive entities of the detectors that caught this role."""
    recall: float
    median_seconds_to_detect: float | None
    median_own_events_to_detect: float | None
    """Scenario events the target itself made (its calls, its transfers out) up to its first alert."""
    detected_before_acting: float | None
    """Share of the role's targets alerted before their first own scenario event (a mule before the
    money leaves it); None without event facts."""


class DetectorScore(_Frozen):
    """One detector's alerts judged by entity."""

    alerts: int
    alerted_entities: int
    true_positive_entities: int
    false_positive_entities: int
    precision: float
    caught_targets: dict[str, int]
    """Scenario type -> its targets this detector alerted."""
    false_positives: list[Entity]


class AlertCounts(_Frozen):
    received: int
    distinct: int
    duplicates: int


class EvaluationReport(_Frozen):
    """Everything ``antifraud evaluate`` reports; see :mod:`antifraud.evaluation.scoring`."""

    scenarios: dict[str, ScenarioScore]
    roles: dict[str, RoleScore]
    """``scenario/role`` -> how that role's targets were detected."""
    detectors: dict[str, DetectorScore]
    alerts: AlertCounts
    alerted_entities: int
    false_positive_entities: int
    benign_false_positive_entities: dict[str, list[Entity]]
    """Benign scenario type -> its alerted entities."""
    events_known: bool
    """Whether event times were given, so events-to-detect could be counted."""
    instances: list[InstanceDetection]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def benign_false_positives(self) -> int:
        """Distinct alerted entities of benign scenarios (one in two benign types counts once)."""
        return len({e for entities in self.benign_false_positive_entities.values() for e in entities})

    @computed_field  # type: ignore[prop-decorator]
    @property
    def benign_false_positives_by_scenario(self) -> dict[str, int]:
        return {name: len(entities) for name, entities in self.benign_false_positive_entities.items()}

    def to_json(self, *, show_entities: bool = False) -> dict[str, Any]:
        """The report as JSON data; without ``show_entities`` no identifier appears."""
        return self.model_dump(mode="json", exclude=None if show_entities else _IDENTIFIER_FIELDS)


_IDENTIFIER_FIELDS: dict[str, Any] = {
    "scenarios": {"__all__": {"missed_targets"}},
    "detectors": {"__all__": {"false_positives"}},
    "instances": {"__all__": {"targets"}},
    "benign_false_positive_entities": True,
}
"""Every field that holds an Entity, for leaving identifiers out of the JSON."""
