"""``antifraud replay FILE``: send a recorded event stream to Kafka, paced by event time.

Each event goes to its kind's input topic, keyed by ``event.partition_key()``,
as the worker expects. Pacing: at speed N the event at event time ``t`` is
sent at ``start + (t - t0) / N`` in wall time, ``t0`` being the first event
sent; ``--max`` (the default) sends as fast as the producer takes them. The
record timestamp is the send time (the producer's default), so gaps between
record timestamps are the event-time gaps divided by N.

Ordering: files should be in event-time order, but ``record`` of a live topic
interleaves partitions. Lines pass through a :class:`ReorderBuffer` holding
``--reorder-window`` seconds of event time (default 60 s): any disorder smaller
than the window is sent in order, memory stays bounded by one window of
events, and ``--reorder-window inf`` sorts the whole file in memory. An event
older than one already sent is reported by line number and sent at once.

Also home of what ``record`` shares: the bootstrap option, clean stops on
SIGINT/SIGTERM, and the per-topic summary.
"""

import argparse
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from kafka.errors import KafkaTimeoutError
from tqdm import tqdm

from antifraud.config import ConfigError
from antifraud.events.codec import InvalidEvent, decode_any
from antifraud.events.models import Event
from streams.eventfile import EventFileError, ReorderBuffer, read_lines
from streams.io import EventProducer

DEFAULT_REORDER_WINDOW_S = 60.0
STOP_CHECK_S = 0.1
"""Longest a pacing wait or a poll runs before looking at the stop flag again."""
EXIT_BAD_INPUT = 1
BOOTSTRAP_TIMEOUT_MS = 10_000
PRODUCER_BATCH_BYTES = 256 * 1024
"""Larger batches than kafka-python's 16 KiB: about 600 events per request at --max."""

C = TypeVar("C")


# --- shared with ``record`` --------------------------------------------------


@dataclass
class StopFlag:
    """Why a run should stop early; set by a signal handler or the loop, read between events."""

    reason: str | None = None
    exit_code: int = 0

    def request(self, reason: str, exit_code: int) -> None:
        if self.reason is None:
            self.reason, self.exit_code = reason, exit_code


@contextmanager
def stop_on_signals(stop: StopFlag) -> Iterator[None]:
    """Turn the first SIGINT or SIGTERM into a stop request; a second one acts as usual (kills).

    The handler only sets the flag: interrupting kafka-python mid-send or a
    gzip write mid-block could lose what was already handed over.
    """
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.request(signal.Signals(signum).name, 128 + signum)
        restore()

    for sig in previous:
        signal.signal(sig, handle)
    try:
        yield
    finally:
        restore()


def add_bootstrap_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap", metavar="HOST:PORT[,...]", help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP)"
    )


def bootstrap_from(args: argparse.Namespace) -> str:
    """``--bootstrap``, else ``KAFKA_BOOTSTRAP``: a tester must say which cluster receives the stream."""
    bootstrap: str | None = args.bootstrap or os.environ.get("KAFKA_BOOTSTRAP")
    if not bootstrap:
        raise ConfigError("no Kafka broker given: pass --bootstrap HOST:PORT or set KAFKA_BOOTSTRAP")
    return bootstrap


def connect(client: Callable[..., C], bootstrap: str, **config: Any) -> C:
    """A kafka-python client; a broker that does not answer is a configuration error naming the address."""
    try:
        return client(bootstrap_servers=bootstrap, bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS, **config)
    except KafkaTimeoutError:
        raise ConfigError(f"no Kafka broker answers at {bootstrap} (--bootstrap / KAFKA_BOOTSTRAP)") from None


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def window_seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds (or inf), not {text}")
    return value


def add_reorder_window_option(parser: argparse.ArgumentParser, default: float) -> None:
    parser.add_argument(
        "--reorder-window",
        type=window_seconds,
        default=default,
        metavar="SECONDS",
        help=f"put events up to this much event time out of order back in order, holding that much in memory"
        f" (default {default:g}; 'inf' sorts everything in memory; 0 keeps the input order)",
    )


