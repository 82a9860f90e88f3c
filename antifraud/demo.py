"""``antifraud demo``: a simulated city through the whole path, ending with an evaluation.

1. Start the broker and redis-server (or use KAFKA_BOOTSTRAP / REDIS_URL).
2. Create the topics.
3. Follow the alerts topic, printing alerts as they arrive (entities masked).
4. Simulate a small city to a file (with its cell registry, which the worker's
   fake-base-station detector reads), send it to Kafka in event-time order,
   then three deliberately broken records, which must end as dead letters.
5. Start a worker; wait until its metrics show every record consumed, then stop.
6. Print the summary (events per topic, alerts by detector, dead letters) and
   the evaluation of the alerts against the simulator's ground truth.
"""

import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, get_args

from antifraud.alerts.models import Alert
from antifraud.evaluation import EvaluationReport, evaluate, format_table
from antifraud.evaluation.inputs import read_event_facts
from antifraud.events.codec import RejectKind, decode_any
from antifraud.events.types import make_id_number
from antifraud.privacy import mask_entity
from antifraud.stack.embedded import EmbeddedStack, StackError
from antifraud.stack.worker import WorkerProcess, metric_sum
from simulators.engine import Config, simulate
from simulators.sinks import FileSink
from streams import topics
from streams.eventfile import read_lines
from streams.io import EventProducer, read_topic

MAX_PRINTED_ALERTS = 25


@dataclass(frozen=True)
class BrokenRecord:
    """Bytes that must end on the dead-letter topic, and the reason they must carry."""

    topic_kind: str
    value: bytes
    expected_reason: str


def broken_records() -> list[BrokenRecord]:
    good_id = make_id_number("320585", "19800101", 1)
    bad_id = good_id[:17] + ("1" if good_id[17] == "0" else "0")
    return [
        BrokenRecord("call_record", b'{"event_id": "call-x", "caller": "1380', "malformed_json"),
        BrokenRecord(
            "card_opening",
            (
                f'{{"event_id": "card-x", "event_time": "2026-01-01T00:00:00Z", "bank": "icbc", "id_number": "{bad_id}",'
                ' "account": "62220000000001", "branch_id": "br-1", "channel": "counter"}'
            ).encode(),
            "schema_violation",
        ),
        BrokenRecord(
            "bank_transfer",
            b'{"event_id": "tx-x", "event_time": "2026-01-01T00:00:00Z", "channel": "online",'
            b' "payer_account": "62220000000001", "payer_name": "A", "payer_id_number": "11010519491231002X",'
            b' "payee_account": "62220000000002", "payee_name": "B", "amount_fen": 12.5}',
            "schema_violation",
        ),
    ]


def describe(alert: Alert) -> str:
    reasons = ", ".join(f"{r.feature}={r.value:g} (threshold {r.threshold:g})" for r in alert.reasons)
    audience = ", ".join(a.kind + (f":{a.id}" if a.id else "") for a in alert.audience)
    who = mask_entity(alert.entity.kind, alert.entity.value)
    return f"ALERT {alert.severity:<8} {alert.detector} {alert.entity.kind} {who} score={alert.score:.2f}: {reasons} -> {audience}"


class AlertTail(threading.Thread):
    """Reads the alerts topic in the background, keeping alerts by id (duplicates fold)."""

    def __init__(self, bootstrap: str, out: TextIO) -> None:
        super().__init__(daemon=True, name="alert-tail")
        self.bootstrap = bootstrap
        self.out = out
        self.stop_event = threading.Event()
        self.alerts: dict[str, Alert] = {}

    def run(self) -> None:
        for record in read_topic(self.bootstrap, topics.ALERTS, self.stop_event):
            alert = Alert.model_validate_json(record.value)
            if alert.alert_id in self.alerts:
                continue
            self.alerts[alert.alert_id] = alert
            if len(self.alerts) <= MAX_PRINTED_ALERTS:
                print(describe(alert), file=self.out, flush=True)
            elif len(self.alerts) == MAX_PRINTED_ALERTS + 1:
                print("... further alerts are counted in the summary", file=self.out, flush=True)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)


