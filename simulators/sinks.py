"""Where simulated lines go: a gzip (or plain) JSON-lines file, or straight to Kafka."""

from pathlib import Path
from typing import Protocol

from streams.eventfile import EventFileWriter
from streams.io import EventProducer
from streams.topics import INPUT_TOPICS


class Sink(Protocol):
    wants_keys: bool
    """Whether :meth:`write` needs each line's kind and partition key."""

    def write(self, data: bytes, kinds: list[str], keys: list[bytes]) -> None:
        """``data``: lines each ending in a newline; ``kinds`` and ``keys`` per line when wanted."""

    def close(self) -> None: ...


class FileSink:
    """The events file (:class:`streams.eventfile.EventFileWriter`), a rendered slice at a time."""

    wants_keys = False

    def __init__(self, path: Path) -> None:
        self._file = EventFileWriter(path)

    def write(self, data: bytes, kinds: list[str], keys: list[bytes]) -> None:
        self._file.write_lines(data)

    def close(self) -> None:
        self._file.close()


class KafkaSink:
    """Each line to its kind's topic, keyed by the entity the topic is partitioned on."""

    wants_keys = True

    def __init__(self, bootstrap: str) -> None:
        self._producer = EventProducer(bootstrap)

    def write(self, data: bytes, kinds: list[str], keys: list[bytes]) -> None:
        for line, kind, key in zip(data.split(b"\n"), kinds, keys):
            self._producer.send_raw(INPUT_TOPICS[kind], key, line)

    def close(self) -> None:
        self._producer.flush()
        self._producer.close()
