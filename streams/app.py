"""The Faust app: the input loop as a task, the alerts agent, the timers, /metrics.

Run it with ``antifraud worker [--role stream|jobs|all]`` or ``faust -A streams.app worker``. The input
topics are consumed by :class:`streams.loop.InputLoop` (batches straight from aiokafka, merged by event
time, one checkpoint per batch); Faust runs it as a task beside what an application needs around it: the
agent that folds alerts into cases, the timers (the outbox relay, the audit inbox, deliveries, case
follow-ups, the wall-clock hold release, the sweeps, the gauges) and the ``/metrics`` page.

A worker's role (``ANTIFRAUD_WORKER_ROLE``) says which of them it runs: ``stream`` the input loop and the
alerts agent, ``jobs`` the timers, ``all`` (the default, as the demo runs) both. Jobs then never take the
stream's event loop: a slow webhook or a long sweep does not hold back a batch. A jobs worker is a Faust
app of its own (``{app_id}-jobs``), outside the stream workers' consumer group. Every job is safe to run
in several jobs workers at once (leased queues, one archive run at a time, idempotent moves).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any, get_args

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from antifraud import metrics
from antifraud.alerts.models import Alert
from antifraud.audit.archive import ArchiveRefused, archive
from antifraud.audit.models import Anchor
from antifraud.audit.service import AuditLog
from antifraud.case.followups import FollowUpRunner, performers
from antifraud.case.models import SCENARIO_BY_DETECTOR
from antifraud.case.service import CaseService
from antifraud.clock import utcnow
from antifraud.config import Settings, audit_keys
from antifraud.credit.service import CreditBlacklist
from antifraud.events.codec import InvalidEvent, decode
from antifraud.forwarding.models import Target
from antifraud.forwarding.service import DeliveryLoop
from antifraud.holds.models import IllegalTransition
from antifraud.holds.policy import WARNING_DETECTOR
from antifraud.holds.service import HoldLedger, UnknownHold
from antifraud.lag import LagReader
from antifraud.metrics import TimedRedis, export_known_series
from antifraud.outbox import OutboxRelay
from streams import gauges, topics
from streams.checkpoint import dead_letter, until_through
from streams.loop import BrokerLost, InputLoop
from streams.records import Record, Rejected

log = logging.getLogger(__name__)

settings = Settings.from_env()
thresholds = settings.thresholds()
RUNS_STREAM = settings.worker_role in ("stream", "all")
RUNS_JOBS = settings.worker_role in ("jobs", "all")

app = faust.App(
    settings.app_id if RUNS_STREAM else f"{settings.app_id}-jobs",
    broker=f"kafka://{settings.kafka_bootstrap}",
    store="memory://",
    datadir=str(settings.data_dir),
    web_port=settings.web_port,
    web_host=settings.web_host,
    topic_partitions=settings.partitions,
    topic_replication_factor=1,
    consumer_auto_offset_reset="earliest",
    producer_acks=-1,
    # Tansu holds a JoinGroup for the whole rebalance timeout waiting for other
    # members; short timeouts keep start-up and failover after a crash quick.
    broker_rebalance_timeout=3.0,
    broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0,
)


def _raw_topic(name: str) -> faust.TopicT:
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


alerts_topic = _raw_topic(topics.ALERTS)
dead_letter_topic = _raw_topic(topics.DEAD_LETTERS)
export_known_series(
    list(topics.INPUT_TOPICS.values()), [*SCENARIO_BY_DETECTOR, WARNING_DETECTOR], get_args(Target), topics.ALERTS
)

inputs = InputLoop(settings, thresholds)
redis = TimedRedis.from_url(settings.redis_url)
"""One client (a connection pool) for everything outside the input loop."""
chain_keys = audit_keys(settings)
audit = AuditLog(redis, chain_keys)
holds = HoldLedger.configured(redis, thresholds.holds)
cases = CaseService(redis, audit, holds=thresholds.holds)
deliveries = DeliveryLoop(cases.deliveries, settings.forwarding, on_delivered=cases.delivered)
case_followups = FollowUpRunner(cases.followups, cases, performers(redis, audit, thresholds))
credit_blacklist = CreditBlacklist(redis, audit, thresholds.credit_blacklist)
lag_reader = LagReader(settings.kafka_bootstrap, f"{settings.app_id}-inputs", tuple(topics.INPUT_TOPICS.values()))


async def _send_acked(topic: str, key: bytes | None, value: bytes) -> None:
    await (await _raw_topic(topic).send(key=key, value=value))


outbox_relay = OutboxRelay(redis, _send_acked)


async def consume_inputs() -> None:
    """The input topics, in event-time order (``streams/loop.py``); the worker stops if the loop does.
    When the broker has lost what the worker read, the worker says so, shows it on ``/metrics`` for
    ``ANTIFRAUD_STOP_GRACE_SECONDS`` and exits non-zero: restarting it would not bring the records back."""
    try:
        await inputs.run()
    except asyncio.CancelledError:
        raise
    except BrokerLost as error:
        log.critical("the input loop stopped: %s", error)
        metrics.INPUT_STOPPED.labels(reason="broker_lost").set(1)
        await asyncio.sleep(settings.stop_grace_s)
        await app.crash(error)
    except BaseException as error:
        log.critical("the input loop stopped: %s", type(error).__name__)
        await app.crash(error)


if RUNS_STREAM:
    app.task(consume_inputs)


def periodic(interval: float, what: str) -> Callable[[Callable[[], Awaitable[Any]]], Any]:
    """A job: a Faust timer (in a worker that runs jobs) that logs a failed round instead of raising: a
    timer that raised would stop the worker, and every round here is safe to run again at the next tick."""

    def register(round_: Callable[[], Awaitable[Any]]) -> Any:
        if not RUNS_JOBS:
            return round_

        async def guarded() -> None:
            try:
                await round_()
            except Exception as error:  # noqa: BLE001 - retried at the next tick
                log.warning("%s failed, retrying at the next tick: %s", what, type(error).__name__)

        guarded.__name__ = round_.__name__
        guarded.__doc__ = round_.__doc__
        return app.timer(interval=interval)(guarded)

    return register


@periodic(settings.hold_tick_s, "hold tick")
async def release_by_wall_clock() -> None:
    """With ANTIFRAUD_HOLD_CLOCK=wall, release the holds due by the wall clock (less a lag) that the
    stream has not released yet (a quiet night still releases on time); each is moved as a person's
    action is (``HoldLedger.move``: state, audit and the topic record in one transaction), so the
    stream's own release at its event time then finds it released and does nothing."""
    if settings.hold_clock != "wall":
        return
    now = utcnow() - timedelta(seconds=settings.hold_clock_lag_s)
    for hold in await holds.held_due(now, settings.hold_release_batch):
        try:
            await holds.move(
                audit,
                hold.hold_id,
                "released",
                actor="system",
                by="system:wall-clock",
                reason="hold period elapsed",
                at=hold.due_at,
            )
        except (IllegalTransition, UnknownHold):
            continue  # the stream released it meanwhile, or it expired


