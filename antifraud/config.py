"""Settings from environment variables, read once at start-up.

Every variable has a default that works on one machine; a bad value stops the
process with a message naming the variable.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

N = TypeVar("N", int, float)


class ConfigError(ValueError):
    """An environment variable holds a value that cannot be used."""


def _number(name: str, default: N, parse: Callable[[str], N], minimum: N) -> N:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not {'an integer' if parse is int else 'a number'}") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} is below the minimum {minimum}")
    return value


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str
    redis_url: str
    app_id: str
    web_host: str
    web_port: int
    partitions: int
    batch_size: int
    batch_within_s: float
    data_dir: Path
    thresholds_path: Path | None

    @classmethod
    def from_env(cls) -> "Settings":
        thresholds = os.environ.get("ANTIFRAUD_THRESHOLDS")
        return cls(
            kafka_bootstrap=os.environ.get("KAFKA_BOOTSTRAP") or "127.0.0.1:9092",
            redis_url=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
            app_id=os.environ.get("ANTIFRAUD_APP_ID") or "antifraud",
            web_host=os.environ.get("ANTIFRAUD_WEB_HOST") or "127.0.0.1",
            web_port=_number("ANTIFRAUD_WEB_PORT", 6066, int, 1),
            partitions=_number("ANTIFRAUD_PARTITIONS", 4, int, 1),
            batch_size=_number("ANTIFRAUD_BATCH_SIZE", 2000, int, 1),
            batch_within_s=_number("ANTIFRAUD_BATCH_WITHIN", 0.2, float, 0.001),
            data_dir=Path(os.environ.get("ANTIFRAUD_DATA_DIR") or ".antifraud-data"),
            thresholds_path=Path(thresholds) if thresholds else None,
        )
