"""Reading whole topics in tests, with kafka-python on assigned partitions."""

from typing import Any

from streams.io import read_until_idle


def read_all(bootstrap: str, topic: str, *, settle: float = 1.0, timeout: float = 30.0) -> list[Any]:
    """Every record currently on ``topic`` (none before it exists): read until nothing new arrives for ``settle`` s."""
    try:
        return read_until_idle(bootstrap, topic, idle=settle, timeout=timeout)
    except LookupError:  # not created yet: tests poll until it is
        return []