@periodic(0.5, "outbox relay")
async def relay_outbox() -> None:
    """Publish the topic records that human actions queued with their state change (``antifraud/outbox.py``)."""
    while await outbox_relay.run_once():
        pass


@periodic(0.5, "audit seal")
async def seal_audit() -> None:
    """Chain the audit records queued and not chained yet: the checkpoint's (automatic hold moves), and any a
    writer queued but did not get to chain (``antifraud/audit/service.py``)."""
    await audit.seal()


_anchored = [-1]
"""The seq of the last anchor this worker published."""


@periodic(settings.audit_anchor_s, "audit anchor")
async def anchor_audit() -> None:
    """Publish the audit chain's head where Redis writers cannot rewrite it (``antifraud.audit-anchors``):
    ``antifraud audit verify --anchors`` then catches a chain rewritten even by someone with the key."""
    seq, digest = await audit.head()
    if seq > _anchored[0]:
        anchor = Anchor(seq=seq, hash=digest, at=datetime.now(timezone.utc))
        await _send_acked(topics.AUDIT_ANCHORS, b"audit", anchor.model_dump_json().encode())
        _anchored[0] = seq


@periodic(0.5, "delivery round")
async def deliver_packages() -> None:
    """Webhook deliveries of forwarded cases, with retries (``antifraud/forwarding/service.py``)."""
    while await deliveries.run_once():
        pass


@periodic(1.0, "case follow-ups")
async def follow_up_cases() -> None:
    """What confirmed cases set in motion: block list, credit blacklist, money trail
    (``antifraud/case/followups.py``); a failing one is retried after a backoff, one that cannot pass
    waits for an analyst."""
    while await case_followups.run_once():
        pass


@periodic(settings.blacklist_sweep_s, "blacklist expiry sweep")
async def expire_listings() -> None:
    """Expire credit blacklist listings whose period ran out, so their accounts leave ``blacklist:accounts``
    (the transfer-risk detector reads it) even when nobody looks the listing up."""
    await credit_blacklist.expire_due(utcnow(), settings.blacklist_sweep_batch)
    await credit_blacklist.purge_ended(utcnow(), settings.blacklist_sweep_batch)


