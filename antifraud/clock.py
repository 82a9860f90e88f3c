"""The wall clock, for the services that take a ``clock`` (tests pass their own)."""

from datetime import datetime, timezone


def utcnow() -> datetime:
    """Now, timezone-aware in UTC (every stored time in the project is)."""
    return datetime.now(timezone.utc)
