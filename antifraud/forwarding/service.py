"""Deliveries in Redis, and the loop that sends them to the targets' webhooks with retries.

Keys (Redis with AOF keeps them across restarts of the worker and of Redis):

- ``delivery:{delivery_id}``: hash ``doc`` (the :class:`Delivery`, JSON) and ``payload``
  (the package, sent byte for byte on every attempt);
- ``deliveries:due``: sorted set of the *pending* deliveries by the epoch of their next attempt;
- ``deliveries:case:{case_id}``: set of a case's delivery ids.

A delivery is created in the transaction that confirms or forwards its case, which
also queues its package for the ``antifraud.forwarding`` topic through the outbox
(:mod:`antifraud.outbox`: at least once, consumers drop repeats by ``package_id``).
The webhook, when the target has one, is this module's job. Order per round of
:meth:`DeliveryLoop.run_once`:

1. Claim the due deliveries in one script, pushing each ``lease`` seconds ahead: no other
   loop takes it meanwhile, and one that dies mid-attempt leaves it to the next loop once
   the lease runs out.
2. POST each package to its target's webhook with ``Idempotency-Key: {delivery_id}``
   (a target without a webhook is delivered by the topic alone).
3. Record the outcome: delivered (audited; the case's first delivered package moves it to
   forwarded), pending again after an exponential backoff with jitter, or failed after
   ``max_attempts`` (audited; an analyst can retry it).

A crash between 2 and 3 sends the package again after the lease: the receiver applies it
once, by its idempotency key.
"""

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone

import httpx
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from antifraud import metrics, outbox
from antifraud.alerts.models import Alert
from antifraud.audit.models import Change
from antifraud.audit.service import AuditLog
from antifraud.case.models import Case, Note, audit_subject
from antifraud.config import ForwardingSettings
from antifraud.forwarding.models import (
    Delivery,
    Target,
    attempt_failed,
    backoff_seconds,
    new_delivery,
    package_for,
    retried,
    succeeded,
)
from streams.topics import FORWARDING

log = logging.getLogger(__name__)

DUE = "deliveries:due"
RETRYABLE_4XX = frozenset({408, 425, 429})
"""Client errors that may pass on a later attempt; any other 4xx means the receiver refuses the package."""


def delivery_key(delivery_id: str) -> str:
    return f"delivery:{delivery_id}"


def _case_deliveries_key(case_id: str) -> str:
    return f"deliveries:case:{case_id}"


# ARGV[1] now (epoch), ARGV[2] how many, ARGV[3] the lease's end (epoch). Returns doc, payload, doc, payload...
_CLAIM = f"""
local out = {{}}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', '{DUE}', '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))) do
  local d = redis.call('HMGET', 'delivery:' .. id, 'doc', 'payload')
  if d[1] then
    redis.call('ZADD', '{DUE}', ARGV[3], id)
    out[#out + 1] = d[1]
    out[#out + 1] = d[2]
  else
    redis.call('ZREM', '{DUE}', id)
  end
end
return out
"""


class DeliveryNotFound(LookupError):
    def __init__(self, delivery_id: str) -> None:
        super().__init__(f"no delivery {delivery_id}")
        self.delivery_id = delivery_id