def to_stderr(command: str) -> Callable[[str], None]:
    """Print a problem on stderr without breaking the progress bar."""
    return lambda message: tqdm.write(f"antifraud {command}: {message}", file=sys.stderr)


def progress_bar(command: str) -> "tqdm[Any]":
    """Events handled so far, on stderr, shown only on a terminal."""
    return tqdm(desc=command, unit=" events", file=sys.stderr, disable=None, dynamic_ncols=True)


def print_summary(headline: str, per_topic: Mapping[str, int]) -> None:
    print(headline)
    for topic in sorted(per_topic):
        print(f"  {topic:<32} {per_topic[topic]}")


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


# --- replay ------------------------------------------------------------------


class TopicSender:
    """Sends events through an :class:`EventProducer`, counting what the broker acknowledged,
    so that "sent" equals what is on the topics even when sends fail or the run is interrupted."""

    def __init__(self, bootstrap: str) -> None:
        self._producer = connect(EventProducer, bootstrap, batch_size=PRODUCER_BATCH_BYTES)
        self.acknowledged: Counter[str] = Counter()
        self.failed = 0
        self.last_error: str | None = None

    def send(self, event: Event) -> None:
        future = self._producer.send(event)
        future.add_callback(self._on_acknowledged, EventProducer.topic_of(event))
        future.add_errback(self._on_failed)

    def _on_acknowledged(self, topic: str, metadata: object) -> None:
        self.acknowledged[topic] += 1  # callbacks run on the producer's one I/O thread

    def _on_failed(self, error: Exception) -> None:
        self.failed += 1
        self.last_error = repr(error)

    def close(self) -> None:
        """1. flush: every record handed over is acknowledged or failed; 2. close the connections."""
        self._producer.flush()
        self._producer.close()


class OrderedEvents:
    """The valid events of a file with their line numbers, in event-time order within the window.

    Bad lines are reported by number and reason (``InvalidEvent`` names fields,
    never values) and skipped, or, with ``strict``, stop the run. Reading stops
    as soon as a stop is requested; what the buffer holds then is never released.
    """

    def __init__(self, path: Path, window: float, *, strict: bool, stop: StopFlag, warn: Callable[[str], None]) -> None:
        self.path = path
        self.strict = strict
        self.lines_read = 0
        self.skipped = 0
        self.late = 0
        self._buffer: ReorderBuffer[tuple[int, Event]] = ReorderBuffer(window)
        self._stop = stop
        self._warn = warn

    @property
    def held(self) -> int:
        """Events read but not released (yet)."""
        return len(self._buffer)

    def __iter__(self) -> Iterator[tuple[int, Event]]:
        try:
            for number, raw in read_lines(self.path):
                if self._stop.reason:
                    return
                self.lines_read = number
                event = self._decode(number, raw)
                if event is not None:
                    self._push(number, event)
                    yield from (item for _, item in self._buffer.ready())
        except EventFileError as exc:
            self._warn(str(exc))
            self._stop.request(f"unreadable file after line {self.lines_read}", EXIT_BAD_INPUT)
        if not self._stop.reason:
            yield from (item for _, item in self._buffer.drain())

    def _decode(self, number: int, raw: bytes) -> Event | None:
        try:
            return decode_any(raw)
        except InvalidEvent as exc:
            self.skipped += 1
            self._warn(f"line {number}: {exc} ({'stopping: --strict' if self.strict else 'skipped'})")
            if self.strict:
                self._stop.request(f"bad line {number} (--strict)", EXIT_BAD_INPUT)
            return None

    def _push(self, number: int, event: Event) -> None:
        late = self._buffer.push(event.event_time.timestamp(), (number, event))
        if late:
            self.late += 1
            self._warn(
                f"line {number}: event time {late:.3f} s before an event already sent; sent now, out of order"
                f" (a --reorder-window above {late:.0f} s would have ordered it)"
            )


