"""Event-to-alert latency of a live worker at a fixed produce rate: p50, p99 and the worst, per detector.

A simulated city is *retimed* to be live: its event times are squeezed, in order, into the span that
``--rate`` events a second take to send, starting a few seconds from now, and every event is sent when
its own (new) event time comes (an event's other times move with it). A worker (``antifraud worker``)
on the embedded broker and redis-server reads them as they come. Latency is an alert's ``raised_at``
(the wall clock when the worker produced it) less the event time of the event that triggered it (its
``trigger``; where that is no input event, its ``window_end``). Alerts a cross-entity timer raises (a mule or card-trade check, a held
payment's payee warning) are due ``[stream] cross_entity_delay_seconds`` after their event by design;
they are listed apart. Squeezing days into seconds changes what the detectors find, not the path an
event takes. Run::

    .venv/bin/python benchmarks/bench_latency.py [--rate 20000] [--people 4000] [--days 3.5] [--events FILE]

The producer runs in a child process of its own (aiokafka, as fast as the rate needs); the worker's
CPU over the run is printed beside the figures, and whether it kept up (its lag at the end of sending).
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import orjson
from cities import add_city_arguments, city_events  # benchmarks/cities.py, beside this script

from antifraud.alerts.models import Alert
from antifraud.events.codec import decode_any
from antifraud.stack.embedded import EmbeddedStack
from antifraud.stack.worker import WorkerProcess, metric_sum
from antifraud.thresholds import load_thresholds
from streams import topics
from streams.eventfile import read_lines
from streams.io import read_until_idle

PARTITIONS = 4
LEAD_SECONDS = 6.0
"""From now to the retimed stream's first event time: the retiming and the producer's set-up."""
TIMER_DETECTORS = frozenset({"mule_account", "card_trade", "hold_payee_flagged"})
"""Detectors whose alerts a cross-entity timer raises (due the delay after their event)."""


def retime(events: Path, out: Path, rate: float, start: float) -> dict[str, float]:
    """Write ``events`` with their times squeezed into ``count / rate`` seconds from ``start``, in order;
    each event id's new event time."""
    docs = [orjson.loads(raw) for _, raw in read_lines(events)]
    times = [decode_any(orjson.dumps(d)).event_time.timestamp() for d in docs]
    first, span = times[0], max(times[-1] - times[0], 1e-9)
    squeeze = (len(docs) / rate) / span
    retimed = {}
    with open(out, "wb") as f:
        for doc, at in zip(docs, times):
            retimed[doc["event_id"]] = start + (at - first) * squeeze
            shift = timedelta(seconds=retimed[doc["event_id"]] - at)
            for name in ("event_time", "start", "fraud_time"):
                if name in doc:
                    doc[name] = (datetime.fromisoformat(doc[name]) + shift).isoformat()
            f.write(orjson.dumps(doc) + b"\n")
    return retimed


async def _produce(bootstrap: str, path: Path) -> dict[str, float]:
    """Send each event of ``path`` (retimed) when its event time comes; how far behind the sends fell."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, max_batch_size=256 * 1024)
    await producer.start()
    late = 0.0
    try:
        for raw in path.read_bytes().splitlines():
            event = decode_any(raw)
            due = event.event_time.timestamp()
            wait = due - time.time()
            if wait > 0.001:
                await asyncio.sleep(wait)
            late = max(late, time.time() - due)
            await producer.send(topics.INPUT_TOPICS[event.kind], raw, key=event.partition_key().encode())
        await producer.flush()
    finally:
        await producer.stop()
    return {"behind_s": late}


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _worker_cpu(worker: WorkerProcess) -> float:
    assert worker.proc is not None
    fields = Path(f"/proc/{worker.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=20_000, help="events a second (default 20,000)")
    add_city_arguments(parser)
    parser.add_argument("--child-produce", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_produce:
        print(json.dumps(asyncio.run(_produce(os.environ["KAFKA_BOOTSTRAP"], args.child_produce))))
        return
    delay = load_thresholds(None).stream.cross_entity_delay_seconds
    with tempfile.TemporaryDirectory() as folder:
        events = city_events(args, Path(folder))
        with EmbeddedStack(workdir=Path(folder) / "stack") as endpoints:
            topics.ensure_topics(endpoints.kafka_bootstrap, PARTITIONS)
            worker = WorkerProcess(endpoints, Path(folder), extra_env={"ANTIFRAUD_PARTITIONS": str(PARTITIONS)})
            with worker:
                time.sleep(8)  # the group's first assignment
                live = Path(folder) / "live.jsonl"
                event_times = retime(events, live, args.rate, time.time() + LEAD_SECONDS)
                total = len(event_times)
                cpu_before = _worker_cpu(worker)
                env = {**os.environ, "KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap}
                sent = subprocess.run(
                    [sys.executable, __file__, "--child-produce", str(live)],
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                )
                behind = json.loads(sent.stdout.strip().splitlines()[-1])["behind_s"]
                lag_at_end = total - metric_sum(worker.scrape(), "antifraud_events_consumed_total")
                while metric_sum(worker.scrape(), "antifraud_events_consumed_total") < total:
                    time.sleep(0.2)
                time.sleep(delay / 10)
                cpu = _worker_cpu(worker) - cpu_before
            alerts = [
                Alert.model_validate_json(r.value)
                for r in read_until_idle(endpoints.kafka_bootstrap, topics.ALERTS, idle=2, timeout=60)
            ]
    by_detector: dict[str, list[float]] = {}
    for alert in alerts:
        assert alert.raised_at is not None
        at = event_times.get(alert.trigger, alert.window_end.timestamp())
        by_detector.setdefault(alert.detector, []).append(alert.raised_at.timestamp() - at)
    print(
        f"{total} events sent at {args.rate:,.0f}/s (the producer at most {behind * 1000:.0f} ms behind); "
        f"{lag_at_end:,.0f} not yet consumed when the last was sent; worker {cpu:.1f} CPU-s "
        f"({total / max(cpu, 1e-9):,.0f} events per CPU-second)"
    )
    direct = [v for d, vs in by_detector.items() if d not in TIMER_DETECTORS for v in vs]
    if direct:
        print(
            f"event to alert, {len(direct)} alerts raised by their own event: p50 {_quantile(direct, 0.5) * 1000:.0f} ms, "
            f"p99 {_quantile(direct, 0.99) * 1000:.0f} ms, worst {max(direct) * 1000:.0f} ms"
        )
    for detector, values in sorted(by_detector.items()):
        kind = f" (a timer, due {delay:.0f} s after its event)" if detector in TIMER_DETECTORS else ""
        print(
            f"  {detector:<22} {len(values):>5} alerts  p50 {_quantile(values, 0.5) * 1000:>8.0f} ms  "
            f"p99 {_quantile(values, 0.99) * 1000:>8.0f} ms{kind}"
        )


if __name__ == "__main__":
    main()
