"""The Faust app: one agent per input topic, alerts and dead-letter topics, /metrics.

Run it with ``antifraud worker`` or ``faust -A streams.app worker``. Each agent
takes records in batches and hands them to :func:`streams.batch.process_batch`,
which decides the order of side effects; Faust commits a batch's offsets only
after that returns (``take_events`` acks the events once the body is done).
"""

import logging
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis

from antifraud.config import Settings
from antifraud.outbox import OutboxRelay
from antifraud.events.models import EVENT_MODELS
from antifraud.thresholds import load_thresholds
from streams import topics
from streams.batch import Record, process_batch
from streams.stages import build_stages

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

STAGES = build_stages(Redis.from_url(settings.redis_url), thresholds)
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


async def _send_acked(topic: str, key: bytes | None, value: bytes) -> None:
    await (await _raw_topic(topic).send(key=key, value=value))


outbox_relay = OutboxRelay(Redis.from_url(settings.redis_url), _send_acked)


@app.timer(interval=0.5)
async def relay_outbox() -> None:
    """Publish the topic records that human actions queued with their state change."""
    while await outbox_relay.run_once():
        pass


@app.page("/metrics")
async def metrics_page(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
    # aiohttp refuses a charset inside content_type; the exposition format is UTF-8 anyway.
    return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split("; charset")[0])
