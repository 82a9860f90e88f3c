"""Banking detectors throughput: transfers per second through the transfer stages with Redis state.

Runs the worker's ``bank_transfer`` stages (transfer risk and mule accounts,
card trade) over N transfers in batches, as ``antifraud detect`` does, against
an embedded redis-server: load state, detect, flush state per batch. The
transfers are a city's day: residents paying shops and friends, a few victims
called by a listed number paying mules that pass the money on within minutes.
Run: ``.venv/bin/python benchmarks/bench_banking.py [N] [BATCH]``.
"""

import asyncio
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from redis.asyncio import Redis

from antifraud.events.models import BankTransfer
from antifraud.interceptions import VictimWarning, warning_id_for
from antifraud.stack.embedded import EmbeddedStack
from antifraud.state.interception import WarnedStore
from antifraud.thresholds import load_thresholds
from streams.batch import run_stages
from streams.stages import build_stages

BASE = datetime(2026, 3, 2, tzinfo=timezone.utc)
LISTED = "17099990000"
CHANNELS = ("mobile", "online", "counter", "atm")


def _transfer(i: int, at: datetime, payer: str, payee: str, fen: int, channel: str, phone: str | None) -> BankTransfer:
    place = {"branch_id": f"br-{i % 40}"} if channel == "counter" else {"atm_id": f"atm-{i % 90}"} if channel == "atm" else {}
    return BankTransfer(event_id=f"t{i}", event_time=at, channel=channel, payer_account=payer, payer_name="王芳",
                        payer_id_number="320585198609013410", payee_account=payee, payee_name="李强",
                        amount_fen=fen, payer_phone=phone, **place)


def transfers(count: int, seed: int = 1) -> tuple[list[BankTransfer], list[str]]:
    """The day's transfers and the victims' phones (called by the listed number)."""
    rng = random.Random(seed)
    people = max(1000, count // 2)
    shops = [f"6216{i:012d}" for i in range(max(50, count // 100))]
    mules = [f"6228{i:012d}" for i in range(20)]
    out, victims = [], []
    for i in range(count):
        at = BASE + timedelta(seconds=86400 * i / count)
        person = rng.randrange(people)
        payer, phone = f"6222{person:012d}", f"138{person:08d}"
        channel = rng.choices(CHANNELS, (0.55, 0.25, 0.1, 0.1))[0]
        if rng.random() < 0.002:
            victims.append(phone)
            mule = rng.choice(mules)
            out.append(_transfer(i, at, payer, mule, rng.randint(500_000, 5_000_000), channel, phone))
            out.append(_transfer(count + i, at + timedelta(minutes=5), mule, f"6229{i:012d}", 400_000, "atm", None))
        elif rng.random() < 0.6:
            out.append(_transfer(i, at, payer, rng.choice(shops), rng.randint(1_000, 50_000), channel, phone))
        else:
            friend = f"6222{rng.randrange(people):012d}"
            out.append(_transfer(i, at, payer, friend, rng.randint(10_000, 500_000), channel, phone))
    return sorted(out, key=lambda t: t.event_time)[:count], victims


async def run(records: list[BankTransfer], victims: list[str], redis_url: str, batch: int) -> tuple[float, int]:
    client = Redis.from_url(redis_url)
    try:
        await WarnedStore(client, ttl_seconds=86400).apply(
            VictimWarning(warning_id=warning_id_for(LISTED, v), number=LISTED, victim=v, basis="block_list", rank=1,
                          longest_call_s=900, calls=1, last_call_at=BASE, called_back=False)
            for v in set(victims)
        )
        stages = build_stages(client, load_thresholds())["bank_transfer"]
        alerts = 0
        started = time.perf_counter()
        for i in range(0, len(records), batch):
            outcome = await run_stages(stages, records[i : i + batch])
            alerts += len(outcome.alerts)
            await outcome.flush_state()
        return time.perf_counter() - started, alerts
    finally:
        await client.aclose()


def main(count: int, batch: int) -> None:
    records, victims = transfers(count)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedStack(kafka=False, workdir=Path(tmp)) as endpoints:
        seconds, alerts = asyncio.run(run(records, victims, endpoints.redis_url, batch))
    print(f"banking stages: {count} transfers in {seconds:.2f} s, {count / seconds:,.0f} transfers/s "
          f"(batches of {batch}, Redis state); {alerts} alerts")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000, int(sys.argv[2]) if len(sys.argv) > 2 else 2000)
