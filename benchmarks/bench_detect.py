"""``antifraud detect``'s path (every stage, the pipeline and the checkpoint with Redis state, no broker)
in events per CPU-second, on a simulated city and on a stream of long per-number call histories.

Run: ``.venv/bin/python benchmarks/bench_detect.py [--people 4000] [--days 3.5] [--events FILE]``. The
long-history stream: 400 numbers with 600 calls each over two days (240,000 call records), so every
caller's kept window is hundreds of calls deep. The figure is this process's CPU (decode, stages, the
Redis client); redis-server runs apart.
"""

import argparse
import asyncio
import gzip
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import redis.asyncio
from cities import add_city_arguments, city_events  # benchmarks/cities.py, beside this script

from antifraud.events.codec import encode
from antifraud.events.models import CallRecord
from antifraud.stack.embedded import EmbeddedStack
from antifraud.thresholds import load_thresholds
from streams.offline import detect_file

START = datetime(2026, 3, 2, tzinfo=timezone.utc)


def long_histories(path: Path, numbers: int = 400, calls: int = 600) -> None:
    """Every number calls every ~5 minutes for two days, to a few hundred regular contacts."""
    step = timedelta(days=2) / calls
    with gzip.open(path, "wb") as out:
        for k in range(calls):
            for n in sorted(range(numbers), key=lambda n: n % 200):  # in event-time order, as files are
                at = START + k * step + timedelta(seconds=n % 200)
                call = CallRecord(
                    event_id=f"h{n}-{k}",
                    event_time=at,
                    caller=f"139{n:08d}",
                    callee=f"138{(n * 31 + k % 250):08d}",
                    start=at - timedelta(seconds=120),
                    duration_s=120,
                    cell_id="cell-1",
                    imei=f"8600000{n:08d}",
                )
                out.write(encode(call) + b"\n")


def measure(events: Path, url: str) -> tuple[int, float]:
    async def run() -> tuple[int, float]:
        client = redis.asyncio.Redis.from_url(url)
        try:
            started = time.process_time()
            report = await detect_file(events, client, load_thresholds(), lambda alert: None)
            return sum(report.events.values()), time.process_time() - started
        finally:
            await client.flushdb()
            await client.aclose()

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_city_arguments(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        city = city_events(args, Path(folder))
        history = Path(folder) / "histories.jsonl.gz"
        long_histories(history)
        with EmbeddedStack(kafka=False, workdir=Path(folder) / "redis") as endpoints:
            for name, path in (("simulated city", city), ("long call histories", history)):
                count, cpu = measure(path, endpoints.redis_url)
                print(f"{name:<20} {count:>8} events  {count / cpu:>9,.0f} events per CPU-second ({cpu:.1f} CPU-s)")


if __name__ == "__main__":
    main()
