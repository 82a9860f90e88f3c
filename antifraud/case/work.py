"""What a case sets in motion outside itself, tracked item by item: its deliveries and its follow-ups.

Both kinds share one life: kept in a :class:`~antifraud.state.lease_queue.LeaseQueue`
(a hash per item, ``doc`` its JSON document), listed per case, attempted by a worker,
pending again after a failed attempt (not audited: attempts are many), failed for good
(audited on the case), and sent back to pending by an analyst (audited). This base class
is that life; a subclass adds what its kind does besides.
"""

import asyncio
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from antifraud.audit.models import Change
from antifraud.audit.service import AuditLog
from antifraud.case.models import audit_subject
from antifraud.clock import utcnow
from antifraud.state.lease_queue import LeaseQueue
from antifraud.state.replies import data, texts


class CaseItem(Protocol):
    """What :class:`CaseWork` needs of an item (a delivery, a follow-up)."""

    @property
    def case_id(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def retries(self) -> int: ...
    @property
    def next_attempt_at(self) -> datetime | None: ...
    def model_dump_json(self) -> str: ...


Item = TypeVar("Item", bound=CaseItem)


class CaseWork(Generic[Item]):
    """The items of one kind over Redis.

    ``kind`` names them in audit actions (``{kind}.failed``, ``{kind}.retry``); ``audited`` are the
    fields an audit record keeps of one, its id first; ``index`` gives the key of the set of a case's
    item ids; ``retried`` is the pure move back to pending (refusing an item whose state does not allow it).
    """

    def __init__(
        self,
        redis: Redis,
        audit: AuditLog,
        *,
        queue: LeaseQueue,
        kind: str,
        audited: tuple[str, ...],
        load: Callable[[bytes], Item],
        not_found: Callable[[str], LookupError],
        index: Callable[[str], str],
        retried: Callable[..., Item],
    ) -> None:
        self.redis = redis
        self.audit = audit
        self.queue = queue
        self.kind = kind
        self._audited = audited
        self._load = load
        self._not_found = not_found
        self._index = index
        self._retried = retried

    def store(self, pipe: Pipeline, item: Item) -> None:
        """Write the item inside the caller's transaction: a pending one is due at its next attempt, others
        leave the queue."""
        item_id = self.item_id(item)
        pipe.hset(self.queue.key(item_id), "doc", item.model_dump_json())
        pipe.sadd(self._index(item.case_id), item_id)
        self.queue.schedule(pipe, item_id, item.next_attempt_at if item.state == "pending" else None)

    def summary(self, item: Item) -> dict[str, Any]:
        """What an audit record keeps of the item."""
        return {name: getattr(item, name) for name in self._audited}

    def item_id(self, item: Item) -> str:
        return str(getattr(item, self._audited[0]))

    async def get(self, item_id: str) -> Item:
        raw = data(await self.redis.hget(self.queue.key(item_id), "doc"))
        if raw is None:
            raise self._not_found(item_id)
        return self._load(raw)

    async def ids_of(self, case_id: str) -> list[str]:
        return sorted(texts(await self.redis.smembers(self._index(case_id))))

    async def of_case(self, case_id: str) -> list[Item]:
        """A case's items, in id order."""
        return [self._load(raw) for raw in await self.queue.docs(self.redis, await self.ids_of(case_id))]

    def drop(self, pipe: Pipeline, case_id: str, ids: Sequence[str]) -> None:
        """Inside the caller's transaction: a case's items gone with it (the case expired)."""
        for item_id in ids:
            pipe.delete(self.queue.key(item_id))
            self.queue.schedule(pipe, item_id, None)
        pipe.delete(self._index(case_id))

    async def record_failure(self, item: Item) -> None:
        """A failed attempt: pending again (no audit record for each attempt), or failed for good (audited)."""
        if item.state == "pending":
            async with self.redis.pipeline(transaction=True) as pipe:
                self.store(pipe, item)
                await pipe.execute()
            return
        item_id = self.item_id(item)

        async def decide(pipe: Pipeline) -> Change:
            return Change(
                before=None,
                after=self.summary(item),
                write=lambda tx: self.store(tx, item),
                event_id=f"{self.kind}-failed:{item_id}:{item.retries}",
            )

        await self.audit.transact(
            actor="system",
            action=f"{self.kind}.failed",
            subject=audit_subject(item.case_id),
            watch=[self.queue.key(item_id)],
            decide=decide,
        )

    async def retry(self, item_id: str, *, actor: str, now: datetime | None = None) -> Item:
        """An analyst sends a failed item back to the queue, due at once; any other state is refused."""
        case_id = (await self.get(item_id)).case_id
        result: list[Item] = []

        async def decide(pipe: Pipeline) -> Change:
            raw = data(await pipe.hget(self.queue.key(item_id), "doc"))
            if raw is None:
                raise self._not_found(item_id)
            before = self._load(raw)
            after = self._retried(before, now=now or utcnow())
            result[:] = [after]
            return Change(
                before=self.summary(before), after=self.summary(after), write=lambda tx: self.store(tx, after)
            )

        await self.audit.transact(
            actor=actor,
            action=f"{self.kind}.retry",
            subject=audit_subject(case_id),
            watch=[self.queue.key(item_id)],
            decide=decide,
        )
        return result[0]


Claimed = TypeVar("Claimed")


class LeasedRounds(ABC, Generic[Claimed]):
    """The job that works a lease queue, one round per :meth:`run_once`: claim the due items (each for
    ``lease_s`` seconds, longer than an attempt takes, so a live runner records its outcome before another
    claims it), attempt each, and let each attempt record its outcome: done, or by its kind's
    :class:`~antifraud.state.lease_queue.RetryPolicy` pending again or parked for a person."""

    concurrent = False
    """Attempt a round's items at once (deliveries: they wait on the network), or one after another."""

    def __init__(self, *, clock: Callable[[], datetime], rng: random.Random | None, batch: int, lease_s: float) -> None:
        self.clock = clock
        self.rng = rng or random.Random()
        """Draws the backoffs' jitter."""
        self.batch = batch
        self.lease_s = lease_s

    async def run_once(self) -> int:
        """Attempt every due item (up to ``batch``); return how many were attempted."""
        claimed = await self._claim(self.clock(), limit=self.batch, lease_s=self.lease_s)
        if self.concurrent:
            await asyncio.gather(*(self._attempt(item) for item in claimed))
        else:
            for item in claimed:
                await self._attempt(item)
        return len(claimed)

    @abstractmethod
    async def _claim(self, now: datetime, *, limit: int, lease_s: float) -> Sequence[Claimed]: ...

    @abstractmethod
    async def _attempt(self, item: Claimed) -> None: ...
