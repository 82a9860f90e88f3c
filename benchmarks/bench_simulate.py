"""Events per second that ``simulate`` writes to a gzip file, on one core.

    taskset -c 0 .venv/bin/python benchmarks/bench_simulate.py [--people 20000] [--days 7] [--profile]

The simulation runs in one thread (numpy does not parallelise these operations
and the compressor runs in the same thread); the figure includes building the
city, the scenarios, rendering, ordering and compression.
"""

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulators.engine import Config, simulate  # noqa: E402
from simulators.sinks import FileSink  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--profile", action="store_true", help="print the 25 most expensive functions")
    args = parser.parse_args()
    config = Config(people=args.people, days=args.days)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "bench.jsonl.gz"
        profiler = cProfile.Profile() if args.profile else None
        began = time.perf_counter()
        if profiler:
            profiler.enable()
        truth = simulate(config, FileSink(out))
        if profiler:
            profiler.disable()
        seconds = time.perf_counter() - began
        size = out.stat().st_size
    print(
        f"{truth.event_count:,} events in {seconds:.2f} s: {truth.event_count / seconds:,.0f} events/s "
        f"({size / 1e6:.0f} MB gzip, {size / truth.event_count:.0f} bytes/event)"
    )
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
