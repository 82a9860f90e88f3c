"""The worker's input loop: the input topics read in batches with aiokafka, merged by event time, run
through the engine (stages, pipeline, checkpoint) one batch at a time.

Faust is the application around it (``streams/app.py``: timers, the alerts agent, ``/metrics``); the
input records do not go through Faust's per-record machinery, which cost more than all the detectors
together (``../shared/STACK-NOTES.md``). Per round:

1. Fetch what the broker has for the owned partitions (``getmany``); decode each record (a bad one,
   an oversized one or one on a partition its key does not belong to becomes a dead letter in place).
2. Push the records into the merger (``streams/merge.py``); note which partitions have caught up.
3. The bound: the merger's (every record older than it is here), capped by the other workers' progress
   (a worker reads facts and timers other workers write only once they have passed the time those are
   due: their watermark plus the cross-entity delay, ``streams/pipeline.py``). When all owned
   partitions are idle, time moves to the newest event time processed anywhere plus the delay, so the
   timers due by then run (as ``antifraud detect`` does at the end of its file). Never past the wall
   clock: a producer whose clock runs ahead (up to what ``decode_record`` lets
   through) cannot move time on, and release holds, before their time has come.
4. Take the records older than the bound, in event-time order, and process them with the timers due
   before it; the checkpoint produces, writes state and offsets, and commits (``streams/checkpoint.py``).

Partitions are assigned by the consumer group (range assignor: partition n of every input topic goes
to one worker, so an entity's partitions of topics keyed alike stay together). On assignment the
worker claims the partitions in Redis and resumes from the offsets Redis holds, which were written
with the state they lead to; a batch in flight while a partition moves is refused by the checkpoint
(:class:`~streams.checkpoint.Fenced`) and dropped, and its new owner runs it.
"""

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from enum import Enum
from typing import NoReturn

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord
from aiokafka import TopicPartition as KafkaPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.structs import OffsetAndMetadata
from redis.asyncio.client import PubSub

from antifraud import metrics
from antifraud.config import Settings
from antifraud.events.codec import InvalidEvent, decode
from antifraud.events.models import EVENT_MODELS
from antifraud.events.types import EARLIEST_EVENT_TIME
from antifraud.metrics import TimedRedis
from antifraud.state.keys import STREAM_WAKE
from antifraud.thresholds import Thresholds
from streams import topics
from streams.checkpoint import Fenced, Headers, until_through
from streams.engine import Engine
from streams.merge import Merger, TopicPartition
from streams.pipeline import is_outage
from streams.progress import Partitioning
from streams.records import Input, OutRecord, Pending, Record, Rejected
from streams.runtime import tune_gc

log = logging.getLogger(__name__)

KIND_OF_TOPIC = {topic: kind for kind, topic in topics.INPUT_TOPICS.items()}
POLL_MS = 100
"""How long a fetch waits for records when none are there."""
PAUSE_AFTER_BATCHES = 4
"""A partition with this many batches' worth of records waiting is not fetched until half is taken."""
MAX_ALERT_BYTES = 1 << 20
"""Room for the largest alert or stage record beside a dead letter in one produce request."""
BATCH_LABEL = "inputs"
"""The ``topic`` label of the loop's batch metrics (a batch spans every input topic)."""
TOPIC_CHECK_SECONDS = 5.0
"""How often the loop asks the broker whether every input topic still exists."""
SHORT_LOG_SECONDS = 10.0
"""How long a partition's high watermark must stay below what this worker has read before that counts as
lost records. A broker just restarted may report a low watermark for a fetch or two (Tansu does, see
STACK-NOTES) while it still has every record; a log that really lost records stays short."""


class BrokerLost(RuntimeError):
    """The broker no longer has what this worker has read: an input topic is gone, or a partition's log
    ends before records already processed. A broker that restarted without its data looks like this;
    guessing where to go on would skip or repeat records, so the worker stops instead."""


class ShortLogs:
    """Which partitions' logs have ended before what this worker has read of them for
    :data:`SHORT_LOG_SECONDS` on end."""

    def __init__(self) -> None:
        self._since: dict[TopicPartition, float] = {}

    def lost(self, tp: TopicPartition, highwater: int, read_to: int, now: float) -> bool:
        """Whether ``tp``, whose log ends at ``highwater`` as of ``now`` (monotonic) while this worker has
        read up to ``read_to``, has been short long enough to count as lost records."""
        if highwater >= read_to:
            self._since.pop(tp, None)
            return False
        return now - self._since.setdefault(tp, now) >= SHORT_LOG_SECONDS

    def forget(self, tp: TopicPartition) -> None:
        self._since.pop(tp, None)


