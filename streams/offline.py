"""``antifraud detect``: the worker's stages, pipeline and checkpoint over an events file, without Kafka.

The file (in event-time order) is one partition per input topic, all owned, read in batches cut at an
event-time boundary; alerts go to a file, every other record the worker would produce is counted. It
concludes what the worker concludes on the same events (``tests/test_determinism.py``), which is how
detection is tuned on a simulated city in seconds (``detect`` then ``evaluate --alerts``) and how the
detectors' throughput with Redis state is measured apart from the broker. When the file ends, time
moves on by the cross-entity delay: what the last events told other entities runs, and the timers due
by then (holds due by then are released), as in a worker that has caught up with its partitions.
"""

import argparse
import asyncio
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import redis.asyncio

from antifraud.config import Settings
from antifraud.events.codec import InvalidEvent, decode_any
from antifraud.events.types import EARLIEST_EVENT_TIME
from antifraud.stack.embedded import EmbeddedStack
from antifraud.thresholds import Thresholds
from streams.checkpoint import Headers
from streams.engine import Engine
from streams.eventfile import read_lines
from streams.pipeline import Stage
from streams.progress import Partitioning
from streams.records import Input, OutRecord, Record
from streams.runtime import tune_gc
from streams.topics import ALERTS, INPUT_TOPICS

DEAD_LETTER_MAX_BYTES = 1 << 20


@dataclass
class DetectReport:
    events: Counter[str] = field(default_factory=Counter)
    """Valid events by kind."""
    bad_lines: int = 0
    alerts: Counter[str] = field(default_factory=Counter)
    """Alerts by detector."""
    records: Counter[str] = field(default_factory=Counter)
    """Other records the worker would produce, by topic."""
    seconds: float = 0.0


class FileSink:
    """Alerts to ``on_alert`` (their JSON), other records counted."""

    def __init__(self, on_alert: Callable[[bytes], None], report: DetectReport) -> None:
        self.on_alert = on_alert
        self.report = report

    async def produce(self, records: Sequence[tuple[OutRecord, Headers]]) -> None:
        for record, _ in records:
            if record.topic == ALERTS:
                self.report.alerts[orjson.loads(record.value)["detector"]] += 1
                self.on_alert(record.value)
            else:
                self.report.records[record.topic] += 1


def batches(path: Path, size: int, delay: float, report: DetectReport) -> Iterator[tuple[list[Input], float]]:
    """The file's valid events, about ``size`` at a time, each batch with its bound: the event time of
    the next batch's first event, cut only where that is later than every event before it (so a file a
    little out of order is cut where it can be); the last one's is just past its newest event plus
    ``delay``, so what its events told other entities runs too. Bad lines are counted and skipped."""
    batch: list[Input] = []
    newest = -math.inf
    for number, raw in read_lines(path):
        try:
            event = decode_any(raw)
        except InvalidEvent:
            report.bad_lines += 1
            continue
        if event.event_time < EARLIEST_EVENT_TIME:  # as the worker dead-letters it
            report.bad_lines += 1
            continue
        item = Input.of(event, Record(INPUT_TOPICS[getattr(event, "kind")], 0, number, None, raw))  # noqa: B009
        if len(batch) >= size and item.at > newest:
            report.events.update(i.kind for i in batch)
            yield batch, item.at
            batch = []
        batch.append(item)
        if item.at > newest:
            newest = item.at
    if batch:
        report.events.update(i.kind for i in batch)
        yield batch, math.nextafter(newest + delay, math.inf)


def file_partitioning() -> Partitioning:
    """The file as one partition per input topic."""
    return Partitioning({topic: 1 for topic in INPUT_TOPICS.values()})


async def detect_file(
    path: Path,
    redis_client: redis.asyncio.Redis,
    thresholds: Thresholds,
    on_alert: Callable[[bytes], None],
    chunk_size: int = 5000,
    stages: Sequence[Stage] | None = None,
) -> DetectReport:
    tune_gc()
    report = DetectReport()
    engine = Engine(
        redis_client,
        thresholds,
        FileSink(on_alert, report),
        file_partitioning(),
        dead_letter_max_bytes=DEAD_LETTER_MAX_BYTES,
        stages=stages,
    )
    await engine.claim(engine.partitioning.all())
    started = time.perf_counter()
    for batch, bound in batches(path, chunk_size, thresholds.stream.cross_entity_delay_seconds, report):
        await engine.process(batch, bound)
    report.seconds = time.perf_counter() - started
    return report


async def _detect(args: argparse.Namespace, redis_url: str) -> DetectReport:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        thresholds = Settings.from_env().thresholds()
        with open(args.output, "wb") as out:

            def write(alert: bytes) -> None:
                out.write(alert + b"\n")

            return await detect_file(args.events, client, thresholds, write, args.chunk_size)
    finally:
        await client.aclose()


def _run(args: argparse.Namespace) -> int:
    if not args.events.is_file():
        sys.stderr.write(f"antifraud detect: no events file {args.events}\n")
        return 2
    with EmbeddedStack(kafka=False) as endpoints:
        report = asyncio.run(_detect(args, endpoints.redis_url))
    total = sum(report.events.values())
    print(
        f"{total} events ({report.bad_lines} bad lines skipped) in {report.seconds:.1f} s, "
        f"{total / max(report.seconds, 1e-9):,.0f} events/s; alerts written to {args.output}"
    )
    for detector, count in sorted(report.alerts.items()):
        print(f"  {detector:<24} {count} alerts")
    return 0


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {text}")
    return value


def add_command(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "detect",
        help="run the detectors over an events file without Kafka, writing alerts to a file",
        description="Run the worker's detector stages, with their Redis state (REDIS_URL, or an embedded "
        "redis-server), over an events file in event-time order; write the alerts as JSON lines for "
        "`antifraud evaluate --alerts`.",
    )
    parser.add_argument("events", type=Path, help="events file (gzip or plain JSON lines)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="alerts file to write (JSON lines)")
    parser.add_argument("--chunk-size", type=positive_int, default=5000, help="events per batch (default 5000)")
    parser.set_defaults(run=_run)
