"""Settings from environment variables, read once at start-up.

Every variable has a default that works on one machine; a bad value stops the
process with a message naming the variable.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from antifraud.audit.models import AuditKeys

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


def _url(name: str) -> str | None:
    raw = os.environ.get(name)
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} is not an http(s) URL")
    return raw


@dataclass(frozen=True)
class ForwardingSettings:
    """Where confirmed cases go besides the ``antifraud.forwarding`` topic, and how hard to try."""

    webhooks: dict[str, str] = field(default_factory=dict)
    """Target (police, carrier, bank) -> webhook URL; a target without one gets the topic only."""
    max_attempts: int = 8
    backoff_s: float = 2.0
    backoff_max_s: float = 300.0
    timeout_s: float = 10.0

    @classmethod
    def from_env(cls) -> "ForwardingSettings":
        urls = {t: _url(f"ANTIFRAUD_WEBHOOK_{t.upper()}") for t in ("police", "carrier", "bank")}
        return cls(
            webhooks={target: url for target, url in urls.items() if url},
            max_attempts=_number("ANTIFRAUD_DELIVERY_MAX_ATTEMPTS", 8, int, 1),
            backoff_s=_number("ANTIFRAUD_DELIVERY_BACKOFF", 2.0, float, 0.001),
            backoff_max_s=_number("ANTIFRAUD_DELIVERY_BACKOFF_MAX", 300.0, float, 0.001),
            timeout_s=_number("ANTIFRAUD_DELIVERY_TIMEOUT", 10.0, float, 0.1),
        )


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
    idle_s: float = 1.0
    """How long an input partition that has caught up and has nothing may hold back the others (Kafka
    Streams' ``max.task.idle.ms``); a record arriving later than that is late. ``ANTIFRAUD_IDLE_SECONDS``."""
    audit_archive_dir: Path | None = None
    """Where the worker archives audit records older than ``audit_retain_days`` (segments, ``antifraud audit
    archive``); None: only by hand. ``ANTIFRAUD_AUDIT_ARCHIVE_DIR``; every worker must see the same folder."""
    audit_retain_days: float = 90.0
    """How long audit records stay in Redis before the worker archives them. ``ANTIFRAUD_AUDIT_RETAIN_DAYS``."""
    audit_archive_s: float = 3600.0
    """How often the worker looks for audit records to archive. ``ANTIFRAUD_AUDIT_ARCHIVE_SECONDS``."""
    case_retain_days: float = 365.0
    """How long a closed or dismissed case is kept before the worker expires it (its audit records stay).
    ``ANTIFRAUD_CASE_RETAIN_DAYS``."""
    audit_anchor_s: float = 60.0
    """How often the worker publishes the audit chain's head to ``antifraud.audit-anchors``.
    ``ANTIFRAUD_AUDIT_ANCHOR_SECONDS``."""
    stop_grace_s: float = 30.0
    """How long a worker that stopped reading its input for good keeps serving ``/metrics`` before it exits
    (two scrape intervals, so Prometheus sees why). ``ANTIFRAUD_STOP_GRACE_SECONDS``."""
    max_record_bytes: int = 256 * 1024
    """An input record bigger than this is dead-lettered as ``oversized``. ``ANTIFRAUD_MAX_RECORD_BYTES``."""
    dead_letter_max_bytes: int = 64 * 1024
    """A dead letter carries at most this many bytes of the record (with its size and SHA-256 when cut)."""
    forwarding: ForwardingSettings = field(default_factory=ForwardingSettings)
    hold_clock: Literal["event", "wall"] = "event"
    """What releases held ATM transfers: the transfers' event time only (replays, tests), or also the
    wall clock (live operation: a quiet night still releases on time). ``ANTIFRAUD_HOLD_CLOCK``."""

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
            idle_s=_number("ANTIFRAUD_IDLE_SECONDS", 1.0, float, 0.0),
            stop_grace_s=_number("ANTIFRAUD_STOP_GRACE_SECONDS", 30.0, float, 0.0),
            audit_anchor_s=_number("ANTIFRAUD_AUDIT_ANCHOR_SECONDS", 60.0, float, 1.0),
            audit_archive_dir=_directory("ANTIFRAUD_AUDIT_ARCHIVE_DIR"),
            audit_retain_days=_number("ANTIFRAUD_AUDIT_RETAIN_DAYS", 90.0, float, 0.0),
            audit_archive_s=_number("ANTIFRAUD_AUDIT_ARCHIVE_SECONDS", 3600.0, float, 1.0),
            case_retain_days=_number("ANTIFRAUD_CASE_RETAIN_DAYS", 365.0, float, 0.0),
            max_record_bytes=_number("ANTIFRAUD_MAX_RECORD_BYTES", 256 * 1024, int, 1024),
            data_dir=Path(os.environ.get("ANTIFRAUD_DATA_DIR") or ".antifraud-data"),
            thresholds_path=Path(thresholds) if thresholds else None,
            forwarding=ForwardingSettings.from_env(),
            hold_clock=_hold_clock(),
        )


def _directory(name: str) -> Path | None:
    raw = os.environ.get(name)
    if not raw:
        return None
    if not Path(raw).is_dir():
        raise ConfigError(f"{name}={raw!r} is not a directory")
    return Path(raw)


def _hold_clock() -> Literal["event", "wall"]:
    raw = os.environ.get("ANTIFRAUD_HOLD_CLOCK") or "event"
    if raw == "event":
        return "event"
    if raw == "wall":
        return "wall"
    raise ConfigError(f"ANTIFRAUD_HOLD_CLOCK={raw!r} is not 'event' or 'wall'")


def audit_keys() -> AuditKeys:
    """The audit chain's keys: ``ANTIFRAUD_AUDIT_KEY`` (signs new records; 32+ bytes, never stored in Redis)
    and ``ANTIFRAUD_AUDIT_OLD_KEYS`` (space-separated, earlier keys that still verify what they signed)."""
    current = os.environ.get("ANTIFRAUD_AUDIT_KEY")
    if not current:
        raise ConfigError(
            "ANTIFRAUD_AUDIT_KEY is not set: the audit trail is chained under it (32+ random bytes, "
            'for example python -c "import secrets; print(secrets.token_urlsafe(48))")'
        )
    try:
        return AuditKeys(
            current.encode(), tuple(k.encode() for k in os.environ.get("ANTIFRAUD_AUDIT_OLD_KEYS", "").split())
        )
    except ValueError as error:
        raise ConfigError(f"ANTIFRAUD_AUDIT_KEY / ANTIFRAUD_AUDIT_OLD_KEYS: {error}") from None
