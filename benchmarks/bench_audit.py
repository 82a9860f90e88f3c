"""Audit trail: records appended per second (batches of 2,000, as the hold stage appends them),
records verified per second by ``antifraud audit verify``, and records archived per second by
``antifraud audit archive`` (segment written and read back, Redis trimmed), against an embedded redis-server.

Run: ``.venv/bin/python benchmarks/bench_audit.py [BATCHES]`` (default 10).
"""

import asyncio
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from redis.asyncio import Redis

from antifraud.audit.archive import archive
from antifraud.audit.models import AuditEntry
from antifraud.audit.service import AuditLog
from antifraud.stack.embedded import EmbeddedStack

BATCH = 2000


async def measure(redis_url: str, batches: int, segments: Path) -> None:
    redis = Redis.from_url(redis_url)
    log = AuditLog(redis)
    now = datetime.now(timezone.utc)
    started = time.perf_counter()
    appended = 0
    for b in range(batches):
        entries = [
            AuditEntry("system", "hold.held", f"hold:{b}-{i}", None, {"state": "held", "reason": "atm"}, f"ev{b}-{i}", now)
            for i in range(BATCH)
        ]
        appended += len(await log.append_many(entries))
    append_s = time.perf_counter() - started
    started = time.perf_counter()
    verdict = await log.verify()
    verify_s = time.perf_counter() - started
    started = time.perf_counter()
    result = await archive(redis, datetime.now(timezone.utc), segments)
    archive_s = time.perf_counter() - started
    await redis.aclose()
    assert verdict.ok, verdict
    assert result.written is not None and result.base == appended, result
    print(f"audit: {appended} records appended ({appended / append_s:,.0f}/s, batches of {BATCH}), "
          f"chain verified ({verdict.checked / verify_s:,.0f}/s), archived ({appended / archive_s:,.0f}/s)")


def main() -> None:
    batches = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    workdir = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    (workdir / "segments").mkdir()
    with EmbeddedStack(kafka=False, workdir=workdir / "stack") as stack:
        asyncio.run(measure(stack.redis_url, batches, workdir / "segments"))


if __name__ == "__main__":
    main()
