"""Live warning latency: from an alert acknowledged on the alerts topic to its arrival on a branch's event stream.

``antifraud web`` runs in a child process over an embedded broker and Redis; this
process subscribes to one branch's server-sent events as its teller, then
produces COUNT alerts for that branch (and as many for another branch, which
must not arrive), one every INTERVAL seconds, and times each from the broker's
acknowledgement to the moment the event is read off the stream.
Run: ``.venv/bin/python benchmarks/bench_warnings.py [COUNT] [INTERVAL]`` (default 200 0.05).
"""

import asyncio
import json
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer

from antifraud.alerts.models import Alert, Audience, Entity, Reason
from antifraud.stack.embedded import EmbeddedStack
from antifraud.stack.web import WebProcess
from antifraud.web.auth import token_sha256
from streams import topics

TOKEN = "bench-teller"
BRANCH, OTHER = "B001", "B002"
AT = datetime(2026, 3, 2, tzinfo=timezone.utc)


def alert(n: int, branch: str) -> Alert:
    return Alert.create(
        detector="transfer_risk",
        entity=Entity(kind="account", value=f"6222{n:012d}"),
        window_start=AT + timedelta(seconds=n),
        window_end=AT + timedelta(seconds=n),
        severity="critical",
        score=1.0,
        reasons=[Reason(feature="blacklisted_payee", value=1, threshold=1)],
        evidence_event_ids=[f"pay-{n}"],
        audience=[Audience(kind="branch", id=branch), Audience(kind="bank_risk")],
    )


async def measure(base_url: str, bootstrap: str, count: int, interval: float) -> tuple[list[float], int]:
    """Latencies (s) of the branch's alerts, and how many other-branch alerts arrived (should be 0)."""
    acked: dict[str, float] = {}
    latencies: list[float] = []
    foreign = 0
    subscribed = asyncio.Event()

    async def listen() -> None:
        nonlocal foreign
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=base_url, timeout=None) as client:
            async with client.stream("GET", f"/api/places/{BRANCH}/warnings/stream", headers=headers) as stream:
                async for line in stream.aiter_lines():
                    if line.startswith(": subscribed"):
                        subscribed.set()
                    elif line.startswith("data: "):
                        received = time.perf_counter()
                        alert_id = json.loads(line[6:])["alert_id"]
                        if alert_id not in acked:
                            foreign += 1
                            continue
                        latencies.append(received - acked[alert_id])
                        if len(latencies) == count:
                            return

    listener = asyncio.create_task(listen())
    await asyncio.wait_for(subscribed.wait(), 30)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for n in range(count):
            await producer.send_and_wait(topics.ALERTS, alert(count + n, OTHER).model_dump_json().encode())
            mine = alert(n, BRANCH)
            await producer.send_and_wait(topics.ALERTS, mine.model_dump_json().encode())
            acked[mine.alert_id] = time.perf_counter()
            await asyncio.sleep(interval)
        await asyncio.wait_for(listener, 30)
    finally:
        await producer.stop()
    return latencies, foreign


def main(count: int, interval: float) -> None:
    with tempfile.TemporaryDirectory() as tmp, EmbeddedStack(workdir=Path(tmp)) as endpoints:
        topics.ensure_topics(endpoints.kafka_bootstrap, 2)
        users = [{"name": "teller", "role": "teller", "branch_id": BRANCH, "token_sha256": token_sha256(TOKEN)}]
        with WebProcess(endpoints, Path(tmp), users) as web:
            latencies, foreign = asyncio.run(measure(web.base_url, endpoints.kafka_bootstrap, count, interval))
    latencies.sort()
    figures = "  ".join(
        f"p{int(q * 100)} {latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000:.1f} ms"
        for q in (0.5, 0.9, 0.99)
    )
    print(
        f"live warnings: {len(latencies)} alerts for {BRANCH} (and {count} for {OTHER}, {foreign} of them wrongly received)"
    )
    print(f"  broker ack -> event read by the teller's stream: {figures}  max {latencies[-1] * 1000:.1f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200, float(sys.argv[2]) if len(sys.argv) > 2 else 0.05)
