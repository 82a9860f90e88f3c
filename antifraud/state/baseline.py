"""Population baselines and a learned model as files, read once at start-up: the baselines fitted by
``antifraud baseline fit`` and named by ``[fraud_number] baseline`` (calling numbers) and ``[transfer_risk]
baseline`` (accounts), the model fitted by ``antifraud model fit`` against the fraud-number baseline and
named by ``[fraud_number] model``.

Both are JSON with a ``version``: the SHA-256 of what they hold, so an alert's reasons can be traced to
the exact file, and a replay with the same files gives the same reasons. The baseline:
``{"version", "fitted_on", "features": {name: {"count", "points"}}}``; the model: ``{"version",
"fitted_on", "baseline_version", "weights": {feature: weight}, "intercept", "confirmed", "dismissed",
"samples"}``. A model is refused beside any baseline but the one it was fitted against. Refitting either
is an operator's release, like any threshold change.
"""

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from detectors.baseline import Baseline, FeatureQuantiles
from detectors.learned import LinearModel

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


class _ModelFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str
    fitted_on: str
    baseline_version: str
    weights: dict[str, float]
    intercept: float
    confirmed: int = Field(ge=0)
    """Numbers of confirmed cases it learned from."""
    dismissed: int = Field(ge=0)
    samples: int = Field(ge=0)
    """Numbers x days it was fitted on."""

    def content(self) -> dict[str, Any]:
        """What the version is the hash of: all but the version and the file it was fitted on."""
        return self.model_dump(exclude={"version", "fitted_on"})


def _digest(content: Any) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _version(features: dict[str, _Feature]) -> str:
    return _digest({k: v.model_dump() for k, v in sorted(features.items())})


F = TypeVar("F", bound=BaseModel)


def _read(path: Path, kind: type[F], what: str) -> F:
    """``path`` as ``kind``, or a ``ValueError`` naming the file and what is wrong."""
    try:
        return kind.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(file)'}: {e['msg']}" for e in exc.errors()[:3])
        raise ValueError(f"{what} {path} is not a {what} file: {problems}") from None


def save_baseline(baseline: Baseline, path: Path, fitted_on: str) -> str:
    """Write ``baseline`` to ``path``; return its version."""
    features = {name: _Feature(count=f.count, points=list(f.points)) for name, f in sorted(baseline.features.items())}
    version = _version(features)
    path.write_text(_File(version=version, fitted_on=fitted_on, features=features).model_dump_json(indent=1) + "\n")
    return version


def load_baseline(path: Path) -> tuple[Baseline, str]:
    """Read a baseline file and its version; a ``ValueError`` naming the file and what is wrong otherwise."""
    data = _read(path, _File, "baseline")
    if _version(data.features) != data.version:
        raise ValueError(f"baseline {path}: its features do not match its version (edited by hand?)")
    if any(f.points != sorted(f.points) for f in data.features.values()):
        raise ValueError(f"baseline {path}: a feature's points are not in order")
    features = {name: FeatureQuantiles(tuple(f.points), f.count) for name, f in data.features.items()}
    return Baseline(features), data.version


def save_model(
    model: LinearModel,
    path: Path,
    *,
    fitted_on: str,
    baseline_version: str,
    confirmed: int,
    dismissed: int,
    samples: int,
) -> str:
    """Write ``model`` (fitted against the baseline of ``baseline_version``) to ``path``; return its version."""
    fields = {
        "baseline_version": baseline_version,
        "weights": dict(sorted(model.weights.items())),
        "intercept": model.intercept,
        "confirmed": confirmed,
        "dismissed": dismissed,
        "samples": samples,
    }
    version = _digest(fields)
    path.write_text(_ModelFile(version=version, fitted_on=fitted_on, **fields).model_dump_json(indent=1) + "\n")
    return version


def load_model(path: Path, baseline_version: str) -> tuple[LinearModel, str]:
    """Read a model file and its version; a ``ValueError`` when it is not one, was edited, or was fitted
    against another baseline than the one of ``baseline_version`` (its weights mean nothing beside it)."""
    data = _read(path, _ModelFile, "model")
    if _digest(data.content()) != data.version:
        raise ValueError(f"model {path}: its content does not match its version (edited by hand?)")
    if data.baseline_version != baseline_version:
        raise ValueError(
            f"model {path} was fitted against baseline {data.baseline_version[:12]}, not the configured "
            f"{baseline_version[:12]}: refit it (antifraud model fit) against the baseline in use"
        )
    return LinearModel(data.weights, data.intercept), data.version


def configured_baseline(path: str, population: str) -> tuple[Baseline, str] | None:
    """The ``population`` baseline (``fraud-number``, ``accounts``) a thresholds file names, and its version;
    None, logged, when it names none."""
    if not path:
        log.info("no %s baseline: its detector judges by its rules alone", population)
        return None
    baseline, version = load_baseline(Path(path))
    log.info("%s baseline %s, version %s, %d samples", population, path, version[:12], baseline.count)
    return baseline, version


def configured_scoring(baseline_path: str, model_path: str) -> tuple[Baseline | None, LinearModel | None]:
    """The fraud-number baseline and learned model the thresholds name (each None, logged, when not named)."""
    configured = configured_baseline(baseline_path, "fraud-number")
    if configured is None:
        return None, None
    baseline, version = configured
    if not model_path:
        return baseline, None
    model, model_version = load_model(Path(model_path), version)
    log.info("fraud-number learned model %s, version %s, in shadow", model_path, model_version[:12])
    return baseline, model
