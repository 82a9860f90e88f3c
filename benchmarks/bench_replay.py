"""Replay throughput: events/s that ``antifraud replay --max`` sends to the embedded broker.

Builds a gzip events file by repeating the demo stream (several kinds, about
370 bytes an event) with fresh ids and shifted times, then times the whole
command: read, decode, reorder, encode, send, flush. Reading alone (no
Kafka) is timed too, to show which side limits the rate.

    .venv/bin/python benchmarks/bench_replay.py [--events 100000]
"""

import argparse
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from antifraud.demo_stream import events as demo_events
from antifraud.events.models import Event
from antifraud.stack.embedded import EmbeddedStack
from streams import topics
from streams.eventfile import EventFileWriter
from streams.replay import OrderedEvents, StopFlag, add_command

PARTITIONS = 4


def stream(count: int) -> Iterator[Event]:
    """``count`` events in event-time order: the demo stream again and again, each round after the last."""
    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    demo = list(demo_events(base))
    span = demo[-1].event_time - base + timedelta(seconds=1)
    for n in range(count):
        round_, event = divmod(n, len(demo))
        yield demo[event].model_copy(update={"event_id": f"bench-{n}", "event_time": demo[event].event_time + round_ * span})


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--events", type=int, default=100_000)
    count = options.parse_args().events
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        path = Path(tmp) / "bench.jsonl.gz"
        with EventFileWriter(path) as out:
            for event in stream(count):
                out.write(event)
        print(f"{count} events, {path.stat().st_size / count:.0f} compressed bytes each")

        started = time.perf_counter()
        read = sum(1 for _ in OrderedEvents(path, 60.0, strict=True, stop=StopFlag(), warn=print))
        reading = time.perf_counter() - started
        print(f"read + decode + reorder only: {read / reading:,.0f} events/s")

        with EmbeddedStack(workdir=Path(tmp) / "stack") as endpoints:
            topics.ensure_topics(endpoints.kafka_bootstrap, PARTITIONS)
            parser = argparse.ArgumentParser()
            add_command(parser.add_subparsers())
            args = parser.parse_args(["replay", str(path), "--max", "--bootstrap", endpoints.kafka_bootstrap])
            started = time.perf_counter()
            code = args.run(args)
            elapsed = time.perf_counter() - started
        print(f"replay --max to the embedded broker: {count / elapsed:,.0f} events/s ({elapsed:.2f} s, exit {code})")


if __name__ == "__main__":
    main()
