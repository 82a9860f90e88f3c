"""The input partitions a worker owns, merged into one event-time order (pure: no I/O, no clock of its own).

Each partition keeps its records in offset order. A batch takes records by the smallest head first
(event time, then a fixed tiebreak), as Kafka Streams merges a task's partitions, up to a *bound*:
every record with an event time below the bound must already be here. Partitions are taken to be in
event-time order (producers send events as they happen, ``replay`` sends them sorted), so a partition
holds back the bound at the newest event time it has delivered: an older record can still come only
from a partition whose newest is older. A partition with nothing to deliver would hold the bound back
for ever; once it has caught up with the broker's end offset it holds it back only at what the other
partitions had delivered before that poll (its ``safe`` time): a record produced on it later comes after
those, as producers that send in event-time order send it. When every partition has caught up and
delivered nothing for ``idle_seconds`` (Kafka Streams' ``max.task.idle.ms``), nothing holds the bound
back (``inf``; the loop then lets time move on by the cross-entity delay). A record that arrives older
than what was processed (a producer behind the others) is *late*: it is still processed, in the next
batch, and counted (``antifraud_late_records_total``); only then can timing change a result.
"""

import heapq
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from streams.records import Pending, Rejected, order_key

TopicPartition = tuple[str, int]


@dataclass
class _Queue:
    items: deque[Pending] = field(default_factory=deque)
    newest: float = -math.inf
    """The newest event time delivered (valid records only)."""
    safe: float = -math.inf
    """While caught up: the newest event time other partitions had delivered before it caught up."""
    caught_up: bool = False
    """At the last poll the fetch position had reached the broker's end offset."""
    quiet_since: float = 0.0
    """Monotonic time the partition last delivered records (or was assigned)."""


@dataclass(frozen=True)
class Taken:
    """A batch's records, in merge order, and the bound it reached: every record older than ``bound`` of
    every partition is in it (or in an earlier batch)."""

    items: list[Pending]
    bound: float


class Merger:
    def __init__(self, idle_seconds: float) -> None:
        self.idle_seconds = idle_seconds
        self._queues: dict[TopicPartition, _Queue] = {}
        self.newest = -math.inf
        """The newest event time delivered by any partition."""

    @property
    def partitions(self) -> frozenset[TopicPartition]:
        return frozenset(self._queues)

    def assign(self, partitions: Iterable[TopicPartition], now: float) -> None:
        for tp in partitions:
            self._queues.setdefault(tp, _Queue(quiet_since=now))

    def revoke(self, partitions: Iterable[TopicPartition]) -> None:
        """Forget the partitions and what they still held: their new owner reads it again."""
        for tp in partitions:
            self._queues.pop(tp, None)

    def push(self, tp: TopicPartition, pending: Sequence[Pending], now: float) -> None:
        """Records fetched from ``tp``, in offset order (a revoked partition's late fetch is dropped)."""
        queue = self._queues.get(tp)
        if queue is None or not pending:
            return
        queue.items.extend(pending)
        queue.quiet_since = now
        for item in pending:
            if not isinstance(item, Rejected) and item.at > queue.newest:
                queue.newest = item.at
        self.newest = max(self.newest, queue.newest)

    def polled(self, tp: TopicPartition, caught_up: bool, safe: float) -> None:
        """Whether ``tp``'s fetch position had reached the broker's end offset at the last poll, and
        ``safe``: the newest event time delivered before that poll (what a record ``tp`` gets later
        cannot be older than)."""
        queue = self._queues.get(tp)
        if queue is not None:
            queue.caught_up = caught_up
            if caught_up:
                queue.safe = max(queue.safe, safe)

    def _idle(self, queue: _Queue, now: float) -> bool:
        return queue.caught_up and now - queue.quiet_since >= self.idle_seconds

    def bound(self, now: float) -> float:
        """The event time below which every record of every partition is here: the least of what each
        partition holds it back at (``inf`` when all are idle)."""
        if self.idle(now):
            return math.inf
        return min(max(q.newest, q.safe) if q.caught_up else q.newest for q in self._queues.values())

    def low(self, now: float) -> float:
        """The least event time a record still to be taken may have: the oldest waiting record's, or the
        bound, whichever is less."""
        heads = (q.items[0].at for q in self._queues.values() if q.items)
        return min(min(heads, default=math.inf), self.bound(now))

    def idle(self, now: float) -> bool:
        """Every partition has caught up and delivered nothing for ``idle_seconds``: nothing is on its way."""
        return all(self._idle(q, now) for q in self._queues.values())

    def size(self, tp: TopicPartition) -> int:
        queue = self._queues.get(tp)
        return len(queue.items) if queue is not None else 0

    def waiting(self) -> int:
        return sum(len(q.items) for q in self._queues.values())

    def take(self, bound: float, limit: int, now: float) -> Taken:
        """The records older than ``bound`` by smallest head first, at most about ``limit`` (records of the
        event time at which the limit is reached all come, so the bound reached is a clean cut)."""
        heap = [(order_key(q.items[0]), tp) for tp, q in self._queues.items() if q.items]
        heapq.heapify(heap)
        taken: list[Pending] = []
        reached = bound
        last_at = -math.inf
        while heap:
            key, tp = heap[0]
            at = key[0]
            if at >= bound:
                break
            if len(taken) >= limit and at > last_at:
                reached = at
                break
            queue = self._queues[tp]
            item = queue.items.popleft()
            taken.append(item)
            last_at = max(last_at, at)
            if queue.items:
                heapq.heapreplace(heap, (order_key(queue.items[0]), tp))
            else:
                heapq.heappop(heap)
        return Taken(taken, reached)
