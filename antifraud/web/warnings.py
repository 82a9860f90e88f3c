"""Live warnings for bank counters and ATMs: alerts fanned out per place over server-sent events.

One Kafka consumer of the alerts topic per app process, without a consumer
group (every replica of the app sees every alert) and from the end (a counter
needs what happens now, not history). An alert goes to the subscribers of each
branch or ATM in its audience. The last alerts per place are kept in Redis
(:class:`RecentWarnings`), written before they are pushed, so a counter page that
opens or reconnects, on any web process or after a restart, shows the same
warnings, and a teller can mark or escalate one whichever process pushed it. An
alert repeated by a worker's replay is pushed only once.
"""

import asyncio
import json
import logging
import pathlib
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Literal, cast

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, Path, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError, WatchError

from antifraud.alerts.explain import explain_alert
from antifraud.alerts.models import Alert
from antifraud.case.models import CaseStatus, Text
from antifraud.case.service import CaseService
from antifraud.case.views import Id, get_cases
from antifraud.clock import utcnow
from antifraud.config import ConfigError
from antifraud.events.types import Code, UtcTime
from antifraud.refusals import Refusal, Unknown
from antifraud.state.keys import RECENT_WARNING_ORDER, RECENT_WARNINGS, WARNING_HANDLING
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
    """This process's subscribers per place (branch or ATM id), and the alerts it pushed lately; no I/O."""

    def __init__(
        self, recent: int = RECENT_PER_PLACE, queue_size: int = QUEUE_SIZE, owners: Mapping[str, str] | None = None
    ) -> None:
        self._owners = dict(owners or {})
        self._pushed: dict[str, deque[str]] = {}
        self._subscribers: dict[str, set[asyncio.Queue[CounterWarning]]] = {}
        self._recent_size = recent
        self._queue_size = queue_size

    def places(self, alert: Alert) -> set[str]:
        return places(alert, self._owners)

    def publish(self, warning: CounterWarning) -> int:
        """Push to the warning's places' subscribers; returns how many got it (0 for a repeated alert)."""
        delivered = 0
        for place in self.places(warning):
            pushed = self._pushed.setdefault(place, deque(maxlen=self._recent_size))
            if warning.alert_id in pushed:
                continue
            pushed.append(warning.alert_id)
            for queue in self._subscribers.get(place, ()):
                if queue.full():  # a stalled page loses its oldest warning, not the newest
                    queue.get_nowait()
                queue.put_nowait(warning)
                delivered += 1
        return delivered

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


# KEYS[1] the place's warnings (hash), KEYS[2] their order (sorted set); ARGV: the alert id, when it was
# read (epoch), its JSON, how many to keep, the TTL in seconds. A known alert id changes nothing.
_KEEP = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[3]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if extra > 0 then
  local old = redis.call('ZRANGE', KEYS[2], 0, extra - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, extra - 1)
  redis.call('HDEL', KEYS[1], unpack(old))
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
"""


class RecentWarnings:
    """The last warnings of each place, in Redis (``RECENT_WARNINGS``, ``RECENT_WARNING_ORDER``): shared by
    every web process and kept across restarts; each process adds what it reads, an alert id once. Ordered
    as first read, as a counter sees them arrive: a late alert (a worker catching up) is the newest warning,
    not one older than the place's last 50, trimmed as soon as kept."""

    def __init__(self, redis: Redis, size: int = RECENT_PER_PLACE) -> None:
        self.redis = redis
        self.size = size
        self._keep = redis.register_script(_KEEP)

    @staticmethod
    def _keys(place: str) -> list[str]:
        tagged = f"{{{place}}}"  # one slot for the place's two keys
        return [RECENT_WARNINGS.key(tagged), RECENT_WARNING_ORDER.key(tagged)]

    async def add(self, warning: CounterWarning, places: Iterable[str], read_at: float) -> None:
        ttl = WARNING_HANDLING_DAYS * 86400
        at = read_at
        for place in sorted(places):
            args: list[str | float] = [warning.alert_id, at, warning.model_dump_json(), self.size, ttl]
            await self._keep(keys=self._keys(place), args=args)

    async def recent(self, place: str) -> list[CounterWarning]:
        """The place's recent warnings, newest first (as first read)."""
        docs, order = self._keys(place)
        ids = cast(list[bytes], await self.redis.zrevrange(order, 0, -1))  # without scores: the members only
        found = await self.redis.hmget(docs, ids) if ids else []
        return [CounterWarning.model_validate_json(doc) for doc in found if doc]

    async def find(self, place: str, alert_id: str) -> CounterWarning | None:
        doc = await self.redis.hget(self._keys(place)[0], alert_id)
        return CounterWarning.model_validate_json(doc) if doc else None


async def deliver(hub: WarningHub, recent: RecentWarnings, alert: Alert) -> int:
    """Keep the alert among its places' recent warnings, then push it to this process's pages: a page that
    acts on a pushed warning finds it kept. Redis away, the warning is still pushed (a teller must see it
    now) and logged; marking it waits for Redis. Returns how many pages got it."""
    warning = CounterWarning.of(alert)  # its reasons said once, for Redis and the pages alike
    try:
        await recent.add(warning, hub.places(alert), time.time())
    except RedisError as error:
        log.warning("recent warnings not kept (%s): pushed only", type(error).__name__)
    return hub.publish(warning)


async def consume_alerts(hub: WarningHub, recent: RecentWarnings, bootstrap: str, ready: asyncio.Event) -> None:
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
                        await _deliver(hub, recent, record.value)
        except KafkaError as exc:
            log.warning("alerts consumer: %s; reconnecting in %.0f s", exc, RECONNECT_SECONDS)
            await asyncio.sleep(RECONNECT_SECONDS)
        finally:
            await consumer.stop()


async def _deliver(hub: WarningHub, recent: RecentWarnings, raw: bytes | None) -> None:
    try:
        alert = Alert.model_validate_json(raw or b"")
    except ValidationError as exc:
        log.warning("alerts topic: skipped a record that is not an alert (%d errors)", exc.error_count())
        return
    await deliver(hub, recent, alert)


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
    recent = await request.app.state.recent_warnings.recent(place)
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
    warning = await request.app.state.recent_warnings.find(place, alert_id)
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