class Round(Enum):
    """What a round did, which says how the next one fetches."""

    WORKED = "worked"
    """A batch ran: fetch what is there and go on."""
    HELD_BACK = "held back"
    """Waiting on another worker: wait for a checkpoint's wake-up, then fetch what is there."""
    IDLE = "idle"
    """Nothing to do: wait for records (up to :data:`POLL_MS`)."""


class KafkaSink:
    """A batch's records to the broker; returns once every one is acknowledged (acks=all)."""

    producer: AIOKafkaProducer

    async def produce(self, records: Sequence[tuple[OutRecord, Headers]]) -> None:
        sent = [
            await self.producer.send(r.topic, r.value, key=r.key, headers=headers or None) for r, headers in records
        ]
        await asyncio.gather(*sent)


def decode_record(
    message: ConsumerRecord, partitioning: Partitioning, max_bytes: int, after: float, latest: float
) -> Pending:
    """A fetched record as an :class:`Input`, or a :class:`Rejected` with why: empty, too big, not an
    event of its topic, or on a partition its entity's key does not map to (another worker may own that
    entity: processing it here would give the entity two writers). ``after``: the event time of the
    record before it in its partition (where a rejected one sits in the merge); ``latest``: the latest
    event time accepted (the wall clock plus what a producer's clock may be ahead)."""
    record = Record(message.topic, message.partition, message.offset, message.key, message.value)
    size = len(message.value or b"")
    if size > max_bytes:
        return Rejected(after, record, InvalidEvent("oversized", f"{size} bytes, over the limit of {max_bytes}"))
    try:
        event = decode(EVENT_MODELS[KIND_OF_TOPIC[message.topic]], message.value)
    except InvalidEvent as error:
        return Rejected(after, record, error)
    if not EARLIEST_EVENT_TIME <= event.event_time or event.event_time.timestamp() > latest:
        return Rejected(
            after,
            record,
            InvalidEvent(
                "event_time_out_of_range",
                f"event_time is before {EARLIEST_EVENT_TIME.date()} or further ahead of the "
                "wall clock than [holds] max_event_time_ahead_minutes allows",
            ),
        )
    if partitioning.of(message.topic, event.partition_key()) != (message.topic, message.partition):
        return Rejected(
            after,
            record,
            InvalidEvent(
                "wrong_partition",
                f"the record's {event.key_field} belongs to another partition of its topic "
                "(producers key records by it, streams/topics.py)",
            ),
        )
    return Input.of(event, record)


