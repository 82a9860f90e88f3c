"""The carrier's cell registry for the fake base station detector, read once at start-up.

The registry is a JSON file ``{"cells": [{"cell_id", "lat", "lon", "operator",
"commissioned"?}, ...]}`` (what ``antifraud simulate`` writes as ``NAME.cells.json``;
``commissioned`` is the epoch second a new cell went on air). Its path comes from
``ANTIFRAUD_CELL_REGISTRY`` or the ``[fake_base_station] registry`` threshold.
Without one, the unknown-cell and mis-located-cell features are off: only
downgrades with activity can flag a cell.
"""

import json
import logging
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from antifraud.thresholds import FakeBaseStationThresholds
from detectors.fake_base_station import CellRegistry, RegisteredCell

log = logging.getLogger(__name__)


class _Cell(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    cell_id: str = Field(min_length=1)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    operator: str = Field(min_length=1)
    commissioned: float | None = None


class _Registry(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    cells: list[_Cell]


def load_registry(path: Path) -> CellRegistry:
    """Read and validate a registry file; a clear ``ValueError`` naming the file otherwise."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read cell registry {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"cell registry {path} is not JSON: {exc}") from exc
    try:
        cells = _Registry.model_validate(raw).cells
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise ValueError(f"invalid cell registry {path}: {problems}") from exc
    registry = {c.cell_id: RegisteredCell(c.lat, c.lon, c.operator, c.commissioned) for c in cells}
    if len(registry) != len(cells):
        raise ValueError(f"invalid cell registry {path}: a cell_id is listed twice")
    return registry


def configured_registry(limits: FakeBaseStationThresholds) -> CellRegistry | None:
    """The registry the thresholds name (``ANTIFRAUD_CELL_REGISTRY`` over the file's, by
    :meth:`antifraud.config.Settings.thresholds`); ``None`` (logged) when none is."""
    path = limits.registry
    if not path:
        log.warning(
            "no cell registry (%s or [fake_base_station] registry): the unknown-cell and "
            "mis-located-cell features of the fake base station detector are off",
            "ANTIFRAUD_CELL_REGISTRY",
        )
        return None
    registry = load_registry(Path(path))
    log.info("cell registry %s: %d cells", path, len(registry))
    return registry