class Pacer:
    """Holds each send until ``(event time - first event time) / speed`` has passed since the first send."""

    def __init__(self, speed: float | None) -> None:
        self.speed = speed
        self._origin: tuple[float, float] | None = None  # (wall monotonic, event time) of the first event

    def wait_for(self, event_time: float, stop: StopFlag) -> bool:
        """Sleep until an event at ``event_time`` (epoch s) is due; False when a stop was requested."""
        if self.speed is not None:
            if self._origin is None:
                self._origin = (time.monotonic(), event_time)
            due = self._origin[0] + (event_time - self._origin[1]) / self.speed
            while stop.reason is None and (left := due - time.monotonic()) > 0:
                time.sleep(min(left, STOP_CHECK_S))
        return stop.reason is None


@dataclass
class LastSent:
    line: int
    event_time: datetime


def replay(
    events: Iterator[tuple[int, Event]], sender: TopicSender, pacer: Pacer, stop: StopFlag, progress: "tqdm[Any]"
) -> LastSent | None:
    """Send events as they come, each when the pacer says; return the last one handed to the producer."""
    last: LastSent | None = None
    for line, event in events:
        if not pacer.wait_for(event.event_time.timestamp(), stop):
            break
        sender.send(event)
        last = LastSent(line, event.event_time)
        progress.update()
    return last


def run_replay(args: argparse.Namespace) -> int:
    """Replay ``args.file``; exit 0 when all was sent, 1 on bad input or failed sends, 128+N on signal N.

    Order of side effects when a stop is requested (SIGINT/SIGTERM, a bad line
    under ``--strict``, an unreadable file):

    1. the stop flag is set (a signal handler does nothing else);
    2. nothing more is sent: no further line is read, a pacing wait ends within
       0.1 s, events still in the reorder buffer are dropped;
    3. the producer is flushed: every record handed over is acknowledged or failed;
    4. the producer is closed;
    5. the report is printed: "sent" counts acknowledged records, so it equals
       what reached the topics, and "stopped" names the last line and event time sent.
    """
    bootstrap = bootstrap_from(args)
    warn = to_stderr("replay")
    if not args.file.is_file():
        warn(f"{args.file}: no such file")
        return 2
    sender = TopicSender(bootstrap)
    stop = StopFlag()
    events = OrderedEvents(args.file, args.reorder_window, strict=args.strict, stop=stop, warn=warn)
    started = time.monotonic()
    with stop_on_signals(stop):
        try:
            with progress_bar("replay") as progress:
                last = replay(iter(events), sender, Pacer(args.speed), stop, progress)
        finally:
            sender.close()
    elapsed = time.monotonic() - started
    sent = sum(sender.acknowledged.values())
    print_summary(
        f"replay {args.file.name}: {sent} sent, {events.skipped} bad lines skipped, {events.late} late,"
        f" {sender.failed} failed; {elapsed:.1f} s ({sent / elapsed:.0f} events/s)",
        sender.acknowledged,
    )
    if sender.failed:
        warn(f"{sender.failed} sends failed, the last with {sender.last_error}")
    if stop.reason:
        where = (
            f"at line {last.line}, event time {iso(last.event_time)} (the last event sent)"
            if last
            else "before sending any event"
        )
        print(
            f"stopped by {stop.reason} {where}: {sent} sent; read up to line {events.lines_read},"
            f" {events.held} events read but not sent"
        )
        return stop.exit_code
    return EXIT_BAD_INPUT if sender.failed else 0


def add_command(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = sub.add_parser(
        "replay",
        help="send a recorded event file to Kafka, paced by event time",
        description="Send the events of FILE (gzip or plain JSON lines, one event with its kind per line) to their"
        " kinds' topics in event-time order. Ctrl-C stops cleanly and says how far it got.",
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="events file, as written by simulate or record")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--max", dest="speed", action="store_const", const=None, help="as fast as possible (default)")
    pace.add_argument(
        "--realtime", dest="speed", action="store_const", const=1.0, help="at the pace the events happened"
    )
    pace.add_argument("--speed", dest="speed", type=positive_float, metavar="N", help="N times faster than real time")
    add_reorder_window_option(parser, DEFAULT_REORDER_WINDOW_S)
    parser.add_argument(
        "--strict", action="store_true", help="stop at the first bad line (exit 1) instead of skipping it"
    )
    add_bootstrap_option(parser)
    parser.set_defaults(run=run_replay, speed=None)
