"""Reading whole topics in tests, with kafka-python on assigned partitions."""

import threading
import time
from typing import Any

from streams.io import read_topic


def read_all(bootstrap: str, topic: str, *, settle: float = 1.0, timeout: float = 30.0) -> list[Any]:
    """Every record currently on ``topic``: reads until nothing new arrives for ``settle`` seconds."""
    stop = threading.Event()
    records: list[Any] = []
    last_new = time.monotonic()
    deadline = last_new + timeout

    def run() -> None:
        nonlocal last_new
        for record in read_topic(bootstrap, topic, stop, poll_ms=100):
            records.append(record)
            last_new = time.monotonic()

    reader = threading.Thread(target=run, daemon=True)
    reader.start()
    while time.monotonic() - last_new < settle and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    reader.join(5)
    return records
