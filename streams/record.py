"""``antifraud record TOPIC... FILE``: write live topics to an events file that ``replay`` accepts.

Reads with kafka-python on manually assigned partitions, without a consumer
group (the embedded broker never assigns partitions to kafka-python groups)
and without committing offsets. Each record is validated as its topic's event
kind, as the worker would (any kind on a topic that is not an input topic);
what is not a valid event is counted and skipped with a warning naming topic,
partition, offset and the value-free reason. Partitions are read interleaved,
so events pass through the same reorder buffer as in ``replay``. A backlog is
read partition by partition, out of event-time order by up to its whole span,
so by default (``--reorder-window inf``) the whole recording is held, as
encoded lines (about 0.6 KB an event), and written sorted when recording
stops; a long live recording can bound memory with a finite window, at the
cost of events the window cannot reorder (counted as late and written as read).
"""

import argparse
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from tqdm import tqdm

from antifraud.config import ConfigError
from antifraud.events.codec import InvalidEvent, decode, decode_any, encode
from antifraud.events.models import EVENT_MODELS, Event
from streams.eventfile import EventFileWriter, ReorderBuffer
from streams.replay import (
    STOP_CHECK_S,
    StopFlag,
    add_bootstrap_option,
    add_reorder_window_option,
    bootstrap_from,
    connect,
    positive_float,
    print_summary,
    progress_bar,
    stop_on_signals,
    to_stderr,
)
from streams.topics import INPUT_TOPICS

ALL_INPUTS = "all-inputs"
POLL_MAX_RECORDS = 2000
_TOPIC_MODELS = {topic: EVENT_MODELS[kind] for kind, topic in INPUT_TOPICS.items()}


def topics_of(names: list[str]) -> list[str]:
    """The topics named, with ``all-inputs`` standing for every input topic; each once, in order."""
    expanded = [t for name in names for t in (INPUT_TOPICS.values() if name == ALL_INPUTS else [name])]
    return list(dict.fromkeys(expanded))


def decode_record(topic: str, value: bytes | None) -> Event:
    """The event in a record, judged as the worker judges it: an input topic takes its own kind only."""
    model = _TOPIC_MODELS.get(topic)
    return decode(model, value) if model else decode_any(value)


