"""The Faust app: one agent per input topic, alerts and dead-letter topics, /metrics.

Run it with ``antifraud worker`` or ``faust -A streams.app worker``. Each agent
takes records in batches and hands them to :func:`streams.batch.process_batch`,
which decides the order of side effects; Faust commits a batch's offsets only
after that returns (``take_events`` acks the events once the body is done).
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Any, get_args

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from antifraud.alerts.models import Alert
from antifraud.audit.service import AuditLog
from antifraud.case.models import SCENARIO_BY_DETECTOR
from antifraud.case.followups import FollowUpRunner, performers
from antifraud.case.service import CaseService
from antifraud.clock import utcnow
from antifraud.config import Settings
from antifraud.credit.service import CreditBlacklist
from antifraud.forwarding.models import Target
from antifraud.forwarding.service import DeliveryLoop
from antifraud.holds.policy import WARNING_DETECTOR
from antifraud.holds.service import HoldLedger
from antifraud.lag import LagReader
from antifraud.metrics import TimedRedis, export_known_series
from antifraud.outbox import OutboxRelay
from antifraud.events.models import EVENT_MODELS
from antifraud.thresholds import load_thresholds
from streams import gauges, topics
from streams.batch import Record, acked, decode_records, process_batch, send_dead_letters, settle, until_through
from streams.stages import HoldStage, build_stages, flag_payees

log = logging.getLogger(__name__)

settings = Settings.from_env()
thresholds = load_thresholds(settings.thresholds_path)

app = faust.App(
    settings.app_id,
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
extra_topics = {name: _raw_topic(name) for name in (topics.INTERCEPTIONS, topics.VICTIM_WARNINGS, topics.HOLDS)}

STAGES = build_stages(TimedRedis.from_url(settings.redis_url), thresholds)
"""Event kind -> its detector stages; kinds without any are validated and counted."""


def _record(event: faust.EventT) -> Record:
    message = event.message
    return Record(
        topic=message.topic, partition=message.partition, offset=message.offset, key=message.key, value=message.value
    )


def _make_agent(kind: str, topic_name: str) -> None:
    model = EVENT_MODELS[kind]
    stages = STAGES.get(kind, [])

    async def consume(stream: faust.StreamT[Any]) -> None:
        async for batch in stream.take_events(settings.batch_size, within=settings.batch_within_s):
            await process_batch(
                [_record(e) for e in batch],
                model,
                stages,
                alerts_sink=alerts_topic,
                dead_letter_sink=dead_letter_topic,
                extra_sinks=extra_topics,
            )

    consume.__name__ = f"consume_{kind}"
    app.agent(_raw_topic(topic_name), name=f"antifraud.consume.{kind}")(consume)


for _kind, _topic in topics.INPUT_TOPICS.items():
    _make_agent(_kind, _topic)
export_known_series(list(topics.INPUT_TOPICS.values()), [*SCENARIO_BY_DETECTOR, WARNING_DETECTOR], get_args(Target),
                    topics.ALERTS)


redis = TimedRedis.from_url(settings.redis_url)
"""One client (a connection pool) for everything outside the detector stages."""
audit = AuditLog(redis)
holds = HoldLedger.configured(redis, thresholds.holds)
hold_ticker = HoldStage(holds, thresholds.holds, settings.hold_clock)
cases = CaseService(redis, audit, holds=thresholds.holds)
deliveries = DeliveryLoop(cases.deliveries, settings.forwarding, on_delivered=cases.delivered)
case_followups = FollowUpRunner(cases.followups, cases, performers(redis, audit, thresholds))
credit_blacklist = CreditBlacklist(redis, audit, thresholds.credit_blacklist)
lag_reader = LagReader(settings.kafka_bootstrap, settings.app_id, tuple(topics.INPUT_TOPICS.values()))


async def _send_acked(topic: str, key: bytes | None, value: bytes) -> None:
    await (await _raw_topic(topic).send(key=key, value=value))


outbox_relay = OutboxRelay(redis, _send_acked)


def periodic(interval: float, what: str) -> Callable[[Callable[[], Awaitable[Any]]], Any]:
    """A Faust timer that logs a failed round instead of raising: a timer that raised would stop
    the worker, and every round here is safe to run again at the next tick."""

    def register(round_: Callable[[], Awaitable[Any]]) -> Any:
        async def guarded() -> None:
            try:
                await round_()
            except Exception as error:  # noqa: BLE001 - retried at the next tick
                log.warning("%s failed, retrying at the next tick: %r", what, error)

        guarded.__name__ = round_.__name__
        guarded.__doc__ = round_.__doc__
        return app.timer(interval=interval)(guarded)

    return register


@periodic(thresholds.holds.tick_seconds, "hold tick")
async def tick_holds() -> None:
    """Releases by the wall clock (ANTIFRAUD_HOLD_CLOCK=wall) and pending payee warnings between batches,
    produced and acknowledged before the ledger moves, like a batch's (``HoldStage.tick``)."""
    await settle(await hold_ticker.tick(utcnow()), alerts_sink=alerts_topic, extra_sinks=extra_topics)


