"""Live warnings for bank counters and ATMs: alerts fanned out per place over server-sent events.

One Kafka consumer of the alerts topic per app process, without a consumer
group (every replica of the app sees every alert) and from the end (a counter
needs what happens now, not history). An alert goes to the subscribers of each
branch or ATM in its audience. The last alerts per place are kept in memory so
a counter page that opens (or reconnects) shows what it missed since the app
started, and an alert repeated by a worker's replay is pushed only once.
"""

import asyncio
import json
import logging
import pathlib
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Literal

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, Path, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, ValidationError
from redis.exceptions import WatchError

from antifraud.alerts.explain import explain_alert
from antifraud.alerts.models import Alert
from antifraud.case.models import CaseStatus, Text
from antifraud.case.service import CaseService
from antifraud.case.views import Id, get_cases
from antifraud.clock import utcnow
from antifraud.config import ConfigError
from antifraud.events.types import Code, UtcTime
from antifraud.refusals import Refusal, Unknown
from antifraud.state.keys import WARNING_HANDLING
from antifraud.topics import ALERTS
from antifraud.web.auth import Principal, Role, ensure_branch, require
from antifraud.web.deps import get_redis
from antifraud.web.metrics import LIVE_CONNECTIONS

log = logging.getLogger(__name__)

RECENT_PER_PLACE = 50
QUEUE_SIZE = 100
RECONNECT_SECONDS = 2.0


WARNING_HANDLING_DAYS = 7
"""How long a place's marks are kept after its last one: longer than a warning stays recent."""

HandlingState = Literal["seen", "handled", "escalated"]


class Handling(BaseModel):
    """What the counter did about a warning, and who and when: seen, handled, or escalated to the police
    (with the case). In Redis, so every web process and a reloaded page show it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    state: HandlingState
    by: str
    at: UtcTime
    case_id: str | None = None


class CounterWarning(Alert):
    """An alert as a counter shows it: with its reasons in a teller's words (:mod:`antifraud.alerts.explain`)
    and what the counter did about it."""

    explanations: list[str]
    handling: Handling | None = None

    @classmethod
    def of(cls, alert: Alert) -> "CounterWarning":
        return cls(**dict(alert), explanations=explain_alert(alert))

    def alert(self) -> Alert:
        return Alert.model_validate(self.model_dump(exclude={"explanations", "handling"}))


def places(alert: Alert, owners: Mapping[str, str] | None = None) -> set[str]:
    """The branches and ATMs that must see the alert live; with ``owners`` (ATM id -> branch id), the
    branch that owns an ATM too: no one stands at an ATM to read its warnings, a teller at its branch does."""
    owners = owners or {}
    ids = {a.id for a in alert.audience if a.kind in ("branch", "atm") and a.id}
    return ids | {owners[atm] for atm in ids if atm in owners}  # an ATM id the registry names: its owner too


def load_atm_branches(path: pathlib.Path | None) -> dict[str, str]:
    """The ATM registry (``ANTIFRAUD_ATM_BRANCHES``): a JSON object of ATM id -> the id of the branch that
    owns it; none configured, none. A bad file stops the app, naming the file and what is wrong."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"ANTIFRAUD_ATM_BRANCHES: cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in data.items()):
        raise ConfigError(f"ANTIFRAUD_ATM_BRANCHES: {path} must be a JSON object of ATM id -> branch id")
    return data


class WarningHub:
    """Subscribers and recent alerts per place (branch or ATM id); no I/O."""

    def __init__(
        self, recent: int = RECENT_PER_PLACE, queue_size: int = QUEUE_SIZE, owners: Mapping[str, str] | None = None
    ) -> None:
        self._owners = dict(owners or {})
        self._recent: dict[str, deque[CounterWarning]] = {}
        self._subscribers: dict[str, set[asyncio.Queue[CounterWarning]]] = {}
        self._recent_size = recent
        self._queue_size = queue_size

    def publish(self, alert: Alert) -> int:
        """Push to the alert's places' subscribers; returns how many got it (0 for a repeated alert)."""
        delivered = 0
        warning = CounterWarning.of(alert)
        for place in places(alert, self._owners):
            recent = self._recent.setdefault(place, deque(maxlen=self._recent_size))
            if any(seen.alert_id == alert.alert_id for seen in recent):
                continue
            recent.append(warning)
            for queue in self._subscribers.get(place, ()):
                if queue.full():  # a stalled page loses its oldest warning, not the newest
                    queue.get_nowait()
                queue.put_nowait(warning)
                delivered += 1
        return delivered

    def recent(self, place: str) -> list[CounterWarning]:
        """The place's recent alerts, newest first."""
        return list(reversed(self._recent.get(place, ())))

    def find(self, place: str, alert_id: str) -> CounterWarning | None:
        """One of the place's recent warnings."""
        return next((w for w in self._recent.get(place, ()) if w.alert_id == alert_id), None)

    @contextmanager
    def subscribe(self, place: str) -> Iterator["asyncio.Queue[CounterWarning]"]:
        queue: asyncio.Queue[CounterWarning] = asyncio.Queue(self._queue_size)
        self._subscribers.setdefault(place, set()).add(queue)
        LIVE_CONNECTIONS.inc()
        try:
            yield queue
        finally:
            self._subscribers[place].discard(queue)
            LIVE_CONNECTIONS.dec()

    def subscriber_count(self) -> int:
        return sum(len(queues) for queues in self._subscribers.values())


