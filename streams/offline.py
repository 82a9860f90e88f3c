"""``antifraud detect``: the detector stages over an events file, without Kafka.

The same stages and Redis state as the worker (``build_stages``), fed from a
file in event-time order, chunk by chunk. It is how detection quality is tuned
on a simulated city in seconds (``detect`` then ``evaluate --alerts``) and how
detector throughput with Redis state is measured apart from the broker.

Per chunk, as in the worker: run the stages of each kind, hand the alerts to
the caller, then flush the stages' state.
"""

import argparse
import asyncio
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio

from antifraud.alerts.models import Alert
from antifraud.config import Settings
from antifraud.events.codec import InvalidEvent, decode_any
from antifraud.events.models import Event
from antifraud.stack.embedded import EmbeddedStack
from antifraud.thresholds import load_thresholds
from streams.batch import Stage, run_stages
from streams.eventfile import read_lines
from streams.stages import build_stages


@dataclass
class DetectReport:
    events: Counter[str] = field(default_factory=Counter)
    """Valid events by kind."""
    bad_lines: int = 0
    alerts: Counter[str] = field(default_factory=Counter)
    """Alerts by detector."""
    seconds: float = 0.0


def chunks(path: Path, size: int, report: DetectReport) -> Iterator[list[Event]]:
    """The file's valid events, ``size`` lines at a time; bad lines are counted and skipped."""
    chunk: list[Event] = []
    for _, raw in read_lines(path):
        try:
            chunk.append(decode_any(raw))
        except InvalidEvent:
            report.bad_lines += 1
            continue
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def detect_file(
    path: Path, stages: dict[str, Sequence[Stage]], on_alert: Callable[[Alert], None], chunk_size: int = 5000
) -> DetectReport:
    report = DetectReport()
    started = time.perf_counter()
    for chunk in chunks(path, chunk_size, report):
        by_kind: dict[str, list[Event]] = defaultdict(list)
        for event in chunk:
            by_kind[getattr(event, "kind")].append(event)
        # Kinds in build_stages order (calls before transfers): a call-then-transfer join sees
        # the chunk's calls, as when the call topic is a few seconds ahead of the transfer topic.
        for kind in sorted(by_kind, key=lambda k: (k not in stages, list(stages).index(k) if k in stages else 0)):
            events = by_kind[kind]
            report.events[kind] += len(events)
            outcome = await run_stages(stages.get(kind, []), events)
            for alert in outcome.alerts:
                report.alerts[alert.detector] += 1
                on_alert(alert)
            await outcome.flush_state()
    report.seconds = time.perf_counter() - started
    return report


async def _detect(args: argparse.Namespace, redis_url: str) -> DetectReport:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        stages = build_stages(client, load_thresholds(Settings.from_env().thresholds_path))
        with open(args.output, "w", encoding="utf-8") as out:
            return await detect_file(
                args.events, stages, lambda alert: out.write(alert.model_dump_json() + "\n"), args.chunk_size
            )
    finally:
        await client.aclose()


def _run(args: argparse.Namespace) -> int:
    if not args.events.is_file():
        sys.stderr.write(f"antifraud detect: no events file {args.events}\n")
        return 2
    with EmbeddedStack(kafka=False) as endpoints:
        report = asyncio.run(_detect(args, endpoints.redis_url))
    total = sum(report.events.values())
    print(f"{total} events ({report.bad_lines} bad lines skipped) in {report.seconds:.1f} s, "
          f"{total / max(report.seconds, 1e-9):,.0f} events/s; alerts written to {args.output}")
    for detector, count in sorted(report.alerts.items()):
        print(f"  {detector:<24} {count} alerts")
    return 0


def add_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "detect",
        help="run the detectors over an events file without Kafka, writing alerts to a file",
        description="Run the worker's detector stages, with their Redis state (REDIS_URL, or an embedded "
        "redis-server), over an events file in event-time order; write the alerts as JSON lines for "
        "`antifraud evaluate --alerts`.",
    )
    parser.add_argument("events", type=Path, help="events file (gzip or plain JSON lines)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="alerts file to write (JSON lines)")
    parser.add_argument("--chunk-size", type=int, default=5000, help="events per batch (default 5000)")
    parser.set_defaults(run=_run)