def _state(delivery: Delivery) -> dict[str, object]:
    """What an audit record keeps of a delivery."""
    return {"delivery_id": delivery.delivery_id, "target": delivery.target, "state": delivery.state,
            "attempts": delivery.attempts, "last_error": delivery.last_error}


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class DeliveryQueue:
    def __init__(self, redis: Redis, audit: AuditLog) -> None:
        self.redis = redis
        self.audit = audit
        self._claim = redis.register_script(_CLAIM)

    async def plan(
        self, pipe: Pipeline, case: Case, targets: Sequence[Target], *, alerts: list[Alert], notes: list[Note],
        actor: str, now: datetime,
    ) -> list[tuple[Delivery, bytes]]:
        """The deliveries of this version of ``case`` to ``targets`` that do not exist yet, with their
        packages; read through ``pipe`` (a decision in progress), written later by :meth:`write_new`."""
        fresh = [new_delivery(case, target, actor=actor, now=now) for target in targets]
        exists = [await pipe.exists(delivery_key(d.delivery_id)) for d in fresh]
        return [
            (d, package_for(case, d.target, alerts=alerts, notes=notes, now=now).model_dump_json().encode())
            for d, found in zip(fresh, exists) if not found
        ]

    @staticmethod
    def write_new(pipe: Pipeline, delivery: Delivery, payload: bytes) -> None:
        """Queue, inside a transaction: the delivery, its due entry, and its package for the topic."""
        pipe.hset(delivery_key(delivery.delivery_id), mapping={"doc": delivery.model_dump_json(), "payload": payload})
        pipe.sadd(_case_deliveries_key(delivery.case_id), delivery.delivery_id)
        DeliveryQueue.write_outcome(pipe, delivery)
        outbox.queue(pipe, FORWARDING, delivery.case_id, payload)

    @staticmethod
    def write_outcome(pipe: Pipeline, delivery: Delivery) -> None:
        """Store the delivery's new state: a pending one is due at its next attempt, others leave the queue."""
        pipe.hset(delivery_key(delivery.delivery_id), "doc", delivery.model_dump_json())
        if delivery.state == "pending" and delivery.next_attempt_at is not None:
            pipe.zadd(DUE, {delivery.delivery_id: delivery.next_attempt_at.timestamp()})
        else:
            pipe.zrem(DUE, delivery.delivery_id)

    async def get(self, delivery_id: str) -> Delivery:
        raw = await self.redis.hget(delivery_key(delivery_id), "doc")
        if raw is None:
            raise DeliveryNotFound(delivery_id)
        return Delivery.model_validate_json(raw)

    async def payload(self, delivery_id: str) -> bytes:
        raw = await self.redis.hget(delivery_key(delivery_id), "payload")
        if raw is None:
            raise DeliveryNotFound(delivery_id)
        return bytes(raw)

    async def for_case(self, case_id: str) -> list[Delivery]:
        """A case's deliveries, oldest first."""
        ids = sorted(i.decode() for i in await self.redis.smembers(_case_deliveries_key(case_id)))
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for delivery_id in ids:
            pipe.hget(delivery_key(delivery_id), "doc")
        docs = [Delivery.model_validate_json(raw) for raw in await pipe.execute() if raw is not None]
        return sorted(docs, key=lambda d: (d.created_at, d.target))

    async def claim(self, now: datetime, *, limit: int, lease_s: float) -> list[tuple[Delivery, bytes]]:
        """Take up to ``limit`` due deliveries for ``lease_s`` seconds (step 1 of the module docstring)."""
        raw = await self._claim(args=[now.timestamp(), limit, now.timestamp() + lease_s])
        return [(Delivery.model_validate_json(raw[i]), bytes(raw[i + 1])) for i in range(0, len(raw), 2)]

    async def record_failure(self, delivery: Delivery) -> None:
        """A failed attempt: pending again (no audit record for each attempt), or failed for good (audited)."""
        if delivery.state == "pending":
            async with self.redis.pipeline(transaction=True) as pipe:
                self.write_outcome(pipe, delivery)
                await pipe.execute()
            return

        async def decide(pipe: Pipeline) -> Change:
            return Change(before=None, after=_state(delivery), write=lambda tx: self.write_outcome(tx, delivery),
                          event_id=f"delivery-failed:{delivery.delivery_id}:{delivery.retries}")

        await self.audit.transact(actor="system", action="delivery.failed", subject=audit_subject(delivery.case_id),
                                  watch=[delivery_key(delivery.delivery_id)], decide=decide)

    async def retry(self, delivery_id: str, *, actor: str, now: datetime | None = None) -> Delivery:
        """An analyst sends a failed delivery back to the queue, due at once; any other state is refused."""
        case_id = (await self.get(delivery_id)).case_id
        result: list[Delivery] = []

        async def decide(pipe: Pipeline) -> Change:
            raw = await pipe.hget(delivery_key(delivery_id), "doc")
            before = Delivery.model_validate_json(raw)
            after = retried(before, now=now or _utcnow())
            result[:] = [after]
            return Change(before=_state(before), after=_state(after), write=lambda tx: self.write_outcome(tx, after))

        await self.audit.transact(actor=actor, action="delivery.retry", subject=audit_subject(case_id),
                                  watch=[delivery_key(delivery_id)], decide=decide)
        return result[0]


