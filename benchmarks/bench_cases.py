"""Cases: alerts folded per second by the worker's alerts agent (decode the alerts topic's records, fold
them into their cases, each fold audited), against an embedded redis-server, no broker.

N alerts on N / PER_CASE numbers, in batches of 2,000 (the worker's default); a number's alerts come
together, as in a storm (PER_CASE 1: every alert opens a case of its own); then the same records again
(a replay: nothing new to fold, every alert checked). Run:
``.venv/bin/python benchmarks/bench_cases.py [N] [PER_CASE]`` (default 20,000 alerts, 4 per case).
"""

import asyncio
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from redis.asyncio import Redis

from antifraud.alerts.models import Alert, Audience, Entity, Reason
from antifraud.audit.models import AuditKeys
from antifraud.audit.service import AuditLog
from antifraud.case.service import CaseService
from antifraud.events.codec import decode
from antifraud.stack.embedded import EmbeddedStack, audit_key

BATCH = 2000
START = datetime(2026, 3, 2, tzinfo=timezone.utc)
DETECTORS = ("fraud_number", "interception")


def records(count: int, per_case: int) -> list[bytes]:
    """The alerts topic as the detectors write it: alert ``i`` is on number ``i // per_case``."""
    alerts = [
        Alert.create(
            detector=DETECTORS[i % 2],
            entity=Entity(kind="phone", value=f"170{i // per_case:08d}"),
            trigger=f"call-{i}",
            window_start=START + timedelta(minutes=i),
            window_end=START + timedelta(minutes=i + 10),
            severity="high",
            score=0.8,
            reasons=[Reason(feature="distinct_callees", value=25, threshold=20)],
            evidence_event_ids=[f"call-{i}"],
            audience=[Audience(kind="police")],
        )
        for i in range(count)
    ]
    return [a.model_dump_json().encode() for a in alerts]


async def fold_all(cases: CaseService, batch: list[bytes]) -> int:
    """The alerts agent's decoding and folding of one batch."""
    return await cases.fold_alerts([decode(Alert, raw) for raw in batch])


async def measure(redis_url: str, count: int, per_case: int) -> None:
    redis = Redis.from_url(redis_url)
    cases = CaseService(redis, AuditLog(redis, AuditKeys(audit_key().encode())))
    topic = records(count, per_case)
    rates = []
    for run in ("fresh", "replay"):
        folded = 0
        started = time.perf_counter()
        for i in range(0, len(topic), BATCH):
            folded += await fold_all(cases, topic[i : i + BATCH])
        rates.append(len(topic) / (time.perf_counter() - started))
        assert folded == (len(topic) if run == "fresh" else 0), (run, folded)
    verdict = await cases.audit.verify()
    await redis.aclose()
    assert verdict.ok, verdict
    print(
        f"cases: {count} alerts on {-(-count // per_case)} cases folded ({rates[0]:,.0f} alerts/s, batches of "
        f"{BATCH}), replayed ({rates[1]:,.0f} alerts/s, nothing new)"
    )


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    per_case = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    with tempfile.TemporaryDirectory() as tmp, EmbeddedStack(kafka=False, workdir=Path(tmp)) as stack:
        asyncio.run(measure(stack.redis_url, count, per_case))


if __name__ == "__main__":
    main()
