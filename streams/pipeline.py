"""One batch through the detector stages, in event-time order, with what it concludes as data.

A batch is every record of the worker's partitions older than its bound (``streams/merge.py``) and
every timer of those partitions due before it. What makes the result independent of how the stream
is cut into batches, of which worker owns what, and of arrival timing:

- an entity's own state changes only by its own records and timers, in order (one writer);
- what one entity's event tells another (a fact, or a timer sent to it) takes effect
  ``delay`` seconds of event time later (``[stream] cross_entity_delay_seconds``).

So the batch runs in *pieces* no longer than ``delay``: within a piece no stage can see what another
entity did in the same piece, and each stage runs over its part of the piece on its own; between
pieces the stages' changes are applied, so the next piece sees them. Timers a stage sets fall due at
least ``delay`` after the item that set them, so in a later piece: those of this worker's partitions
due before the bound run in this batch, the others go to Redis for whoever owns them.

Stages return data (:class:`StageResult`); nothing here writes anything. A stage that raises on a
record (a bug, or data nothing expected) would fail the batch for ever, so the batch is run again on
shorter prefixes of its records until the record that makes it fail is found; it goes to the
dead-letter topic as ``processing_failed`` (the error's type and where it was raised, never its
message, which may quote personal data) and the rest runs without it. Redis, broker and network errors
(:func:`is_outage`) fail the batch whole, to be retried.
"""

import heapq
import logging
import math
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from faust.exceptions import FaustError
from redis import exceptions as redis_errors

from antifraud.alerts.models import Alert
from antifraud.audit.models import AuditEntry
from antifraud.events.codec import InvalidEvent
from antifraud.state.store import Staged, Store
from streams.merge import TopicPartition
from streams.records import Input, Item, OutRecord, Pending, Rejected, Timer, order_key

log = logging.getLogger(__name__)


@dataclass
class StageResult:
    """What a stage concluded for its part of a piece."""

    alerts: list[Alert] = field(default_factory=list)
    records: list[OutRecord] = field(default_factory=list)
    """Other records to produce (interception decisions, hold events, victim warnings, freeze requests)."""
    changes: list[Staged] = field(default_factory=list)
    """State changes, applied before the next piece and written at the checkpoint."""
    timers: list[Timer] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)
    """Audit records of automatic moves (hold releases and freezes), queued at the checkpoint."""

    def extend(self, other: "StageResult") -> None:
        """Add ``other``'s output (alerts, records, audit): what the checkpoint produces and queues."""
        self.alerts += other.alerts
        self.records += other.records
        self.audit += other.audit


class Stage(Protocol):
    """A detector with its state: a piece's items of its kinds in, its conclusions out as data."""

    name: str
    kinds: frozenset[str]
    """The event kinds it consumes."""
    timer_kinds: frozenset[str]
    """The timer kinds it runs."""
    stores: Sequence[Store]

    async def prefetch(self, inputs: Sequence[Input], timers: Sequence[Timer], bound: float) -> None:
        """Read the state the batch (all its records, and its stored timers of the stage's kinds, all
        before ``bound``) will need, for what the stage runs itself and what it will be told; a stage
        reads what is still missing when it runs."""

    async def run(self, items: Sequence[Item]) -> StageResult:
        """Its items of one piece, in batch order."""


@dataclass
class BatchResult:
    """What the checkpoint writes for a batch."""

    bound: float
    outcome: StageResult = field(default_factory=StageResult)
    dead_letters: list[Rejected] = field(default_factory=list)
    timers_out: list[Timer] = field(default_factory=list)
    """Timers to store: due at or after the bound, or for another worker's partitions."""
    timers_done: list[Timer] = field(default_factory=list)
    """Stored timers this batch ran (to remove)."""
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    """Per partition, the next offset to read."""
    newest: dict[TopicPartition, float] = field(default_factory=dict)
    """Per partition, the newest event time processed."""
    consumed: Counter[str] = field(default_factory=Counter)
    late: Counter[str] = field(default_factory=Counter)


class SystemicFailure(RuntimeError):
    """So many records in a row failed alone that the fault is the code's or the deployment's, not theirs."""


