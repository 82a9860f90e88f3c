"""The worker's input path against a bare aiokafka consumer group, over the same records, in CPU-seconds.

Simulates a city (or takes an events file), replays it into the embedded broker, then reads every input
record twice, each time in a child process of its own:

- ``bare``: an aiokafka consumer group doing ``getmany`` and nothing else (the peer);
- ``worker``: the worker's input loop (``streams/loop.py``: decode, event-time merge, every detector
  stage, the checkpoint's produce, Redis transaction and commit), until Redis holds every offset.

Each child reports its own CPU-seconds (``time.process_time``); redis-server's CPU over the worker's
run is reported beside it (it is a process of its own). Run::

    .venv/bin/python benchmarks/bench_worker.py [--people 4000] [--days 3.5] [--events FILE]
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cities import add_city_arguments, city_events  # benchmarks/cities.py, beside this script

from antifraud.stack.embedded import EmbeddedStack
from streams import topics
from streams.eventfile import read_lines

PARTITIONS = 4


async def _bare(bootstrap: str, total: int) -> dict[str, float]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        *topics.INPUT_TOPICS.values(),
        bootstrap_servers=bootstrap,
        group_id="bench-bare",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen, started = 0, time.process_time()
    try:
        while seen < total:
            for records in (await consumer.getmany(timeout_ms=200, max_records=2000)).values():
                seen += len(records)
    finally:
        await consumer.stop()
    return {"events": seen, "cpu_s": time.process_time() - started}


async def _worker(total: int) -> dict[str, float]:
    import redis.asyncio

    from antifraud.config import Settings
    from antifraud.thresholds import load_thresholds
    from streams.loop import InputLoop

    settings = Settings.from_env()
    loop = InputLoop(settings, load_thresholds(settings.thresholds_path))
    client = redis.asyncio.Redis.from_url(settings.redis_url)
    started = time.process_time()
    task = asyncio.create_task(loop.run())
    try:
        while sum(int(o) for o in await client.hvals("stream:offsets")) < total:
            if task.done():
                task.result()
            await asyncio.sleep(0.2)
        return {"events": total, "cpu_s": time.process_time() - started}
    finally:
        task.cancel()
        await client.aclose()


def _child(role: str, total: int, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", role, "--total", str(total)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _redis_pid(port: int) -> int | None:
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and f":{port}".encode() in (proc / "cmdline").read_bytes().replace(b"\0", b" "):
                if b"redis-server" in (proc / "cmdline").read_bytes():
                    return int(proc.name)
        except OSError:
            continue
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_city_arguments(parser)
    parser.add_argument("--child", choices=["bare", "worker"], help=argparse.SUPPRESS)
    parser.add_argument("--total", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "bare":
        print(json.dumps(asyncio.run(_bare(os.environ["KAFKA_BOOTSTRAP"], args.total))))
        return
    if args.child == "worker":
        print(json.dumps(asyncio.run(_worker(args.total))))
        return
    with tempfile.TemporaryDirectory() as folder:
        events = city_events(args, Path(folder))
        with EmbeddedStack(workdir=Path(folder) / "stack") as endpoints:
            topics.ensure_topics(endpoints.kafka_bootstrap, PARTITIONS)
            subprocess.run(
                [sys.executable, "-m", "antifraud", "replay", str(events), "--bootstrap", endpoints.kafka_bootstrap],
                check=True,
                capture_output=True,
            )
            total = sum(1 for _ in read_lines(events))
            env = {
                **os.environ,
                "KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap,
                "REDIS_URL": endpoints.redis_url,
                "ANTIFRAUD_PARTITIONS": str(PARTITIONS),
            }
            bare = _child("bare", total, env)
            redis_pid = _redis_pid(int(endpoints.redis_url.rsplit(":", 1)[1].split("/")[0]))
            redis_before = _cpu_of(redis_pid) if redis_pid else 0.0
            worker = _child("worker", total, env)
            redis_cpu = (_cpu_of(redis_pid) - redis_before) if redis_pid else float("nan")
    bare_rate = bare["events"] / bare["cpu_s"]
    worker_rate = worker["events"] / worker["cpu_s"]
    print(f"{total} input records, {PARTITIONS} partitions per topic")
    print(f"bare aiokafka group: {bare_rate:,.0f} events per CPU-second ({bare['cpu_s']:.1f} CPU-s)")
    print(
        f"worker input loop:   {worker_rate:,.0f} events per CPU-second ({worker['cpu_s']:.1f} CPU-s; "
        f"redis-server {redis_cpu:.1f} CPU-s more)"
    )
    print(f"ratio worker/bare:   {worker_rate / bare_rate:.3f}")


if __name__ == "__main__":
    main()
