"""Worker throughput: call records per second through the whole path.

Produces N call records (ordinary callers, so the fraud-number score works but
rarely fires) to the embedded broker, starts a worker, and times from the
worker's first consumed record until all N are consumed, as its own metrics
report them. Run: ``.venv/bin/python benchmarks/bench_worker.py [N]``.
"""

import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from antifraud.events.codec import encode
from antifraud.events.models import CallRecord
from antifraud.stack.embedded import EmbeddedStack
from antifraud.stack.worker import WorkerProcess, metric_sum
from streams import topics
from streams.io import EventProducer

PARTITIONS = 4


def calls(count: int) -> list[tuple[bytes, bytes]]:
    base = datetime(2026, 3, 2, tzinfo=timezone.utc)
    out = []
    for i in range(count):
        caller = f"138{i % 5000:08d}"
        call = CallRecord(
            event_id=f"c{i}", event_time=base + timedelta(milliseconds=20 * i), caller=caller,
            callee=f"139{(i * 7919) % 20000:08d}", start=base + timedelta(milliseconds=20 * i),
            duration_s=60, cell_id="cell-1", imei="860000000000001",
        )
        out.append((caller.encode(), encode(call)))
    return out


def main(count: int) -> None:
    records = calls(count)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedStack(workdir=Path(tmp)) as endpoints:
        topics.ensure_topics(endpoints.kafka_bootstrap, PARTITIONS)
        producer = EventProducer(endpoints.kafka_bootstrap)
        for key, value in records:
            producer.send_raw(topics.INPUT_TOPICS["call_record"], key, value)
        producer.flush()
        producer.close()
        with WorkerProcess(endpoints, Path(tmp), extra_env={"ANTIFRAUD_PARTITIONS": str(PARTITIONS)}) as worker:
            consumed = 0.0
            while consumed == 0:
                consumed = metric_sum(worker.scrape(), "antifraud_events_consumed_total")
                time.sleep(0.01)
            started, first = time.perf_counter(), consumed
            while consumed < count:
                time.sleep(0.05)
                consumed = metric_sum(worker.scrape(), "antifraud_events_consumed_total")
            elapsed = time.perf_counter() - started
            samples = worker.scrape()
    rate = (count - first) / elapsed
    busy = metric_sum(samples, "antifraud_batch_seconds_sum") / elapsed
    batches = metric_sum(samples, "antifraud_batch_seconds_count")
    print(f"worker: {count} call records, {rate:,.0f} events/s through decode + fraud_number + Redis state")
    print(f"  {batches:.0f} batches of {count / batches:,.0f} records on average; processing busy {busy:.0%} of the time")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
