"""Where simulated lines go: a gzip (or plain) JSON-lines file, or straight to Kafka."""

import zlib
from pathlib import Path
from typing import Protocol

from streams.io import EventProducer
from streams.topics import INPUT_TOPICS

COMPRESS_LEVEL = 1
"""Level 1: compression is most of the cost of writing; level 6 is 3x slower for 10% less size."""


class Sink(Protocol):
    wants_keys: bool
    """Whether :meth:`write` needs each line's kind and partition key."""

    def write(self, data: bytes, kinds: list[str], keys: list[bytes]) -> None:
        """``data``: lines each ending in a newline; ``kinds`` and ``keys`` per line when wanted."""

    def close(self) -> None: ...


class FileSink:
    """The events file format of :mod:`simulators.ground_truth`: gzip unless the name ends in ``.jsonl``.

    zlib with a gzip header of its own (no name, no time) keeps the file
    byte-identical from run to run.
    """

    wants_keys = False

    def __init__(self, path: Path, level: int = COMPRESS_LEVEL) -> None:
        self._out = path.open("wb")
        plain = path.name.endswith(".jsonl")
        self._zip = None if plain else zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def write(self, data: bytes, kinds: list[str], keys: list[bytes]) -> None:
        self._out.write(self._zip.compress(data) if self._zip else data)

    def close(self) -> None:
        if self._zip:
            self._out.write(self._zip.flush())
        self._out.close()


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
