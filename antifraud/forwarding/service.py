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

1. Claim the due deliveries (:class:`~antifraud.state.lease_queue.LeaseQueue`), each for
   ``lease`` seconds: no other loop takes it meanwhile, and one that dies mid-attempt leaves
   it to the next loop once the lease runs out.
2. POST each package to its target's webhook with ``Idempotency-Key: {delivery_id}``
   (a target without a webhook is delivered by the topic alone).
3. Record the outcome: delivered (audited; the case's first delivered package moves it to
   forwarded), pending again after an exponential backoff with jitter, or failed after
   ``max_attempts`` (audited; an analyst can retry it).

A crash between 2 and 3 sends the package again after the lease: the receiver applies it
once, by its idempotency key.
"""

import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import httpx
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from antifraud import metrics, outbox
from antifraud.audit.service import AuditLog
from antifraud.case.models import Case
from antifraud.case.work import CaseWork, LeasedRounds
from antifraud.clock import utcnow
from antifraud.config import ForwardingSettings
from antifraud.forwarding.models import (
    CaseEvidence,
    Delivery,
    Target,
    attempt_failed,
    new_delivery,
    package_for,
    retried,
    succeeded,
)
from antifraud.forwarding.signing import signed_headers
from antifraud.refusals import Unknown
from antifraud.state import keys as families
from antifraud.state.lease_queue import LeaseQueue
from antifraud.state.replies import data
from antifraud.topics import FORWARDING

log = logging.getLogger(__name__)

DELIVERY_QUEUE = LeaseQueue(
    due=families.DELIVERIES_DUE.key(), prefix=families.DELIVERY.prefix, fields=("doc", "payload")
)
RETRYABLE_4XX = frozenset({408, 425, 429})
"""Client errors that may pass on a later attempt; any other 4xx means the receiver refuses the package."""


def delivery_key(delivery_id: str) -> str:
    return DELIVERY_QUEUE.key(delivery_id)


def _case_deliveries_key(case_id: str) -> str:
    return families.DELIVERIES_OF_CASE.key(case_id)


class DeliveryNotFound(Unknown, LookupError):
    def __init__(self, delivery_id: str) -> None:
        super().__init__("delivery_unknown", f"no delivery {delivery_id}", delivery=delivery_id)
        self.delivery_id = delivery_id


class DeliveryQueue(CaseWork[Delivery]):
    """The deliveries in Redis (keys in the module docstring); failures and retries as :class:`CaseWork`'s."""

    def __init__(self, redis: Redis, audit: AuditLog) -> None:
        super().__init__(
            redis,
            audit,
            queue=DELIVERY_QUEUE,
            kind="delivery",
            load=Delivery.model_validate_json,
            not_found=DeliveryNotFound,
            index=_case_deliveries_key,
            retried=retried,
            audited=("delivery_id", "target", "state", "attempts", "last_error"),
        )

    async def plan(
        self,
        pipe: Pipeline,
        case: Case,
        targets: Sequence[Target],
        *,
        evidence: CaseEvidence,
        actor: str,
        now: datetime,
    ) -> list[tuple[Delivery, bytes]]:
        """The deliveries of this version of ``case`` to ``targets`` that do not exist yet, with their
        packages; read through ``pipe`` (a decision in progress), written later by :meth:`write_new`."""
        fresh = [new_delivery(case, target, actor=actor, now=now) for target in targets]
        exists = [await pipe.exists(delivery_key(d.delivery_id)) for d in fresh]
        return [
            (d, package_for(case, d.target, evidence=evidence, now=now).model_dump_json().encode())
            for d, found in zip(fresh, exists)
            if not found
        ]

    def write_new(self, pipe: Pipeline, delivery: Delivery, payload: bytes) -> None:
        """Queue, inside a transaction: the delivery, its due entry, and its package for the topic."""
        pipe.hset(delivery_key(delivery.delivery_id), "payload", payload)
        self.store(pipe, delivery)
        outbox.queue(pipe, FORWARDING, delivery.case_id, payload)

    async def payload(self, delivery_id: str) -> bytes:
        raw = data(await self.redis.hget(delivery_key(delivery_id), "payload"))
        if raw is None:
            raise DeliveryNotFound(delivery_id)
        return raw

    async def for_case(self, case_id: str) -> list[Delivery]:
        """A case's deliveries, oldest first."""
        return sorted(await self.of_case(case_id), key=lambda d: (d.created_at, d.target))

    async def claim(self, now: datetime, *, limit: int, lease_s: float) -> list[tuple[Delivery, bytes]]:
        """Take up to ``limit`` due deliveries for ``lease_s`` seconds (step 1 of the module docstring)."""
        claimed = await DELIVERY_QUEUE.claim(self.redis, now, limit=limit, lease_s=lease_s)
        return [(Delivery.model_validate_json(doc), bytes(payload)) for doc, payload in claimed]


OnDelivered = Callable[[Delivery], Awaitable[None]]
"""Stores a delivered delivery (and what follows from it for the case)."""


class DeliveryLoop(LeasedRounds[tuple[Delivery, bytes]]):
    """Steps 1-3 of the module docstring, one round per :meth:`run_once`, a round's deliveries at once."""

    concurrent = True

    def __init__(
        self,
        queue: DeliveryQueue,
        settings: ForwardingSettings,
        *,
        on_delivered: OnDelivered,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] = utcnow,
        batch: int = 20,
    ) -> None:
        super().__init__(clock=clock, rng=rng, batch=batch, lease_s=2 * settings.timeout_s + 5)
        self.queue = queue
        self.settings = settings
        self.on_delivered = on_delivered
        self._client: httpx.AsyncClient | None = None

    async def _claim(self, now: datetime, *, limit: int, lease_s: float) -> list[tuple[Delivery, bytes]]:
        return await self.queue.claim(now, limit=limit, lease_s=lease_s)

    async def _attempt(self, item: tuple[Delivery, bytes]) -> None:
        delivery, payload = item
        url = self.settings.webhooks.get(delivery.target)
        error, permanent = (await self._post(url, delivery, payload)) if url else (None, False)
        now = self.clock()
        if error is None:
            await self.on_delivered(succeeded(delivery, now=now, webhook=url is not None))
            metrics.DELIVERIES.labels(target=delivery.target, outcome="delivered").inc()
            log.info(
                "delivery %s to %s delivered (attempt %d)",
                delivery.delivery_id[:12],
                delivery.target,
                delivery.attempts + 1,
            )
            return
        attempt = delivery.attempts + 1
        next_at = self.settings.retry.next_attempt(attempt, permanent=permanent, now=now, jitter=self.rng.random())
        after = attempt_failed(delivery, error=error, next_at=next_at)
        await self.queue.record_failure(after)
        outcome = "failed" if after.state == "failed" else "retried"
        metrics.DELIVERIES.labels(target=delivery.target, outcome=outcome).inc()
        log.warning(
            "delivery %s to %s: attempt %d failed (%s); %s",
            delivery.delivery_id[:12],
            delivery.target,
            attempt,
            error,
            "gave up" if after.state == "failed" else f"next at {after.next_attempt_at}",
        )

    async def _post(self, url: str, delivery: Delivery, payload: bytes) -> tuple[str | None, bool]:
        """(why the POST failed or None, whether retrying cannot help); never the URL (it may hold a secret)."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.settings.timeout_s)
        signed = signed_headers(self.settings.keys[delivery.target], int(self.clock().timestamp()), payload)
        try:
            response = await self._client.post(
                url,
                content=payload,
                headers={"Content-Type": "application/json", "Idempotency-Key": delivery.delivery_id, **signed},
            )
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
