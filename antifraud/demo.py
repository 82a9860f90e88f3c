"""``antifraud demo``: the whole path on the embedded stack, ending with a summary.

1. Start the broker and redis-server (or use KAFKA_BOOTSTRAP / REDIS_URL).
2. Create the topics and start a worker process.
3. Follow the alerts topic, printing each alert as it arrives (entities masked).
4. Produce the built-in stream, including three broken records.
5. Wait until the worker's metrics show every record consumed, then stop.
6. Print the summary: events per topic, alerts by detector, dead letters.
"""

import logging
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TextIO

from antifraud.alerts.models import Alert
from antifraud.demo_stream import broken_records, events
from antifraud.privacy import mask_entity
from antifraud.stack.embedded import EmbeddedStack, StackError
from antifraud.stack.worker import WorkerProcess, metric_sum
from streams import topics
from streams.io import EventProducer, read_topic

log = logging.getLogger(__name__)


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
            if alert.alert_id not in self.alerts:
                self.alerts[alert.alert_id] = alert
                print(describe(alert), file=self.out, flush=True)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)


def run_demo(out: TextIO, *, timeout: float = 120.0, partitions: int = 4) -> dict[str, object]:
    """Run the demo; return the summary it printed (for tests and scripts)."""
    base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    valid = list(events(base))
    broken = broken_records()
    with tempfile.TemporaryDirectory(prefix="antifraud-demo-") as tmp, EmbeddedStack(workdir=Path(tmp)) as endpoints:
        print(f"stack: Kafka {endpoints.kafka_bootstrap}, Redis {endpoints.redis_url}", file=out, flush=True)
        topics.ensure_topics(endpoints.kafka_bootstrap, partitions)
        with WorkerProcess(endpoints, Path(tmp), extra_env={"ANTIFRAUD_PARTITIONS": str(partitions)}) as worker:
            tail = AlertTail(endpoints.kafka_bootstrap, out)
            tail.start()
            producer = EventProducer(endpoints.kafka_bootstrap)
            for event in valid:
                producer.send(event)
            for record in broken:
                producer.send_raw(topics.INPUT_TOPICS[record.topic_kind], None, record.value)
            producer.flush()
            producer.close()
            total = len(valid) + len(broken)
            print(f"produced {total} records ({len(broken)} deliberately broken); worker log {worker.log_path}", file=out, flush=True)

            deadline = time.monotonic() + timeout
            while (consumed := metric_sum(worker.scrape(), "antifraud_events_consumed_total")) < total:
                if time.monotonic() > deadline:
                    raise StackError(f"worker consumed {consumed:.0f} of {total} records in {timeout:.0f}s; see {worker.log_path}")
                time.sleep(0.25)
            samples = worker.scrape()
            time.sleep(1.0)  # let the tail catch the last alerts
            tail.stop()

    consumed_by_topic = {t: int(metric_sum(samples, "antifraud_events_consumed_total", topic=t)) for t in topics.INPUT_TOPICS.values()}
    dead_letters = Counter({
        reason: int(metric_sum(samples, "antifraud_dead_letters_total", reason=reason))
        for reason in ("empty", "malformed_json", "schema_violation")
    })
    alerts_by_detector = Counter(a.detector for a in tail.alerts.values())
    print("\nsummary", file=out)
    print(f"  events consumed: {sum(consumed_by_topic.values())}", file=out)
    for topic_name, count in consumed_by_topic.items():
        print(f"    {topic_name:<32} {count}", file=out)
    print(f"  alerts: {sum(alerts_by_detector.values())}", file=out)
    for detector, count in sorted(alerts_by_detector.items()):
        print(f"    {detector:<32} {count}", file=out)
    print(f"  dead letters: {sum(dead_letters.values())}", file=out)
    for reason, count in sorted(dead_letters.items()):
        if count:
            print(f"    {reason:<32} {count}", file=out)
    out.flush()
    return {
        "events_consumed": consumed_by_topic,
        "alerts": dict(alerts_by_detector),
        "alert_entities": sorted(a.entity.value for a in tail.alerts.values()),
        "dead_letters": dict(dead_letters),
    }