def open_consumer(bootstrap: str, topics: list[str], *, from_end: bool) -> KafkaConsumer:
    """A consumer assigned every partition of ``topics``, positioned now at their beginning or end.

    Positions are resolved before returning, so with ``from_end`` exactly the
    records produced after this call are read. (The embedded Tansu broker
    reports a partition's end as its last batch's first offset + 1, so the
    rest of that batch comes too.)
    """
    consumer = connect(KafkaConsumer, bootstrap, enable_auto_commit=False, group_id=None)
    try:
        assigned = []
        for topic in topics:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                raise ConfigError(f"topic {topic!r} does not exist")
            assigned += [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        (consumer.seek_to_end if from_end else consumer.seek_to_beginning)(*assigned)
        for partition in assigned:
            consumer.position(partition)
    except BaseException:
        consumer.close()
        raise
    return consumer


@dataclass
class Recording:
    """What a recording read and wrote, per source topic."""

    read: int = 0
    skipped: int = 0
    late: int = 0
    written: Counter[str] = field(default_factory=Counter)


class Recorder:
    """Validates records, orders them through the reorder buffer and writes them to the file."""

    def __init__(self, out: EventFileWriter, window: float, warn: Callable[[str], None]) -> None:
        self.out = out
        self.counts = Recording()
        self._buffer: ReorderBuffer[tuple[str, bytes]] = ReorderBuffer(window)
        self._warn = warn

    def add(self, record: ConsumerRecord) -> None:
        self.counts.read += 1
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        try:
            event = decode_record(record.topic, record.value)
        except InvalidEvent as exc:
            self.counts.skipped += 1
            self._warn(f"{where}: {exc} (skipped)")
            return
        late = self._buffer.push(event.event_time.timestamp(), (record.topic, encode(event)))
        if late:
            self.counts.late += 1
            self._warn(f"{where}: event time {late:.3f} s before an event already written; written out of order")
        self._write(self._buffer.ready())

    def finish(self) -> None:
        """Write what the reorder buffer still holds: the recording has ended."""
        self._write(self._buffer.drain())

    def _write(self, released: Iterator[tuple[float, tuple[str, bytes]]]) -> None:
        for _, (topic, line) in released:
            self.out.write_encoded(line)
            self.counts.written[topic] += 1


def record(
    consumer: KafkaConsumer,
    recorder: Recorder,
    stop: StopFlag,
    progress: "tqdm[Any]",
    *,
    max_records: int | None,
    idle_timeout: float | None,
) -> None:
    """Poll until a stop is requested, ``max_records`` were read or nothing came for ``idle_timeout`` s."""
    idle_since = time.monotonic()
    while stop.reason is None:
        limit = POLL_MAX_RECORDS if max_records is None else min(POLL_MAX_RECORDS, max_records - recorder.counts.read)
        batches = consumer.poll(timeout_ms=int(STOP_CHECK_S * 1000), max_records=limit)
        for records in batches.values():
            for message in records:
                recorder.add(message)
            progress.update(len(records))
        if batches:
            idle_since = time.monotonic()
        if max_records is not None and recorder.counts.read >= max_records:
            stop.request(f"--max-records {max_records}", 0)
        elif idle_timeout is not None and time.monotonic() - idle_since >= idle_timeout:
            stop.request(f"--idle-timeout {idle_timeout:g} s", 0)


def run_record(args: argparse.Namespace) -> int:
    """Record ``args.topics`` into ``args.file``; exit 0 at --max-records or --idle-timeout, 128+N on signal N.

    Order of side effects at the end (any of those, or Ctrl-C):

    1. polling stops (a signal handler only sets the stop flag; a poll lasts at most 0.1 s);
    2. the events still in the reorder buffer are written;
    3. the file is closed, which writes the gzip trailer: the file replays whole;
    4. the consumer is closed (no offsets are committed: there is no group);
    5. the counts are printed.
    """
    bootstrap = bootstrap_from(args)
    warn = to_stderr("record")
    topics = topics_of(args.topics)
    consumer = open_consumer(bootstrap, topics, from_end=args.from_end)
    stop = StopFlag()
    try:
        with stop_on_signals(stop):
            with EventFileWriter(args.file) as out:
                recorder = Recorder(out, args.reorder_window, warn)
                warn(
                    f"recording {len(topics)} topic(s) from the {'end' if args.from_end else 'beginning'}"
                    f" to {args.file}; Ctrl-C stops"
                )
                try:
                    with progress_bar("record") as progress:
                        record(
                            consumer,
                            recorder,
                            stop,
                            progress,
                            max_records=args.max_records,
                            idle_timeout=args.idle_timeout,
                        )
                finally:
                    recorder.finish()
    finally:
        consumer.close()
    counts = recorder.counts
    print_summary(
        f"record {args.file.name}: {sum(counts.written.values())} events written, {counts.skipped} invalid records"
        f" skipped, {counts.late} late; stopped by {stop.reason}",
        counts.written,
    )
    return stop.exit_code


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {text}")
    return value


def add_command(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = sub.add_parser(
        "record",
        help="write live topics to an events file that replay accepts",
        description="Read TOPIC(s) (manually assigned partitions, no consumer group) and write their valid events to"
        " FILE: gzip JSON lines, or plain when FILE ends in .jsonl. Ctrl-C stops cleanly.",
    )
    parser.add_argument(
        "topics", nargs="+", metavar="TOPIC", help=f"topic to record; '{ALL_INPUTS}' for every input topic"
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="events file to write (replaced if it exists)")
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--from-beginning", dest="from_end", action="store_false", help="start at the oldest record (default)"
    )
    start.add_argument("--from-end", dest="from_end", action="store_true", help="record only what arrives from now on")
    parser.add_argument("--max-records", type=positive_int, metavar="N", help="stop after reading N records")
    parser.add_argument(
        "--idle-timeout", type=positive_float, metavar="S", help="stop after S seconds without a new record"
    )
    add_reorder_window_option(parser, math.inf)
    add_bootstrap_option(parser)
    parser.set_defaults(run=run_record, from_end=False)
