"""Audit trail: audited actions per writer CPU-second with 1, 4 and 8 concurrent writers (processes, each
changing its own state in audited transactions, as tellers, analysts and the alerts agent do); records
appended per second (batches of 2,000, as the hold stage appends them); records verified per second by
``antifraud audit verify``; and records archived per second by ``antifraud audit archive`` (segment
written and read back, Redis trimmed), against an embedded redis-server.

Run: ``.venv/bin/python benchmarks/bench_audit.py [BATCHES]`` (default 10).
"""

import asyncio
import multiprocessing
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from antifraud.audit.archive import archive
from antifraud.audit.models import AuditEntry, AuditKeys, Change
from antifraud.audit.service import AuditLog
from antifraud.stack.embedded import EmbeddedStack

BATCH = 2000
KEYS = AuditKeys(b"the benchmark's audit key, thirty-two bytes or more")
ACTIONS = 400
"""Audited actions per writer."""


def _writer(redis_url: str, writer: int, results: "multiprocessing.Queue[float]") -> None:
    """One writer process: ACTIONS audited transactions on its own state; puts its CPU-seconds."""

    async def run() -> None:
        redis = Redis.from_url(redis_url)
        log = AuditLog(redis, KEYS)
        key = f"bench:writer:{writer}"

        async def decide(pipe: Pipeline) -> Change:
            n = int(await pipe.get(key) or 0)
            return Change({"n": n}, {"n": n + 1}, lambda tx: tx.set(key, n + 1))

        for _ in range(ACTIONS):
            await log.transact(
                actor=f"w{writer}", action="case.note", subject=f"case:{writer}", watch=[key], decide=decide
            )
        await redis.aclose()

    started = time.process_time()
    asyncio.run(run())
    results.put(time.process_time() - started)


async def _seal(redis_url: str) -> int:
    redis = Redis.from_url(redis_url)
    try:
        return await AuditLog(redis, KEYS).seal()
    finally:
        await redis.aclose()


def concurrent_writers(redis_url: str, count: int) -> tuple[float, float]:
    """(audited actions per CPU-second, per wall second) with ``count`` writer processes at once, the
    sealing that chains their records (as the worker does) counted in."""
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[float] = context.Queue()
    procs = [context.Process(target=_writer, args=(redis_url, i, results)) for i in range(count)]
    started = time.perf_counter()
    for proc in procs:
        proc.start()
    cpu = sum(results.get() for _ in procs)
    for proc in procs:
        proc.join()
    sealing = time.process_time()
    assert asyncio.run(_seal(redis_url)) == count * ACTIONS
    cpu += time.process_time() - sealing
    wall = time.perf_counter() - started
    return count * ACTIONS / cpu, count * ACTIONS / wall


async def measure(redis_url: str, batches: int, segments: Path) -> None:
    redis = Redis.from_url(redis_url)
    log = AuditLog(redis, KEYS)
    before = (await log.head())[0] + 1  # the writers' records
    now = datetime.now(timezone.utc)
    started = time.perf_counter()
    appended = 0
    for b in range(batches):
        entries = [
            AuditEntry(
                "system", "hold.held", f"hold:{b}-{i}", None, {"state": "held", "reason": "atm"}, f"ev{b}-{i}", now
            )
            for i in range(BATCH)
        ]
        appended += await log.append_many(entries)
    append_s = time.perf_counter() - started
    started = time.perf_counter()
    verdict = await log.verify()
    verify_s = time.perf_counter() - started
    started = time.perf_counter()
    result = await archive(redis, KEYS, datetime.now(timezone.utc), segments)
    archive_s = time.perf_counter() - started
    await redis.aclose()
    assert verdict.ok, verdict
    assert result.written is not None and result.base == before + appended, result
    print(
        f"audit: {appended} records appended ({appended / append_s:,.0f}/s, batches of {BATCH}), "
        f"chain verified ({verdict.checked / verify_s:,.0f}/s), archived ({appended / archive_s:,.0f}/s)"
    )


def main() -> None:
    batches = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    workdir = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    (workdir / "segments").mkdir()
    with EmbeddedStack(kafka=False, workdir=workdir / "stack") as stack:
        for count in (1, 4, 8):
            per_cpu, per_wall = concurrent_writers(stack.redis_url, count)
            print(
                f"audit: {count} concurrent writers, {per_cpu:,.0f} audited actions per CPU-second "
                f"({per_wall:,.0f}/s wall, 2 cores)"
            )
        asyncio.run(measure(stack.redis_url, batches, workdir / "segments"))


if __name__ == "__main__":
    main()