OnDelivered = Callable[[Delivery], Awaitable[None]]
"""Stores a delivered delivery (and what follows from it for the case)."""


class DeliveryLoop:
    """Steps 1-3 of the module docstring, one round per :meth:`run_once`."""

    def __init__(
        self, queue: DeliveryQueue, settings: ForwardingSettings, *, on_delivered: OnDelivered,
        rng: random.Random | None = None, clock: Callable[[], datetime] = _utcnow, batch: int = 20,
    ) -> None:
        self.queue = queue
        self.settings = settings
        self.on_delivered = on_delivered
        self.rng = rng or random.Random()
        self.clock = clock
        self.batch = batch
        self.lease_s = 2 * settings.timeout_s + 5
        """Longer than an attempt can take, so a live loop always records its outcome before the lease ends."""
        self._client: httpx.AsyncClient | None = None

    async def run_once(self) -> int:
        """Attempt every due delivery (up to ``batch``); return how many were attempted."""
        claimed = await self.queue.claim(self.clock(), limit=self.batch, lease_s=self.lease_s)
        await asyncio.gather(*(self._attempt(d, payload) for d, payload in claimed))
        return len(claimed)

    async def _attempt(self, delivery: Delivery, payload: bytes) -> None:
        url = self.settings.webhooks.get(delivery.target)
        error, permanent = (await self._post(url, delivery, payload)) if url else (None, False)
        now = self.clock()
        if error is None:
            await self.on_delivered(succeeded(delivery, now=now, webhook=url is not None))
            metrics.DELIVERIES.labels(target=delivery.target, outcome="delivered").inc()
            log.info("delivery %s to %s delivered (attempt %d)", delivery.delivery_id[:12], delivery.target,
                     delivery.attempts + 1)
            return
        attempt = delivery.attempts + 1
        after = attempt_failed(
            delivery, now=now, error=error, max_attempts=attempt if permanent else self.settings.max_attempts,
            delay=backoff_seconds(attempt, base=self.settings.backoff_s, cap=self.settings.backoff_max_s,
                                  jitter=self.rng.random()),
        )
        await self.queue.record_failure(after)
        outcome = "failed" if after.state == "failed" else "retried"
        metrics.DELIVERIES.labels(target=delivery.target, outcome=outcome).inc()
        log.warning("delivery %s to %s: attempt %d failed (%s); %s", delivery.delivery_id[:12], delivery.target,
                    attempt, error, "gave up" if after.state == "failed" else f"next at {after.next_attempt_at}")

    async def _post(self, url: str, delivery: Delivery, payload: bytes) -> tuple[str | None, bool]:
        """(why the POST failed or None, whether retrying cannot help); never the URL (it may hold a secret)."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.settings.timeout_s)
        try:
            response = await self._client.post(url, content=payload, headers={
                "Content-Type": "application/json", "Idempotency-Key": delivery.delivery_id,
            })
        except httpx.HTTPError as exc:
            return type(exc).__name__, False
        if response.is_success:
            return None, False
        status = response.status_code
        return f"HTTP {status}", 400 <= status < 500 and status not in RETRYABLE_4XX

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