@periodic(0.5, "outbox relay")
async def relay_outbox() -> None:
    """Publish the topic records that human actions queued with their state change (``antifraud/outbox.py``)."""
    while await outbox_relay.run_once():
        pass


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


@periodic(thresholds.credit_blacklist.sweep_seconds, "blacklist expiry sweep")
async def expire_listings() -> None:
    """Expire credit blacklist listings whose period ran out, so their accounts leave ``blacklist:accounts``
    (the transfer-risk detector reads it) even when nobody looks the listing up."""
    await credit_blacklist.expire_due(utcnow())


@app.timer(interval=gauges.INTERVAL_S)
async def refresh_gauges() -> None:
    """Consumer lag, holds and cases: state that batches do not report (``streams/gauges.py``)."""
    await gauges.refresh({
        "lag": lambda: gauges.refresh_lag(lag_reader),
        "holds": lambda: gauges.refresh_holds(holds, settings.hold_clock, thresholds.holds.wall_clock_lag_seconds),
        "cases": lambda: gauges.refresh_cases(cases),
    })


@app.agent(alerts_topic, name="antifraud.alerts")
async def act_on_alerts(stream: faust.StreamT[bytes]) -> None:
    """What the worker does with its own alerts: the accounts they flag are remembered, so held transfers
    paying them are warned about before release (``antifraud/holds/``), and the alerts are grouped into
    cases per entity and scenario (``antifraud/case/``). Per batch:

    1. decode the records once; an unreadable one is kept with why;
    2. flag the payees (upserts: harmless twice);
    3. fold the alerts into their cases (one audited transaction per case; a replayed alert folds once);
    4. produce the dead letters (reason, original key and bytes) and wait for the broker's acks;
    5. return; Faust then commits the offsets. A crash before 5 replays the batch: its alerts are
       flagged and folded once, a dead letter may be produced twice. While Redis or the broker is
       down, steps 2 to 4 are retried (``streams.batch.until_through``).
    """
    async for batch in stream.take_events(settings.batch_size, within=settings.batch_within_s):
        alerts, rejected = decode_records(Alert, [_record(e) for e in batch])
        await until_through(lambda: flag_payees(holds, alerts), topics.ALERTS)
        await until_through(lambda: cases.fold_alerts(alerts), topics.ALERTS)
        if rejected:
            await until_through(lambda: acked(send_dead_letters(rejected, dead_letter_topic)), topics.ALERTS)


@app.on_before_shutdown.connect
async def close_clients(app: faust.App, **kwargs: Any) -> None:
    await lag_reader.close()
    await deliveries.aclose()


@app.page("/metrics")
async def metrics_page(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
    # aiohttp refuses a charset inside content_type; the exposition format is UTF-8 anyway.
    return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split("; charset")[0])
