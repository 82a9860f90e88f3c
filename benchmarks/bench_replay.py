"""Replay throughput: events/s that ``antifraud replay --max`` sends to the embedded broker.

Simulates a city (every event kind, in the simulator's realistic mix) into a
gzip events file, then times the whole command: read, decode, reorder,
encode, send, flush. Reading alone (no Kafka) is timed too, to show which
side limits the rate.

    .venv/bin/python benchmarks/bench_replay.py [--people 2000 --days 3]
"""

import argparse
import tempfile
import time
from pathlib import Path

from antifraud.stack.embedded import EmbeddedStack
from simulators.engine import Config, simulate
from simulators.sinks import FileSink
from streams import topics
from streams.replay import OrderedEvents, StopFlag, add_command

PARTITIONS = 4


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--people", type=int, default=2000)
    options.add_argument("--days", type=float, default=3.0)
    chosen = options.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        path = Path(tmp) / "bench.jsonl.gz"
        count = simulate(Config(people=chosen.people, days=chosen.days), FileSink(path)).event_count
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
