"""Events through the worker's engine (stages, pipeline, checkpoint) on a real Redis, without a broker."""

import math
from collections.abc import Sequence

from redis.asyncio import Redis

from antifraud.events.codec import encode
from antifraud.events.models import Event
from antifraud.thresholds import load_thresholds
from streams.checkpoint import Headers
from streams.engine import Engine
from streams.offline import file_partitioning
from streams.pipeline import Stage
from streams.records import Input, OutRecord, Record
from streams.topics import INPUT_TOPICS


class ListSink:
    """Keeps what the checkpoint produces."""

    def __init__(self) -> None:
        self.records: list[OutRecord] = []

    async def produce(self, records: Sequence[tuple[OutRecord, Headers]]) -> None:
        self.records += [record for record, _ in records]

    def on(self, topic: str) -> list[bytes]:
        return [r.value for r in self.records if r.topic == topic]


async def run_stream(
    redis: Redis, events: Sequence[Event], *, until: float | None = None, stages: Sequence[Stage] | None = None
) -> ListSink:
    """One batch of ``events`` (in event-time order) up to ``until`` (default: just past the newest event),
    committed as the worker commits it; returns what it produced."""
    sink = ListSink()
    engine = Engine(redis, load_thresholds(), sink, file_partitioning(), dead_letter_max_bytes=1 << 20, stages=stages)
    await engine.claim(engine.partitioning.all())
    offsets = await redis.hgetall("stream:offsets")
    next_offset = {k.decode(): int(v) for k, v in offsets.items()}
    inputs = []
    for event in sorted(events, key=lambda e: (e.event_time, e.event_id)):
        topic = INPUT_TOPICS[event.kind]
        offset = next_offset.get(f"{topic}:0", 0)
        next_offset[f"{topic}:0"] = offset + 1
        inputs.append(Input.of(event, Record(topic, 0, offset, None, encode(event))))
    bound = until if until is not None else math.nextafter(max(i.at for i in inputs), math.inf)
    assert bound > max((i.at for i in inputs), default=-math.inf), "the bound must pass every event"
    await engine.process(inputs, bound)
    return sink
