"""The alert: what a detector concluded, why, from which events, for whom.

``alert_id`` is derived from the detector, the entity and the window, never
from wall-clock time or randomness, so replaying the same input gives the same
ids and consumers can drop duplicates after a crash and replay.
"""

import hashlib
from datetime import datetime, timezone
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from antifraud.events.models import GeoPoint
from antifraud.events.types import UtcTime

Severity = Literal["low", "medium", "high", "critical"]
EntityKind = Literal["phone", "account", "id_number", "cell"]


class Entity(BaseModel):
    """The thing an alert is about: a number, an account, an ID number, a cell."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: EntityKind
    value: str


class Reason(BaseModel):
    """One feature that contributed, with its value and the threshold it crossed."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    feature: str
    value: float
    threshold: float


class Audience(BaseModel):
    """Who must see the alert: a branch counter, an ATM or a carrier (with its id), police, a bank's risk team."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["branch", "atm", "police", "bank_risk", "carrier"]
    id: str | None = None

    @model_validator(mode="after")
    def _branch_has_id(self) -> "Audience":
        if self.kind in ("branch", "atm", "carrier") and not self.id:
            raise ValueError(f"a {self.kind} audience needs the {self.kind} id")
        return self


def alert_id_for(detector: str, entity: Entity, window_start: datetime) -> str:
    """Stable id: the same detector, entity and window always give the same id."""
    material = f"{detector}|{entity.kind}|{entity.value}|{window_start.astimezone(timezone.utc).isoformat()}"
    return hashlib.sha256(material.encode()).hexdigest()[:32]


class Alert(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    alert_id: str
    detector: str
    entity: Entity
    severity: Severity
    score: Annotated[float, Field(ge=0)]
    reasons: Annotated[list[Reason], Field(min_length=1)]
    evidence_event_ids: Annotated[list[str], Field(min_length=1)]
    audience: Annotated[list[Audience], Field(min_length=1)]
    window_start: UtcTime
    window_end: UtcTime
    place: GeoPoint | None = None
    """Where the alerted thing was seen, when it is a place (a fake base station)."""
    schema_version: Literal[1] = 1

    @classmethod
    def create(cls, *, detector: str, entity: Entity, window_start: datetime, **fields: object) -> "Alert":
        """Build an alert whose id follows from detector, entity and window."""
        return cls(
            alert_id=alert_id_for(detector, entity, window_start),
            detector=detector,
            entity=entity,
            window_start=window_start,
            **fields,
        )

    @model_validator(mode="after")
    def _window_ordered(self) -> "Alert":
        if self.window_end < self.window_start:
            raise ValueError("window_end is before window_start")
        if self.alert_id != alert_id_for(self.detector, self.entity, self.window_start):
            raise ValueError("alert_id does not match detector, entity and window")
        return self
