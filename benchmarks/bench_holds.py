"""Hold ledger throughput: holds created and released per second through the hold stage with Redis state.

Two days of ATM transfers to other names, N a day, in batches, as the worker
runs them (stage, then flush) against an embedded redis-server, no broker. Day
one only creates holds; on day two the watermark passes day one's due times,
so each batch creates the day's holds and releases the ones of the day before.
Run: ``.venv/bin/python benchmarks/bench_holds.py [N] [BATCH]``.
"""

import asyncio
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

from redis.asyncio import Redis

from antifraud.events.models import BankTransfer
from antifraud.holds.models import HoldEvent
from antifraud.holds.service import HoldLedger
from antifraud.stack.embedded import EmbeddedStack
from antifraud.thresholds import load_thresholds
from streams.stages import HoldStage

BASE = datetime(2026, 3, 2, tzinfo=timezone.utc)


def day(count: int, number: int) -> list[BankTransfer]:
    return [
        BankTransfer(event_id=f"d{number}-{i}", event_time=BASE + timedelta(days=number, seconds=86400 * i / count),
                     channel="atm", atm_id=f"atm-{i % 90}", payer_account=f"6222{i % 50_000:012d}", payer_name="王芳",
                     payer_id_number="320585198609013410", payee_account=f"6228{i % 977:012d}", payee_name="李强",
                     amount_fen=500_000)
        for i in range(count)
    ]


async def run(days: list[list[BankTransfer]], redis_url: str, batch: int) -> list[tuple[float, Counter[str]]]:
    """Per day: seconds taken and the hold events produced, by state reached."""
    client = Redis.from_url(redis_url)
    limits = load_thresholds().holds
    stage = HoldStage(HoldLedger.configured(client, limits), limits)
    results = []
    try:
        for transfers in days:
            moved: Counter[str] = Counter()
            started = time.perf_counter()
            for i in range(0, len(transfers), batch):
                outcome = await stage(transfers[i : i + batch])
                moved.update(HoldEvent.model_validate_json(value).to_state for _, _, value in outcome.extra)
                await outcome.flush_state()
            results.append((time.perf_counter() - started, moved))
        return results
    finally:
        await client.aclose()


def main(count: int, batch: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, EmbeddedStack(kafka=False, workdir=Path(tmp)) as endpoints:
        results = asyncio.run(run([day(count, 0), day(count, 1)], endpoints.redis_url, batch))
    for number, (seconds, moved) in enumerate(results, 1):
        print(f"hold stage, day {number}: {moved['held']} holds created ({moved['held'] / seconds:,.0f}/s), "
              f"{moved['released']} released ({moved['released'] / seconds:,.0f}/s) in {seconds:.2f} s "
              f"(batches of {batch}, Redis state)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000, int(sys.argv[2]) if len(sys.argv) > 2 else 2000)
