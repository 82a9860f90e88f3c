"""What flows through the stream path: records as read, typed inputs, timers, records to produce.

An :class:`Input` is a valid event with its event time (``at``, epoch seconds) and where it was read;
a :class:`Timer` is work due at an event time for one entity: a stage's own timer (a hold's release,
a fraud report's trace) or a message from another entity's stage (a payee told it was paid). Both are
*items*; a batch processes its items in the order of :func:`order_key`.
"""

from dataclasses import dataclass
from typing import Any

from antifraud.events.codec import InvalidEvent
from antifraud.events.models import Event


@dataclass(slots=True)
class Record:
    """An input record as read: its position, key and original bytes.

    Not frozen, like the other per-record values here: a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__`` (it cost 6% of ``antifraud detect``'s CPU for these two); nothing changes one once made."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class Input:
    """A valid event of an input topic, with its event time in epoch seconds (not frozen, as :class:`Record`)."""

    at: float
    event: Any
    """The event (an :class:`antifraud.events.models.Event`; typed ``Any`` so stages name their own kind)."""
    record: Record
    kind: str
    """The event's kind."""

    @classmethod
    def of(cls, event: Any, record: Record) -> "Input":
        return cls(event.event_time.timestamp(), event, record, event.kind)


@dataclass(frozen=True, slots=True)
class Timer:
    """Work due at event time ``at`` for the entity ``key`` of input topic ``topic``.

    The worker that owns ``key``'s partition of ``topic`` runs it, in event-time order with that
    partition's records, so a timer is a message to whoever owns an entity. ``kind`` names the stage
    that handles it and what it means; ``data`` is that stage's payload; ``timer_id`` is stable (the
    same input yields the same timers), so a timer written twice is one timer.
    """

    at: float
    topic: str
    key: str
    kind: str
    data: str
    timer_id: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that is not a valid event of its topic, and why: it goes to the dead-letter topic.

    ``at`` is the event time of the record before it in its partition (``-inf`` for the first), so it
    leaves the merge right after that record and offsets move past it in order."""

    at: float
    record: Record
    error: InvalidEvent


Pending = Input | Rejected
"""What a partition's queue holds."""

Item = Input | Timer


def order_key(item: Item | Rejected) -> tuple[Any, ...]:
    """The order of a batch: event time, timers before records of the same time (a release due at
    10:00 goes before a transfer at 10:00), then a fixed tiebreak. Records of one partition keep their
    offset order; records of different partitions at the same time never see each other's effects
    (``streams/pipeline.py``), so how they are tied does not change any result."""
    if isinstance(item, Timer):
        return (item.at, 0, item.timer_id)
    record = item.record
    return (item.at, 1, record.topic, record.partition, record.offset)


@dataclass(frozen=True, slots=True)
class OutRecord:
    """A record to produce: topic, key and value (JSON)."""

    topic: str
    key: bytes
    value: bytes

    @classmethod
    def of(cls, topic: str, key: str, value: str) -> "OutRecord":
        return cls(topic, key.encode(), value.encode())


def event_seconds(event: Event) -> float:
    return event.event_time.timestamp()