@periodic(settings.audit_archive_s, "audit archive")
async def archive_audit() -> None:
    """With ``ANTIFRAUD_AUDIT_ARCHIVE_DIR``, move the audit records older than ``ANTIFRAUD_AUDIT_RETAIN_DAYS``
    out of Redis into segments there (``antifraud/audit/archive.py``: one run at a time across workers, a
    crashed run finished by the next), so Redis keeps a bounded, still verifiable, live part."""
    if settings.audit_archive_dir is None:
        return
    try:
        result = await archive(
            redis, chain_keys, utcnow() - timedelta(days=settings.audit_retain_days), settings.audit_archive_dir
        )
    except ArchiveRefused as refused:
        log.warning("audit archive refused: %s", refused)
        return
    if result.written is not None:
        log.info("archived audit records %d..%d to %s", result.written.first, result.written.last, result.written.path)


@periodic(settings.audit_archive_s, "case expiry")
async def expire_cases() -> None:
    """Expire the cases closed or dismissed more than ``ANTIFRAUD_CASE_RETAIN_DAYS`` ago (their audit stays)."""
    while await cases.expire_ended(utcnow() - timedelta(days=settings.case_retain_days)):
        pass


@periodic(gauges.INTERVAL_S, "gauges")
async def refresh_gauges() -> None:
    """Consumer lag, holds and cases: state that batches do not report (``streams/gauges.py``)."""
    await gauges.refresh(
        {
            "lag": lambda: gauges.refresh_lag(lag_reader),
            "holds": lambda: gauges.refresh_holds(holds, settings.hold_clock, settings.hold_clock_lag_s),
            "cases": lambda: gauges.refresh_cases(cases),
        }
    )


def _alerts_of(batch: list[faust.EventT]) -> tuple[list[Alert], list[Rejected]]:
    alerts, rejected = [], []
    for event in batch:
        message = event.message
        record = Record(message.topic, message.partition, message.offset, message.key, message.value)
        try:
            alerts.append(decode(Alert, message.value))
        except InvalidEvent as error:
            rejected.append(Rejected(0.0, record, error))
    return alerts, rejected


async def _dead_letter(rejected: list[Rejected]) -> None:
    sent = []
    for item in rejected:
        out, headers = dead_letter(item, settings.dead_letter_max_bytes)
        sent.append(await dead_letter_topic.send(key=out.key, value=out.value, headers=headers))
    await asyncio.gather(*sent)
    for item in rejected:
        metrics.DEAD_LETTERS.labels(topic=item.record.topic, reason=item.error.kind).inc()


async def act_on_alerts(stream: faust.StreamT[bytes]) -> None:
    """The worker's alerts grouped into cases per entity and scenario (``antifraud/case/``). Per batch:

    1. decode the records once; an unreadable one is kept with why;
    2. fold the alerts into their cases (one audited transaction per case; a replayed alert folds once);
    3. produce the dead letters (reason, original key and bytes) and wait for the broker's acks;
    4. return; Faust then commits the offsets. A crash before 4 replays the batch: its alerts are
       folded once, a dead letter may be produced twice. While Redis or the broker is down, steps 2
       and 3 are retried (``streams.checkpoint.until_through``).

    (What alerts mean for holds, a flagged payee's held payment, is the stream's own work: the stage
    that raises an alert tells the payee's side, ``streams/stages.py``.)
    """
    async for batch in stream.take_events(settings.batch_size, within=settings.batch_within_s):  # type: ignore[attr-defined]  # Stream has it; faust's StreamT protocol does not say so
        alerts, rejected = _alerts_of(batch)
        await until_through(partial(cases.fold_alerts, alerts), topics.ALERTS)
        if rejected:
            await until_through(partial(_dead_letter, rejected), topics.ALERTS)


if RUNS_STREAM:
    app.agent(alerts_topic, name="antifraud.alerts")(act_on_alerts)


@app.on_before_shutdown.connect  # type: ignore[arg-type]  # faust's signal stubs want a positional sender
async def close_clients(app: faust.App, **kwargs: Any) -> None:
    await lag_reader.close()
    await deliveries.aclose()


@app.page("/metrics")
async def metrics_page(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
    # aiohttp refuses a charset inside content_type; the exposition format is UTF-8 anyway.
    return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split("; charset")[0])
