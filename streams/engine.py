"""The stages, their pipeline and the checkpoint, over the partitions a worker owns: one batch at a time.

The Kafka loop (``streams/loop.py``) and ``antifraud detect`` (``streams/offline.py``) both hand their
batches to :meth:`Engine.process`; they differ only in where records come from and where the produced
ones go (the :class:`~streams.checkpoint.Sink`), so the worker and the offline run conclude the same.
"""

import math
from collections.abc import Awaitable, Callable, Iterable, Sequence

from redis.asyncio import Redis

from antifraud.thresholds import Thresholds
from streams.checkpoint import Checkpoint, Sink, until_through
from streams.merge import TopicPartition
from streams.pipeline import BatchPipeline, BatchResult, Stage
from streams.progress import Partitioning, Progress
from streams.records import Pending, Timer
from streams.stages import build_stages


class Engine:
    def __init__(
        self,
        redis: Redis,
        thresholds: Thresholds,
        sink: Sink,
        partitioning: Partitioning,
        *,
        dead_letter_max_bytes: int,
        commit_offsets: Callable[[dict[TopicPartition, int]], Awaitable[None]] | None = None,
        stages: Sequence[Stage] | None = None,
    ) -> None:
        self.redis = redis
        self.partitioning = partitioning
        self.progress = Progress(redis)
        self.owned: frozenset[TopicPartition] = frozenset()
        self.pipeline = BatchPipeline(
            stages if stages is not None else build_stages(redis, thresholds),
            thresholds.stream.cross_entity_delay_seconds,
            self._owner,
        )
        self.checkpoint = Checkpoint(
            redis,
            self.progress,
            self.pipeline.stores,
            sink,
            partitioning,
            dead_letter_max_bytes=dead_letter_max_bytes,
            commit_offsets=commit_offsets,
        )
        self.since = -math.inf
        """The bound of the last batch: a record older than it is late."""

    def _owner(self, timer: Timer) -> TopicPartition | None:
        tp = self.partitioning.of(timer.topic, timer.key)
        return tp if tp in self.owned else None

    async def claim(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """Own ``partitions`` from now on (added to those owned); where each resumes (absent: from the start)."""
        partitions = frozenset(partitions)
        resume = await until_through(lambda: self.progress.claim(partitions), "claim")
        self.owned |= partitions
        return resume

    def release(self, partitions: Iterable[TopicPartition]) -> None:
        """No longer own ``partitions``; what is in memory is forgotten (its new owner reads it again)."""
        self.owned -= frozenset(partitions)
        for store in self.pipeline.stores:
            store.forget()

    async def process(self, taken: Sequence[Pending], bound: float) -> BatchResult:
        """Run a batch (its records and its partitions' stored timers due before ``bound``) and commit it."""
        owned = sorted(self.owned)
        timers = await until_through(lambda: self.progress.due(owned, bound), "timers")

        async def run() -> BatchResult:
            self.pipeline.discard()
            return await self.pipeline.run(taken, timers, bound, self.since)

        result = await until_through(run, "batch")
        await self.checkpoint.commit(result, self.owned)
        self.since = bound
        return result
