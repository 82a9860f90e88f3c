"""Load detector thresholds from the one TOML file (see thresholds.toml)."""

import tomllib
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class CallFanoutThresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    window_seconds: int = Field(gt=0)
    max_distinct_callees: int = Field(gt=0)


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    call_fanout: CallFanoutThresholds


def load_thresholds(path: Path | None = None) -> Thresholds:
    """Read and validate the thresholds; the packaged defaults when no path is given."""
    if path is None:
        text = resources.files("antifraud").joinpath("thresholds.toml").read_text(encoding="utf-8")
        source = "packaged thresholds.toml"
    else:
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read thresholds file {source}: {exc.strerror}") from exc
    try:
        return Thresholds.model_validate(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ValueError(f"invalid thresholds in {source}: {exc}") from exc
