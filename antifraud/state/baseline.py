"""A population baseline as a file: fitted by ``antifraud baseline fit``, named by ``[fraud_number] baseline``,
read once at start-up.

The file is JSON: ``{"version", "fitted_on", "features": {name: {"count", "points"}}}``. ``version`` is
the SHA-256 of the features, so an alert's reasons can be traced to the exact baseline, and a replay with
the same file gives the same reasons. Refitting (on a recent week of recorded input) is an operator's
release, like any threshold change.
"""

import hashlib
import json
import logging
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from detectors.baseline import Baseline, FeatureQuantiles

log = logging.getLogger(__name__)


class _Feature(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    count: int = Field(ge=0)
    points: list[float]


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str
    fitted_on: str
    features: dict[str, _Feature]


def _version(features: dict[str, _Feature]) -> str:
    canonical = json.dumps({k: v.model_dump() for k, v in sorted(features.items())}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def save_baseline(baseline: Baseline, path: Path, fitted_on: str) -> str:
    """Write ``baseline`` to ``path``; return its version."""
    features = {name: _Feature(count=f.count, points=list(f.points)) for name, f in sorted(baseline.features.items())}
    version = _version(features)
    path.write_text(_File(version=version, fitted_on=fitted_on, features=features).model_dump_json(indent=1) + "\n")
    return version


def load_baseline(path: Path) -> tuple[Baseline, str]:
    """Read a baseline file and its version; a ``ValueError`` naming the file and what is wrong otherwise."""
    try:
        data = _File.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read baseline {path}: {exc.strerror}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(file)'}: {e['msg']}" for e in exc.errors()[:3])
        raise ValueError(f"baseline {path} is not a baseline file: {problems}") from None
    if _version(data.features) != data.version:
        raise ValueError(f"baseline {path}: its features do not match its version (edited by hand?)")
    if any(f.points != sorted(f.points) for f in data.features.values()):
        raise ValueError(f"baseline {path}: a feature's points are not in order")
    features = {name: FeatureQuantiles(tuple(f.points), f.count) for name, f in data.features.items()}
    return Baseline(features), data.version


def configured_baseline(path: str) -> Baseline | None:
    """The fraud-number baseline the thresholds name, or None (logged) when they name none."""
    if not path:
        log.info("no fraud-number baseline ([fraud_number] baseline): alerts carry no population shares")
        return None
    baseline, version = load_baseline(Path(path))
    log.info("fraud-number baseline %s, version %s, %d samples", path, version[:12], baseline.count)
    return baseline
