"""Reading the evaluation's inputs: the ground truth, alerts (file or topic), event times.

Every failure is an :class:`InputError` naming the file and line (or the
partition and offset), never the offending values, which may be personal data.
"""

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import orjson
from pydantic import ValidationError

from antifraud import topics
from antifraud.alerts.models import Alert
from antifraud.evaluation.scoring import EventFact
from antifraud.events.models import EVENT_MODELS
from simulators.ground_truth import GroundTruth
from streams.eventfile import EventFileError, read_lines
from streams.io import read_until_idle

MAX_ERRORS = 3


class InputError(ValueError):
    """An input file or topic that cannot be read as what it should be."""


def _summary(exc: ValidationError) -> str:
    """Which fields broke which rule, without the input values."""
    errors = exc.errors(include_url=False, include_input=False)
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '(record)'}: {e['msg']}" for e in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        parts.append(f"and {len(errors) - MAX_ERRORS} more")
    return "; ".join(parts)


def read_truth(path: Path) -> GroundTruth:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read ground truth {path}: {exc.strerror or exc}") from None
    try:
        return GroundTruth.model_validate_json(raw)
    except ValidationError as exc:
        raise InputError(f"{path} is not a ground truth file: {_summary(exc)}") from None


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines with their 1-based numbers, from a plain or gzip file."""
    try:
        yield from ((number, line) for number, line in read_lines(path) if line.strip())
    except (OSError, EventFileError) as exc:
        raise InputError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def read_alerts_file(path: Path) -> list[Alert]:
    """Alerts from JSON lines, one :class:`Alert` per line."""
    alerts = []
    for number, line in _lines(path):
        try:
            alerts.append(Alert.model_validate_json(line))
        except ValidationError as exc:
            raise InputError(f"{path} line {number}: not an alert: {_summary(exc)}") from None
    return alerts


def read_alerts_topic(bootstrap: str, *, idle: float = 2.0) -> list[Alert]:
    """Every alert on the alerts topic, read from the start until nothing new arrives for ``idle`` seconds."""
    try:
        records = read_until_idle(bootstrap, topics.ALERTS, idle=idle)
    except Exception as exc:  # kafka-python's errors share no base class worth naming
        raise InputError(f"cannot read {topics.ALERTS} from {bootstrap}: {exc}") from None
    alerts = []
    for record in records:
        try:
            alerts.append(Alert.model_validate_json(record.value or b""))
        except ValidationError as exc:
            where = f"{topics.ALERTS} partition {record.partition} offset {record.offset}"
            raise InputError(f"{where}: not an alert: {_summary(exc)}") from None
    return alerts


def _event_time(raw: object) -> datetime | None:
    """The time if ``raw`` is an ISO 8601 string with a timezone, else None."""
    if not isinstance(raw, str):
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def read_event_facts(path: Path, truth: GroundTruth) -> dict[str, EventFact]:
    """Time and actor (the partition key: caller, sender, payer...) of the fraud scenarios' events;
    stops once all are found."""
    wanted = {e for s in truth.scenarios if not s.benign for e in s.event_ids}
    facts: dict[str, EventFact] = {}
    for number, line in _lines(path):
        if len(facts) == len(wanted):
            break
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise InputError(f"{path} line {number}: not JSON") from None
        event_id = event.get("event_id") if isinstance(event, dict) else None
        if not isinstance(event_id, str):
            raise InputError(f"{path} line {number}: no event_id")
        if event_id in wanted:
            event_time = _event_time(event.get("event_time"))
            if event_time is None:
                raise InputError(f"{path} line {number}: event_time is not an ISO 8601 time with a timezone")
            model = EVENT_MODELS.get(event.get("kind", ""))
            actor = event.get(model.key_field) if model is not None else None
            facts[event_id] = EventFact(event_time, actor if isinstance(actor, str) else None)
    return facts
