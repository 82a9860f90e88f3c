"""The alert: what a detector concluded, why, from which events, for whom.

``alert_id`` is derived from the detector, the entity and the ``trigger``: the id of the event (or
timer) whose judgement raised the alert. Never from wall-clock time, randomness, batching or arrival
order, so replaying the same input gives the same ids, consumers can drop duplicates after a crash and
replay, and two incidents (two transfers to one payee in the same second) never share one.
``raised_at`` is when the worker produced it (wall clock): it is not part of what the alert says, and
differs between a run and its replay.
"""

import hashlib
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from antifraud.events.models import BankTransfer, GeoPoint
from antifraud.events.types import AccountNo, Code, Fen, PersonName, UtcTime

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
    population_share: float | None = None
    """With a population baseline: the share of the population as far out as this value or further."""
    rarity: float | None = None
    """With a population baseline: how rare that is, in powers of ten (what it adds to the population
    score)."""
    learned_part: float | None = None
    """With a learned model (in shadow): what this feature adds to its score, its weight times ``rarity``."""


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


def alert_id_for(detector: str, entity: Entity, trigger: str) -> str:
    """Stable id: the same detector, entity and triggering event always give the same id."""
    material = f"{detector}|{entity.kind}|{entity.value}|{trigger}"
    return hashlib.sha256(material.encode()).hexdigest()[:32]


class TransferFacts(BaseModel):
    """The transfer an alert judges, as a counter needs it: the teller serves the payer, so a warning names
    who is paying, how much, how and where, and when (with several customers in the hall)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    payer_name: PersonName
    payer_account: AccountNo
    amount_fen: Fen
    channel: Literal["counter", "atm", "online", "mobile"]
    branch_id: Code | None = None
    atm_id: Code | None = None
    at: UtcTime

    @classmethod
    def of(cls, transfer: BankTransfer) -> "TransferFacts":
        return cls(
            payer_name=transfer.payer_name,
            payer_account=transfer.payer_account,
            amount_fen=transfer.amount_fen,
            channel=transfer.channel,
            branch_id=transfer.branch_id,
            atm_id=transfer.atm_id,
            at=transfer.event_time,
        )


class Alert(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    alert_id: str
    detector: str
    entity: Entity
    trigger: Annotated[str, Field(min_length=1, max_length=128)]
    """The event (or timer) whose judgement raised the alert."""
    severity: Severity
    score: Annotated[float, Field(ge=0)]
    reasons: Annotated[list[Reason], Field(min_length=1)]
    evidence_event_ids: Annotated[list[str], Field(min_length=1)]
    audience: Annotated[list[Audience], Field(min_length=1)]
    window_start: UtcTime
    window_end: UtcTime
    place: GeoPoint | None = None
    """Where the alerted thing was seen, when it is a place (a fake base station)."""
    transfer: TransferFacts | None = None
    """The transfer judged, for an alert raised on one (a counter's warning names its payer and amount)."""
    raised_at: UtcTime | None = None
    """When the worker produced the alert (wall clock; None until then): latency is ``raised_at`` less
    ``window_end``."""
    schema_version: Literal[1] = 1

    @classmethod
    def create(cls, *, detector: str, entity: Entity, trigger: str, **fields: object) -> "Alert":
        """Build an alert whose id follows from detector, entity and trigger."""
        return cls(
            alert_id=alert_id_for(detector, entity, trigger),
            detector=detector,
            entity=entity,
            trigger=trigger,
            **fields,
        )

    def content(self) -> dict[str, object]:
        """What the alert says, without when it was produced: equal for a run and its replay."""
        return self.model_dump(mode="json", exclude={"raised_at"})

    @model_validator(mode="after")
    def _window_ordered(self) -> "Alert":
        if self.window_end < self.window_start:
            raise ValueError("window_end is before window_start")
        if self.alert_id != alert_id_for(self.detector, self.entity, self.trigger):
            raise ValueError("alert_id does not match detector, entity and trigger")
        return self
