"""Ground truth of a simulated stream: which scenarios ran, who was in them, when.

Written next to the events file as ``NAME.truth.json``; read by
``antifraud evaluate``. An entity's ``target`` says whether a detector should
flag it (a fraud number, a mule account, a dealer's ID number); benign
look-alike scenarios have no targets, and every alert on one of their entities
is a false positive.

Events file format (shared by ``simulate``, ``replay`` and ``record``): gzip-
compressed JSON lines, one event per line, each with its ``kind`` field, as
:func:`antifraud.events.codec.encode` writes it, in event-time order.
"""

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from antifraud.alerts.models import EntityKind
from antifraud.events.types import UtcTime


class TruthEntity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: EntityKind
    value: str
    role: str
    """What the entity does in the scenario: fraud_number, victim, mule, dealer_id, courier..."""
    target: bool
    """True when a detector should flag this entity."""


class ScenarioTruth(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    scenario_id: str
    """Unique within the file, e.g. ``fraud_call_team-3``."""
    scenario: str
    """The scenario type, e.g. ``fraud_call_team``, ``card_dealer``, ``courier_calls``."""
    benign: bool
    start: UtcTime
    """When the fraud (or look-alike behaviour) starts: the first scenario event's time."""
    end: UtcTime
    entities: list[TruthEntity]
    event_ids: list[str]
    """Every event the scenario generated, in event-time order."""
    params: dict[str, Any] = {}
    """The parameters this instance ran with: its scenario's, or drawn from the world's ranges."""


class GroundTruth(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int
    params: dict[str, Any]
    start: UtcTime
    end: UtcTime
    event_count: int
    scenarios: list[ScenarioTruth]

    def write(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=1) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> "GroundTruth":
        return cls.model_validate_json(path.read_bytes())


def truth_path(events_path: Path) -> Path:
    """``city.jsonl.gz`` -> ``city.truth.json``."""
    name = events_path.name
    for suffix in (".jsonl.gz", ".jsonl", ".gz"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return events_path.with_name(name + ".truth.json")
