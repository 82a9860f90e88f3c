"""Plain Kafka clients for the edges outside the worker: producing events, reading a topic.

kafka-python with manually assigned partitions works on every broker here
(the embedded Tansu broker does not assign partitions to kafka-python groups).
"""

import threading
import time
from collections.abc import Iterator
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.producer.future import FutureRecordMetadata

from antifraud.events.codec import encode
from antifraud.events.models import Event
from streams.topics import INPUT_TOPICS


class EventProducer:
    """Sends typed events to their kind's topic, keyed by their partition entity."""

    def __init__(self, bootstrap_servers: str, **config: Any) -> None:
        self.producer = KafkaProducer(bootstrap_servers=bootstrap_servers, **{"acks": "all", "linger_ms": 20, **config})

    def send(self, event: Event) -> FutureRecordMetadata:
        """Queue ``event``; the returned future resolves when the broker acknowledges it."""
        return self.producer.send(self.topic_of(event), key=event.partition_key().encode(), value=encode(event))

    @staticmethod
    def topic_of(event: Event) -> str:
        return INPUT_TOPICS[getattr(event, "kind")]  # noqa: B009  # each kind of Event has its own, not the base

    def send_raw(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Send bytes as they are (a recorded stream, or a deliberately broken record)."""
        self.producer.send(topic, key=key, value=value)

    def flush(self) -> None:
        self.producer.flush()

    def close(self) -> None:
        self.producer.close()


def read_topic(bootstrap: str, topic: str, stop: threading.Event, *, poll_ms: int = 200) -> Iterator[Any]:
    """Yield every record of ``topic`` from the beginning until ``stop`` is set."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not assigned:
            raise LookupError(f"topic {topic!r} does not exist")
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=poll_ms).values():
                yield from records
    finally:
        consumer.close()


def read_until_idle(bootstrap: str, topic: str, *, idle: float, timeout: float | None = None) -> list[Any]:
    """Every record of ``topic`` from the beginning, read until none arrives for ``idle`` seconds (or ``timeout``).

    Partitions are assigned, never joined through a consumer group, so reading moves
    nobody's committed offsets. The reader runs in a thread (kafka-python blocks);
    an error it meets (no broker, no such topic) is raised here, in the caller's.
    """
    stop = threading.Event()
    records: list[Any] = []
    failures: list[Exception] = []
    last_new = time.monotonic()
    deadline = float("inf") if timeout is None else last_new + timeout

    def run() -> None:
        nonlocal last_new
        try:
            for record in read_topic(bootstrap, topic, stop, poll_ms=100):
                records.append(record)
                last_new = time.monotonic()
        except Exception as exc:  # raised below, in the caller's thread
            failures.append(exc)

    reader = threading.Thread(target=run, daemon=True, name=f"read-{topic}")
    reader.start()
    while reader.is_alive() and time.monotonic() - last_new < idle and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    reader.join(10)
    if failures:
        raise failures[0]
    return records
