"""Consumer lag of the worker's group, per topic and partition, read from the broker itself.

The figures come from the broker, not from the worker's own fetch position, so a
stuck or dead consumer shows as growing lag instead of a frozen figure: the
committed offset of the group (OffsetFetch, without joining the group) against the
partition's end offset (ListOffsets). Every worker replica reports the same group
figures; dashboards take the ``max`` over instances.

Apache Kafka reports the true end offset (the offset the next record will get).
Tansu, the embedded broker of the demo and the tests, reports the first offset of
the last produced batch plus one, so its end offset is low by up to one producer
batch and a group that has read everything can have committed *past* it. The lag
is therefore clamped at 0, and on Tansu it reads low by up to one batch; on Kafka
it is exact up to the refresh interval.
"""

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition


@dataclass(frozen=True)
class PartitionOffsets:
    """What the broker says about one partition: its first and end offsets and the group's commit."""

    topic: str
    partition: int
    start: int
    end: int
    committed: int | None
    """``None`` when the group never committed here: it resumes from ``start`` (offset reset earliest)."""

    @property
    def lag(self) -> int:
        """Records the group has yet to commit; never negative (see the module docstring on Tansu)."""
        resume = self.committed if self.committed is not None else self.start
        return max(0, self.end - resume)


class LagReader:
    """Reads a group's committed offsets and the end offsets of its topics; one client, reused."""

    def __init__(self, bootstrap: str, group: str, topics: tuple[str, ...]) -> None:
        self.bootstrap = bootstrap
        self.group = group
        self.topics = topics
        self._client: AIOKafkaConsumer | None = None

    async def _started(self) -> AIOKafkaConsumer:
        """The client, made on first use: aiokafka binds it to the running event loop."""
        if self._client is None:
            # A consumer with the group's id but no subscription never joins the group: it
            # only answers ``committed`` (OffsetFetch), so the worker's group is not disturbed.
            client = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=self.group, enable_auto_commit=False)
            await client.start()
            self._client = client
        return self._client

    async def read(self) -> list[PartitionOffsets]:
        client = await self._started()
        known = await client.topics()
        partitions = [
            TopicPartition(topic, p)
            for topic in self.topics
            if topic in known
            for p in sorted(client.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return []
        starts, ends = await asyncio.gather(client.beginning_offsets(partitions), client.end_offsets(partitions))
        committed = await asyncio.gather(*(client.committed(tp) for tp in partitions))
        return [
            PartitionOffsets(tp.topic, tp.partition, starts[tp], ends[tp], done)
            for tp, done in zip(partitions, committed)
        ]

    async def close(self) -> None:
        if self._client is not None:
            await self._client.stop()
            self._client = None