async def consume_alerts(hub: WarningHub, bootstrap: str, ready: asyncio.Event) -> None:
    """Feed the hub from the alerts topic until cancelled; reconnect when the broker goes away.

    ``ready`` is set once the consumer sits at the end of the topic.
    """
    while True:
        consumer = AIOKafkaConsumer(
            ALERTS,
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="latest",
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
        )
        try:
            await consumer.start()
            await consumer.seek_to_end()
            for partition in consumer.assignment():
                await consumer.position(partition)  # resolve "the end" now, not at the first fetch
            ready.set()
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        _publish(hub, record.value)
        except KafkaError as exc:
            log.warning("alerts consumer: %s; reconnecting in %.0f s", exc, RECONNECT_SECONDS)
            await asyncio.sleep(RECONNECT_SECONDS)
        finally:
            await consumer.stop()


def _publish(hub: WarningHub, raw: bytes | None) -> None:
    try:
        alert = Alert.model_validate_json(raw or b"")
    except ValidationError as exc:
        log.warning("alerts topic: skipped a record that is not an alert (%d errors)", exc.error_count())
        return
    hub.publish(alert)


router = APIRouter(prefix="/api/places", tags=["warnings"])
PlaceId = Path(description="a branch or ATM id, as in an alert's audience")
_readers = require(Role.TELLER, Role.ANALYST)
_tellers = require(Role.TELLER)


async def readable_place(place: Annotated[Code, PlaceId], principal: Principal = Depends(_readers)) -> str:
    """The place in the path, if the caller may see it (a teller: their own branch only)."""
    ensure_branch(principal, place)
    return place


@router.get(
    "/{place}/warnings", response_model=list[CounterWarning], summary="recent warnings of a branch or ATM, newest first"
)
async def recent_warnings(request: Request, place: str = Depends(readable_place)) -> list[CounterWarning]:
    hub: WarningHub = request.app.state.warnings
    recent = hub.recent(place)
    marks = await get_redis(request).hmget(WARNING_HANDLING.key(place), [w.alert_id for w in recent]) if recent else []
    return [
        w.model_copy(update={"handling": Handling.model_validate_json(mark) if mark else None})
        for w, mark in zip(recent, marks, strict=True)
    ]


async def _mark(request: Request, place: str, alert_id: str, handling: Handling) -> None:
    """Record ``handling``; a seen or handled mark never replaces an escalation (409), not even one recorded
    between the read and the write (the key is watched)."""
    key = WARNING_HANDLING.key(place)
    async with get_redis(request).pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(key)
                before = await pipe.hget(key, alert_id)
                if (
                    before
                    and handling.state != "escalated"
                    and Handling.model_validate_json(before).state == "escalated"
                ):
                    raise Refusal("warning_escalated", f"warning {alert_id} at {place} is escalated already")
                pipe.multi()
                pipe.hset(key, alert_id, handling.model_dump_json())
                pipe.expire(key, WARNING_HANDLING_DAYS * 86400)
                await pipe.execute()
                return
            except WatchError:
                continue


@dataclass(frozen=True)
class Shown:
    """A recent warning of a place, and the place's teller acting on it."""

    teller: Principal
    place: str
    warning: CounterWarning


async def _shown(request: Request, place: Code, alert_id: Id, principal: Principal = Depends(_tellers)) -> Shown:
    """The warning in the path, if the caller is a teller of its place and the place was shown it (404 else)."""
    ensure_branch(principal, place)
    hub: WarningHub = request.app.state.warnings
    warning = hub.find(place, alert_id)
    if warning is None:
        raise Unknown("warning_unknown", f"no recent warning {alert_id} at {place}")
    return Shown(principal, place, warning)


class HandlingBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: Literal["seen", "handled"]


@router.post(
    "/{place}/warnings/{alert_id}/handling",
    response_model=Handling,
    summary="mark a recent warning of a branch or ATM seen or handled (who and when are kept)",
)
async def mark_warning(request: Request, body: HandlingBody, shown: Shown = Depends(_shown)) -> Handling:
    """The place's own tellers (and admins) mark a warning the place was shown; an escalated one stays so."""
    handling = Handling(state=body.state, by=shown.teller.name, at=utcnow())
    await _mark(request, shown.place, shown.warning.alert_id, handling)
    return handling


class EscalateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Text
    """What the teller sees: who is at the counter, what they were told, what they insist on."""


class Escalation(BaseModel):
    """What a teller may know of the case they escalated to: that it reached the police queue."""

    case_id: str
    status: CaseStatus
    escalated_at: UtcTime


@router.post(
    "/{place}/warnings/{alert_id}/escalate",
    response_model=Escalation,
    summary="escalate a recent warning of a branch or ATM to the police (a customer at the counter now)",
)
async def escalate_warning(
    request: Request, body: EscalateBody, cases: CaseService = Depends(get_cases), shown: Shown = Depends(_shown)
) -> Escalation:
    """Only the place's own tellers (and admins) escalate, and only a warning the place was shown."""
    teller, place = shown.teller, shown.place
    case = await cases.escalate(shown.warning.alert(), actor=teller.name, place=place, note=body.note)
    assert case.escalated_at is not None
    escalated = Handling(state="escalated", by=teller.name, at=case.escalated_at, case_id=case.case_id)
    await _mark(request, place, shown.warning.alert_id, escalated)
    return Escalation(case_id=case.case_id, status=case.status, escalated_at=case.escalated_at)


@router.get(
    "/{place}/warnings/stream",
    response_class=EventSourceResponse,
    summary="live warnings of a branch or ATM (server-sent events, event type 'warning', data a CounterWarning)",
)
async def stream_warnings(request: Request, place: str = Depends(readable_place)) -> AsyncIterator[ServerSentEvent]:
    hub: WarningHub = request.app.state.warnings
    with hub.subscribe(place) as queue:
        yield ServerSentEvent(comment="subscribed", retry=2000)
        while True:
            alert = await queue.get()
            yield ServerSentEvent(raw_data=alert.model_dump_json(), event="warning", id=alert.alert_id)
