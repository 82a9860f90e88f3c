"""Telecom detectors throughput: call records per second through the call stages with Redis state.

Runs the worker's ``call_record`` stages (fraud-number score, interception and
victim tracing) over N call records in batches, as ``antifraud detect`` does,
against an embedded redis-server: load state, detect, flush state per batch.
The records are a city's day: ordinary callers (a few calls each, some
callbacks), a few fraud numbers dialling strangers, and one listed number.
Run: ``.venv/bin/python benchmarks/bench_telecom.py [N] [BATCH]``.
"""

import asyncio
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from redis.asyncio import Redis

from antifraud import blocklist
from antifraud.events.models import CallRecord
from antifraud.stack.embedded import EmbeddedStack
from antifraud.thresholds import load_thresholds
from streams.batch import run_stages
from streams.stages import build_stages

BASE = datetime(2026, 3, 2, tzinfo=timezone.utc)
LISTED = "17099990000"


def calls(count: int, seed: int = 1) -> list[CallRecord]:
    rng = random.Random(seed)
    people = [f"138{i:08d}" for i in range(max(1000, count // 4))]
    fraud = [f"170{i:08d}" for i in range(10)]
    out = []
    for i in range(count):
        at = BASE + timedelta(seconds=86400 * i / count)
        roll = rng.random()
        caller = rng.choice(fraud) if roll < 0.05 else LISTED if roll < 0.051 else rng.choice(people)
        duration = rng.randint(1, 20) if caller in fraud else rng.randint(10, 400)
        out.append(CallRecord(
            event_id=f"c{i}", event_time=at + timedelta(seconds=duration), caller=caller, callee=rng.choice(people),
            start=at, duration_s=duration, cell_id=f"cell-{i % 50}", imei=f"86{abs(hash(caller)) % 10**13:013d}",
        ))
    return out


async def run(records: list[CallRecord], redis_url: str, batch: int) -> tuple[float, int, int]:
    client = Redis.from_url(redis_url)
    try:
        await blocklist.list_from_case(client, LISTED, "bench", "benchmark listing")
        stages = build_stages(client, load_thresholds())["call_record"]
        alerts = extra = 0
        started = time.perf_counter()
        for i in range(0, len(records), batch):
            outcome = await run_stages(stages, records[i : i + batch])
            alerts += len(outcome.alerts)
            extra += len(outcome.extra)
            await outcome.flush_state()
        return time.perf_counter() - started, alerts, extra
    finally:
        await client.aclose()


def main(count: int, batch: int) -> None:
    records = calls(count)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedStack(kafka=False, workdir=Path(tmp)) as endpoints:
        seconds, alerts, extra = asyncio.run(run(records, endpoints.redis_url, batch))
    print(f"telecom stages: {count} call records in {seconds:.2f} s, {count / seconds:,.0f} call records/s "
          f"(batches of {batch}, Redis state); {alerts} alerts, {extra} interceptions + victim warnings")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000, int(sys.argv[2]) if len(sys.argv) > 2 else 2000)