class InputLoop(ConsumerRebalanceListener):
    """Runs until cancelled; :meth:`run` is the worker's input path."""

    def __init__(self, settings: Settings, thresholds: Thresholds) -> None:
        self.settings = settings
        self.thresholds = thresholds
        self.delay = thresholds.stream.cross_entity_delay_seconds
        self.partitioning = Partitioning({topic: settings.partitions for topic in topics.INPUT_TOPICS.values()})
        self.merger = Merger(settings.idle_s)
        self.lock = asyncio.Lock()
        """Held while a batch runs and while partitions move, so a batch never sees its partitions change."""
        self.redis = TimedRedis.from_url(settings.redis_url)
        self.sink = KafkaSink()
        self.engine = Engine(
            self.redis,
            thresholds,
            self.sink,
            self.partitioning,
            dead_letter_max_bytes=settings.dead_letter_max_bytes,
            commit_offsets=self._commit,
        )
        self.consumer: AIOKafkaConsumer
        """Made in :meth:`run` (aiokafka clients belong to the running event loop)."""
        self._next: dict[TopicPartition, int] = {}
        """Per owned partition, the offset after the last record fetched."""
        self._to_seek: set[TopicPartition] = set()
        """Partitions to be read from ``_next`` on: newly assigned, or rewound. The seek is made by the loop
        between fetches, and what the fetch before it returned of them is dropped: aiokafka may hand out
        records it fetched from where it had positioned a partition itself (they would be read twice, the
        second time late)."""
        self._published = -math.inf
        """The last watermark :meth:`_publish_low` published."""
        self._after: dict[TopicPartition, float] = {}
        """Per owned partition, the event time of the last valid record fetched."""
        self._short = ShortLogs()

    # -- partitions moving ------------------------------------------------------------------------

    async def on_partitions_revoked(self, revoked: Sequence[KafkaPartition]) -> None:
        async with self.lock:
            gone = [(tp.topic, tp.partition) for tp in revoked]
            self.merger.revoke(gone)
            self.engine.release(gone)
            for tp in gone:
                self._next.pop(tp, None)
                self._after.pop(tp, None)
                self._short.forget(tp)
                self._to_seek.discard(tp)

    async def on_partitions_assigned(self, assigned: Sequence[KafkaPartition]) -> None:
        async with self.lock:
            mine = [(tp.topic, tp.partition) for tp in assigned]
            resume = await self.engine.claim(mine)
            self._resume(mine, resume)
            log.info("owning %d input partitions now", len(self.engine.owned))

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        await self.consumer.commit({KafkaPartition(t, p): OffsetAndMetadata(o, "") for (t, p), o in offsets.items()})

    # -- the loop ---------------------------------------------------------------------------------

    async def run(self) -> None:
        tune_gc()
        settings = self.settings
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            acks="all",
            linger_ms=5,
            max_request_size=settings.dead_letter_max_bytes + MAX_ALERT_BYTES,
        )
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=f"{settings.app_id}-inputs",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            partition_assignment_strategy=(RangePartitionAssignor,),
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
            rebalance_timeout_ms=3000,
            max_partition_fetch_bytes=max(2 * settings.max_record_bytes, 1 << 20),
        )
        self.sink.producer = producer
        wake = self.redis.pubsub()
        await until_through(lambda: wake.subscribe(STREAM_WAKE.key()), "progress")
        await producer.start()
        await self.consumer.start()
        self.consumer.subscribe(list(topics.INPUT_TOPICS.values()), listener=self)
        state = Round.IDLE
        next_check = time.monotonic() + TOPIC_CHECK_SECONDS
        try:
            while True:
                if state is Round.HELD_BACK:  # until another worker's checkpoint moves its watermark
                    await self._woken(wake)
                fetched = await self.consumer.getmany(
                    timeout_ms=POLL_MS if state is Round.IDLE else 0, max_records=self.settings.batch_size
                )
                if time.monotonic() >= next_check:
                    await self._check_topics()
                    next_check = time.monotonic() + TOPIC_CHECK_SECONDS
                async with self.lock:
                    self._push(fetched)
                    state = await self._round()
        finally:
            await self.consumer.stop()
            await producer.stop()
            await wake.aclose()
            await self.redis.aclose()

    @staticmethod
    async def _woken(wake: PubSub) -> None:
        try:
            if await wake.get_message(ignore_subscribe_messages=True, timeout=POLL_MS / 1000):
                while await wake.get_message(ignore_subscribe_messages=True, timeout=0):
                    pass
        except Exception as error:
            if not is_outage(error):
                raise
            await asyncio.sleep(POLL_MS / 1000)  # Redis away: the round's own calls wait and retry

    def _resume(self, partitions: Sequence[TopicPartition], offsets: dict[TopicPartition, int]) -> None:
        """Read ``partitions`` again from ``offsets`` (absent: from the start), forgetting what was fetched."""
        self.merger.revoke(partitions)
        self.merger.assign(partitions, time.monotonic())
        for tp in partitions:
            self._next[tp] = offsets.get(tp, 0)  # below the log's start: auto_offset_reset="earliest"
            self._after.pop(tp, None)
            self._short.forget(tp)
            self._to_seek.add(tp)

    async def _check_topics(self) -> None:
        missing = set(topics.INPUT_TOPICS.values()) - await self.consumer.topics()
        if missing:
            raise BrokerLost(f"the broker has no input topic {', '.join(sorted(missing))} any more")

    def _lost(self, tp: TopicPartition, messages: Sequence[ConsumerRecord]) -> None:
        """Stop if the broker hands out ``tp``'s records again from before what this worker has read: its
        log was reset (aiokafka moves a fetch past the log's end back to its start)."""
        if messages and messages[0].offset < self._next[tp]:
            self._stop_lost(tp, messages[0].offset)

    def _stop_lost(self, tp: TopicPartition, offset: int) -> NoReturn:
        raise BrokerLost(
            f"{tp[0]}[{tp[1]}] ends at offset {offset} on the broker, before offset {self._next[tp]} this worker "
            "had read up to: the broker lost records"
        )

    def _push(self, fetched: dict[KafkaPartition, list[ConsumerRecord]]) -> None:
        for tp in self._to_seek:
            fetched.pop(KafkaPartition(*tp), None)
            self.consumer.seek(KafkaPartition(*tp), self._next[tp])
        self._to_seek.clear()
        limit = self.settings.max_record_bytes
        latest = time.time() + self.thresholds.holds.max_event_time_ahead_minutes * 60
        now = time.monotonic()
        safe = self.merger.newest  # delivered by earlier fetches than this round's
        for ktp, messages in fetched.items():
            tp = (ktp.topic, ktp.partition)
            if tp not in self._next:
                continue  # fetched before the partition was revoked
            self._lost(tp, messages)
            after = self._after.get(tp, -math.inf)
            pending: list[Pending] = []
            for message in messages:
                item = decode_record(message, self.partitioning, limit, after, latest)
                if isinstance(item, Input):
                    after = max(after, item.at)
                pending.append(item)
            self._after[tp] = after
            self._next[tp] = messages[-1].offset + 1 if messages else self._next[tp]
            self.merger.push(tp, pending, now)
        paused = self.consumer.paused()
        for ktp in self.consumer.assignment():
            tp = (ktp.topic, ktp.partition)
            highwater = self.consumer.highwater(ktp)  # as of its last fetch, stale while paused
            if tp in self._next and highwater is not None and self._short.lost(tp, highwater, self._next[tp], now):
                self._stop_lost(tp, highwater)  # an empty log after a reset shows only this way
            caught_up = ktp not in paused and highwater is not None and self._next.get(tp, 0) >= highwater
            self.merger.polled(tp, caught_up, safe)

    async def _round(self) -> "Round":
        """Steps 3 and 4 of the module docstring, once."""
        if not self.engine.owned:
            return Round.IDLE
        now = time.monotonic()
        bound = self.merger.bound(now)
        if bound == math.inf:
            newest = max(self.merger.newest, await until_through(self.engine.progress.newest, "progress"))
            if newest == -math.inf:
                return Round.IDLE
            bound = math.nextafter(newest + self.delay, math.inf)
        bound = min(bound, time.time())  # live, time never runs ahead of the wall clock
        barrier = await self._barrier()
        idle = Round.IDLE
        if barrier < bound:
            await self._publish_low(now)
            bound, idle = barrier, Round.HELD_BACK
        if bound <= self.engine.since and not self.merger.waiting():
            return idle
        taken = self.merger.take(bound, self.settings.batch_size, now)
        if not taken.items and taken.bound <= self.engine.since:
            return idle
        started = time.perf_counter()
        try:
            await self.engine.process(taken.items, taken.bound)
        except Fenced:
            log.warning("a partition moved to another worker while its batch ran; reading the rest again")
            await self._rewind()
            return Round.WORKED
        metrics.BATCH_SECONDS.labels(topic=BATCH_LABEL).observe(time.perf_counter() - started)
        self._flow()
        return Round.WORKED

    async def _rewind(self) -> None:
        """After a refused checkpoint: the partitions still owned are read again from the offsets Redis holds
        (the batch's records are gone from the merger); the moved ones leave at the coming rebalance."""
        owned = sorted(self.engine.owned)
        self._resume(owned, await until_through(lambda: self.engine.progress.offsets(owned), "progress"))

    def _flow(self) -> None:
        """Pause fetching a partition far ahead of the others (its records wait in memory for the bound)."""
        most = PAUSE_AFTER_BATCHES * self.settings.batch_size
        for ktp in self.consumer.assignment():
            waiting = self.merger.size((ktp.topic, ktp.partition))
            if waiting > most:
                self.consumer.pause(ktp)
            elif waiting <= most // 2:
                self.consumer.resume(ktp)

    async def _publish_low(self, now: float) -> None:
        """Held back by the others: tell them how far this worker has got without a batch (the oldest
        record or timer it has still to process), so that workers waiting on one another move on."""
        owned = sorted(self.engine.owned)
        timers = await until_through(lambda: self.engine.progress.earliest_timer(owned), "progress")
        low = min(self.merger.low(now), timers)
        if low > max(self.engine.since, self._published) and low != math.inf:
            await until_through(lambda: self.engine.progress.publish(owned, low), "progress")
            self._published = low

    async def _barrier(self) -> float:
        """How far the other workers' progress lets this one go: the least watermark of the partitions it
        does not own, plus the delay (inf when it owns them all)."""
        others = self.partitioning.all() - self.engine.owned
        if not others:
            return math.inf
        marks = await until_through(self.engine.progress.watermarks, "progress")
        return min(marks.get(tp, -math.inf) for tp in others) + self.delay