@dataclass
class DemoResult:
    events_consumed: dict[str, int]
    alerts: list[Alert]
    dead_letters: dict[str, int]
    evaluation: EvaluationReport
    worker_log: str
    """What the worker logged, start to stop (its personal data is masked: the tests scan it)."""


def _print_summary(result: DemoResult, out: TextIO) -> None:
    by_detector = Counter(a.detector for a in result.alerts)
    print("\nsummary", file=out)
    print(f"  events consumed: {sum(result.events_consumed.values())}", file=out)
    for topic_name, count in result.events_consumed.items():
        print(f"    {topic_name:<32} {count}", file=out)
    print(f"  alerts: {len(result.alerts)}", file=out)
    for detector, count in sorted(by_detector.items()):
        print(f"    {detector:<32} {count}", file=out)
    print(f"  dead letters: {sum(result.dead_letters.values())}", file=out)
    for reason, count in sorted(result.dead_letters.items()):
        if count:
            print(f"    {reason:<32} {count}", file=out)
    print("\nevaluation against the simulator's ground truth", file=out)
    print(format_table(result.evaluation), file=out, flush=True)


def run_demo(
    out: TextIO, *, seed: int = 1, people: int = 2000, days: float = 2.0, timeout: float = 300.0, partitions: int = 4
) -> DemoResult:
    """Run the demo; return what it printed, for tests and scripts."""
    config = Config(seed=seed, people=people, days=days)
    broken = broken_records()
    with tempfile.TemporaryDirectory(prefix="antifraud-demo-") as tmp, EmbeddedStack(workdir=Path(tmp)) as endpoints:
        print(f"stack: Kafka {endpoints.kafka_bootstrap}, Redis {endpoints.redis_url}", file=out, flush=True)
        topics.ensure_topics(endpoints.kafka_bootstrap, partitions)
        events_file, registry = Path(tmp) / "city.jsonl.gz", Path(tmp) / "city.cells.json"
        print(f"simulating {people} people over {days:g} days (seed {seed})", file=out, flush=True)
        truth = simulate(config, FileSink(events_file), registry)
        worker_env = {"ANTIFRAUD_PARTITIONS": str(partitions), "ANTIFRAUD_CELL_REGISTRY": str(registry)}
        with WorkerProcess(endpoints, Path(tmp), extra_env=worker_env, log_level="info") as worker:
            tail = AlertTail(endpoints.kafka_bootstrap, out)
            tail.start()
            producer = EventProducer(endpoints.kafka_bootstrap)
            for _, line in read_lines(events_file):
                producer.send(decode_any(line))
            for record in broken:
                producer.send_raw(topics.INPUT_TOPICS[record.topic_kind], None, record.value)
            producer.flush()
            producer.close()
            total = truth.event_count + len(broken)
            print(
                f"produced {total} records ({len(broken)} deliberately broken); worker log {worker.log_path}",
                file=out,
                flush=True,
            )

            deadline = time.monotonic() + timeout
            while (consumed := metric_sum(worker.scrape(), "antifraud_events_consumed_total")) < total:
                if time.monotonic() > deadline:
                    raise StackError(
                        f"worker consumed {consumed:.0f} of {total} records in {timeout:.0f}s; see {worker.log_path}"
                    )
                time.sleep(0.25)
            samples = worker.scrape()
            time.sleep(1.0)  # let the tail catch the last alerts
            tail.stop()
            events = read_event_facts(events_file, truth)
        worker_log = worker.log_path.read_text(errors="replace")

    alerts = list(tail.alerts.values())
    result = DemoResult(
        events_consumed={
            t: int(metric_sum(samples, "antifraud_events_consumed_total", topic=t))
            for t in topics.INPUT_TOPICS.values()
        },
        alerts=alerts,
        dead_letters={
            reason: int(metric_sum(samples, "antifraud_dead_letters_total", reason=reason))
            for reason in get_args(RejectKind)
        },
        evaluation=evaluate(truth, alerts, events),
        worker_log=worker_log,
    )
    _print_summary(result, out)
    return result