SYSTEMIC_AFTER = 20
"""Records failing alone in a row, none going through, before the worker stops taking batches (retried
like an outage, so it alerts) instead of dead-lettering the whole stream."""

_REDIS_DOWN = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,
    redis_errors.MasterDownError,
    redis_errors.TryAgainError,
    redis_errors.OutOfMemoryError,
    redis_errors.ClusterDownError,
)
"""Redis away, failing over, loading or full; any other Redis error (WRONGTYPE, a script failing on
odd data, a value redis-py refuses) is the data's or the code's."""


def is_outage(error: BaseException) -> bool:
    """Redis, the broker or the network failing (the batch waits and is tried again), or a
    :class:`SystemicFailure`; anything else is the batch's data or the code (isolated, dead-lettered).
    A client's own wrapper is judged by what it wraps (Faust raises ``ProducerSendError`` from the
    broker's error)."""
    if isinstance(error, FaustError) and error.__cause__ is not None:
        return is_outage(error.__cause__)
    if isinstance(error, KafkaError):
        return not isinstance(error, MessageSizeTooLargeError)
    return isinstance(error, (*_REDIS_DOWN, OSError, SystemicFailure))


def failure_of(error: BaseException) -> InvalidEvent:
    """The dead-letter reason of a record a stage fails on: the error's type and the line that raised it."""
    where = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
    at = f" at {Path(where.filename).name}:{where.lineno} in {where.name}" if where else ""
    return InvalidEvent("processing_failed", f"{type(error).__name__}{at}")


