"""Bytes to typed events and back; what cannot be decoded says why."""

from collections.abc import Callable
from typing import Literal, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from antifraud.events.models import AnyEvent, Event

E = TypeVar("E", bound=BaseModel)
"""An event, or another record read back from a topic (an alert): judged by the same rules."""

RejectKind = Literal[
    "empty",
    "oversized",
    "malformed_json",
    "schema_violation",
    "event_time_out_of_range",
    "wrong_partition",
    "processing_failed",
]
"""Why a record was dead-lettered; ``oversized``: over the worker's record size limit; ``event_time_out_of_range``: an event time before :data:`~antifraud.events.types.EARLIEST_EVENT_TIME`
(an unset clock), or further ahead of the wall clock than a clock can be wrong (it would move time on
for every entity, releasing holds early); ``wrong_partition``:
on a partition its entity's key does not map to (``streams/loop.py``); ``processing_failed``: it decoded,
but a detector stage fails on it (``streams/pipeline.py``)."""
MAX_REASON_ERRORS = 3


class InvalidEvent(ValueError):
    """A record that is not a valid event of its topic's kind.

    ``kind`` is a small fixed vocabulary (safe as a metric label); ``detail``
    names the fields and the rule they broke, never the offending values, so
    it carries no personal data into headers or logs.
    """

    def __init__(self, kind: RejectKind, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind: RejectKind = kind
        self.detail = detail


def _describe(exc: ValidationError) -> tuple[RejectKind, str]:
    errors = exc.errors(include_url=False, include_input=False)
    if any(e["type"] == "json_invalid" for e in errors):
        return "malformed_json", "; ".join(e["msg"] for e in errors[:MAX_REASON_ERRORS])
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '(record)'}: {e['msg']}" for e in errors[:MAX_REASON_ERRORS]]
    if len(errors) > MAX_REASON_ERRORS:
        parts.append(f"and {len(errors) - MAX_REASON_ERRORS} more")
    return "schema_violation", "; ".join(parts)


def _validated(raw: bytes | None, validate_json: Callable[[bytes], E]) -> E:
    if not raw:
        raise InvalidEvent("empty", "record has no value")
    try:
        return validate_json(raw)
    except ValidationError as exc:
        raise InvalidEvent(*_describe(exc)) from None


def decode(model: type[E], raw: bytes | None) -> E:
    """Parse and validate one record as ``model``; raise :class:`InvalidEvent` otherwise."""
    return _validated(raw, model.model_validate_json)


_ANY_EVENT: TypeAdapter[Event] = TypeAdapter(AnyEvent)


def decode_any(raw: bytes | None) -> Event:
    """Parse a record of any kind, told by its ``kind`` field (mixed streams, replay files)."""
    return _validated(raw, _ANY_EVENT.validate_json)


def encode(event: Event) -> bytes:
    return event.model_dump_json().encode()