class BatchPipeline:
    """Runs batches through ``stages`` (in the order given, which only orders their output)."""

    def __init__(self, stages: Sequence[Stage], delay: float, owns: Callable[[Timer], TopicPartition | None]) -> None:
        if delay <= 0:
            raise ValueError("the cross-entity delay must be positive")
        self.stages = list(stages)
        self.delay = delay
        self.owns = owns
        """The partition of a timer's entity when this worker owns it, else None."""
        self.by_kind: dict[str, list[Stage]] = {}
        self.by_timer: dict[str, Stage] = {}
        for stage in self.stages:
            for kind in stage.kinds:
                self.by_kind.setdefault(kind, []).append(stage)
            for kind in stage.timer_kinds:
                if kind in self.by_timer:
                    raise ValueError(f"two stages run timers of kind {kind!r}")
                self.by_timer[kind] = stage
        self._failing_in_a_row = 0

    @property
    def stores(self) -> list[Store]:
        seen: dict[int, Store] = {}
        for stage in self.stages:
            for store in stage.stores:
                seen.setdefault(id(store), store)
        return list(seen.values())

    def discard(self) -> None:
        for store in self.stores:
            store.discard()

    async def run(
        self, taken: Sequence[Pending], stored_timers: Sequence[Timer], bound: float, since: float = -math.inf
    ) -> BatchResult:
        """The batch's conclusions. ``taken``: its records in merge order (dead letters among them);
        ``stored_timers``: its partitions' timers due before ``bound``; ``since``: the bound of the batch
        before (records older than it are late)."""
        result = BatchResult(bound=bound)
        offsets, newest = result.offsets, result.newest
        inputs: list[Input] = []
        for item in taken:  # once per record: kept to plain comparisons
            record = item.record
            tp = (record.topic, record.partition)
            if record.offset >= offsets.get(tp, 0):
                offsets[tp] = record.offset + 1
            if isinstance(item, Rejected):
                result.dead_letters.append(item)
                continue
            at = item.at
            if at >= bound:
                raise ValueError("a batch's records must all be older than its bound (the caller cut it wrong)")
            inputs.append(item)
            if at > newest.get(tp, -math.inf):
                newest[tp] = at
        result.consumed.update(item.record.topic for item in taken)
        result.late.update(item.record.topic for item in inputs if item.at < since)
        result.timers_done = list(stored_timers)
        excluded: set[int] = set()
        while True:
            kept = [i for n, i in enumerate(inputs) if n not in excluded] if excluded else inputs
            try:
                outcome, timers_out = await self._attempt(kept, stored_timers, bound)
            except Exception as error:
                if is_outage(error):
                    raise
                self.discard()
                bad = await self._isolate(kept, stored_timers, bound)
                index = inputs.index(bad)
                excluded.add(index)
                self._failing_in_a_row += 1
                if self._failing_in_a_row > SYSTEMIC_AFTER:
                    raise SystemicFailure(
                        f"{self._failing_in_a_row} records in a row failed alone, the last with "
                        f"{failure_of(error).detail}: the fault looks like the code's"
                    ) from error
                reason = failure_of(error)
                log.error(
                    "a stage fails on %s[%d]@%d (%s); dead-lettering it",
                    bad.record.topic,
                    bad.record.partition,
                    bad.record.offset,
                    reason.detail,
                )
                result.dead_letters.append(Rejected(bad.at, bad.record, reason))
                continue
            if kept:
                self._failing_in_a_row = 0
            result.outcome = outcome
            result.timers_out = timers_out
            return result

    async def _isolate(self, inputs: Sequence[Input], stored_timers: Sequence[Timer], bound: float) -> Input:
        """The first record whose prefix of the batch fails (stored timers always run)."""
        lo, hi = 0, len(inputs)  # a prefix of hi records fails; of lo does not (or lo == 0, untried)
        if hi == 0:
            raise SystemicFailure("a stage fails on a stored timer alone: the fault is the code's")
        while hi - lo > 1:
            mid = (lo + hi) // 2
            try:
                await self._attempt(inputs[:mid], stored_timers, bound)
            except Exception as error:
                if is_outage(error):
                    raise
                hi = mid
            else:
                lo = mid
            finally:
                self.discard()
        if lo == 0:
            try:
                await self._attempt([], stored_timers, bound)
            except Exception as error:
                self.discard()
                if is_outage(error):
                    raise
                raise SystemicFailure("a stage fails on a stored timer alone: the fault is the code's") from error
            self.discard()
        return inputs[hi - 1]

    async def _attempt(
        self, inputs: Sequence[Input], stored_timers: Sequence[Timer], bound: float
    ) -> tuple[StageResult, list[Timer]]:
        for stage in self.stages:
            await stage.prefetch(inputs, [t for t in stored_timers if self.by_timer.get(t.kind) is stage], bound)
        items: list[Item] = sorted([*inputs, *stored_timers], key=order_key)  # nearly sorted already: linear
        due: list[tuple[tuple[object, ...], Timer]] = []  # set in the batch for owned entities, due before the bound
        outcome = StageResult()
        timers_out: list[Timer] = []
        at, n = 0, len(items)
        while at < n or due:
            first = min(items[at].at if at < n else math.inf, due[0][1].at if due else math.inf)
            end = min(first + self.delay, bound)
            start = at
            while at < n and items[at].at < end:
                at += 1
            piece: Sequence[Item] = items[start:at]
            if due and due[0][1].at < end:
                told = []
                while due and due[0][1].at < end:
                    told.append(heapq.heappop(due)[1])
                piece = list(heapq.merge(piece, told, key=order_key))
            for stage, mine in self._routed(piece):
                done = await stage.run(mine)
                for change in done.changes:
                    change.store.apply(change.change)
                for timer in done.timers:
                    if timer.at < end:
                        raise RuntimeError(f"stage {stage.name} set a {timer.kind} timer due inside its own piece")
                    if timer.at < bound and self.owns(timer) is not None:
                        heapq.heappush(due, (order_key(timer), timer))
                    else:
                        timers_out.append(timer)
                outcome.extend(done)
        return outcome, timers_out

    def _routed(self, piece: Sequence[Item]) -> list[tuple[Stage, list[Item]]]:
        """Each stage with its items of the piece, in the piece's order, stages in their order."""
        routed: dict[int, list[Item]] = {}
        for item in piece:
            for stage in self._route(item):
                routed.setdefault(id(stage), []).append(item)
        return [(stage, routed[id(stage)]) for stage in self.stages if id(stage) in routed]

    def _route(self, item: Item) -> Sequence[Stage]:
        if isinstance(item, Timer):
            stage = self.by_timer.get(item.kind)
            if stage is None:
                raise RuntimeError(f"no stage runs timers of kind {item.kind!r}")
            return (stage,)
        return self.by_kind.get(item.kind, ())
