"""Forwarding: package schema, delivery states, backoff (pure), and the delivery loop on a real Redis
against a local webhook that fails several times, then applies each package once by its idempotency key."""

import asyncio
import json
import random
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
from redis.asyncio import Redis

from antifraud.audit.service import AuditLog
from antifraud.case.models import Case, WorkRefused, open_case
from antifraud.case.service import CaseService
from antifraud.config import ForwardingSettings
from antifraud.forwarding.models import (
    ForwardingPackage,
    attempt_failed,
    new_delivery,
    retried,
    succeeded,
)
from antifraud.forwarding.service import DELIVERY_QUEUE, DeliveryLoop
from antifraud.state.lease_queue import RetryPolicy, backoff_seconds
from tests.conftest import AUDIT_KEYS
from tests.test_case import ACCOUNT, NOW, alert

T = TypeVar("T")
SCHEMA_FILE = Path(__file__).resolve().parent.parent / "docs" / "case-package.schema.json"


# -- a webhook receiver that de-duplicates by Idempotency-Key ----------------------------------------


@dataclass
class Webhook:
    """A local HTTP receiver: answers 503 to the first ``fail_first`` requests, then applies each
    Idempotency-Key once (a repeat gets 200 without applying). With ``stall_after_apply`` set, the
    first applying request waits for ``release`` before answering (its sender can die meanwhile)."""

    fail_first: int = 0
    refuse_with: int | None = None
    """Answer every request with this status (a receiver that rejects the package)."""
    stall_after_apply: bool = False
    attempts: list[tuple[str, str]] = field(default_factory=list)
    """(path, Idempotency-Key) of every request, in arrival order."""
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    """(headers, body) of every request, in arrival order."""
    applied: dict[str, dict[str, object]] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def handle(self, path: str, key: str, body: bytes) -> int:
        with self.lock:
            self.attempts.append((path, key))
            if len(self.attempts) <= self.fail_first:
                return 503
            if self.refuse_with is not None:
                return self.refuse_with
            if key in self.applied:
                return 200
            self.applied[key] = json.loads(body)
            stall = self.stall_after_apply
        if stall:
            self.release.wait(60)
        return 200


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            hook.received.append((dict(self.headers.items()), body))
            status = hook.handle(self.path.strip("/"), self.headers.get("Idempotency-Key", ""), body)
            try:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass  # the sender is gone

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    hook.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield hook
    hook.release.set()
    server.shutdown()
    server.server_close()


# -- pure -------------------------------------------------------------------------------------------


def _case(**changes: object) -> Case:
    return open_case(alert(), NOW).model_copy(update=changes)


def test_delivery_moves() -> None:
    pending = new_delivery(_case(version=3), "police", actor="ana", now=NOW)
    again = attempt_failed(pending, error="HTTP 503", next_at=NOW + timedelta(seconds=4))
    assert (again.state, again.attempts, again.next_attempt_at) == ("pending", 1, NOW + timedelta(seconds=4))
    failed = attempt_failed(again, error="ConnectTimeout", next_at=None)
    assert (failed.state, failed.attempts, failed.next_attempt_at, failed.last_error) == (
        "failed",
        2,
        None,
        "ConnectTimeout",
    )
    back = retried(failed, now=NOW)
    assert (back.state, back.attempts, back.retries, back.next_attempt_at) == ("pending", 0, 1, NOW)
    done = succeeded(back, now=NOW, webhook=True)
    assert (done.state, done.delivered_at) == ("delivered", NOW)
    for move in (
        lambda d: retried(d, now=NOW),
        lambda d: succeeded(d, now=NOW, webhook=True),
        lambda d: attempt_failed(d, error="x", next_at=NOW),
    ):
        with pytest.raises(WorkRefused, match=f"delivery {done.delivery_id}: .* refused while delivered"):
            move(done)
    with pytest.raises(WorkRefused, match="retry refused while pending"):
        retried(pending, now=NOW)


def test_one_retry_policy_retries_transient_failures_and_parks_permanent_or_spent_ones() -> None:
    policy = RetryPolicy(max_attempts=3, backoff_s=2, backoff_max_s=60)
    assert policy.next_attempt(1, permanent=False, now=NOW, jitter=0.0) == NOW + timedelta(seconds=1)
    assert policy.next_attempt(2, permanent=False, now=NOW, jitter=0.0) == NOW + timedelta(seconds=2)
    assert policy.next_attempt(3, permanent=False, now=NOW, jitter=0.0) is None, "attempts spent: parked"
    assert policy.next_attempt(1, permanent=True, now=NOW, jitter=0.0) is None, "retrying cannot help: parked"


def test_backoff_is_exponential_capped_and_jittered() -> None:
    assert [backoff_seconds(a, base=2, cap=60, jitter=0.0) for a in range(1, 7)] == [1, 2, 4, 8, 16, 30]
    assert [backoff_seconds(a, base=2, cap=60, jitter=0.999999) for a in (1, 6)] == pytest.approx([2, 60])
    rng = random.Random(7)
    delays = {backoff_seconds(3, base=2, cap=60, jitter=rng.random()) for _ in range(50)}
    assert len(delays) > 40 and all(4 <= d < 8 for d in delays)


def test_the_documented_schema_is_the_models_schema() -> None:
    """docs/case-package.schema.json is generated from the models; regenerate it with
    ``python -m antifraud.forwarding.models > docs/case-package.schema.json`` when they change."""
    assert json.loads(SCHEMA_FILE.read_text()) == ForwardingPackage.model_json_schema()


# -- the loop on Redis ------------------------------------------------------------------------------


POLICE_KEY = b"a-police-receivers-key-32-bytes-or-more"  # no spaces: a variable holds keys space-separated
BANK_KEY, NEXT_BANK_KEY = b"the-banks-key-32-bytes-or-more-yes", b"the-banks-next-key-rotating-in-now"


def documented_verify() -> Callable[..., bool]:
    """The receivers' ``verify`` from docs/forwarding.md, run as written."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "forwarding.md").read_text()
    code = text.split("## Verifying a package")[1].split("```python\n")[1].split("```")[0]
    scope: dict[str, Any] = {}
    exec(compile(code, "docs/forwarding.md", "exec"), scope)  # noqa: S102 - the documented snippet itself
    return scope["verify"]  # type: ignore[no-any-return]


def settings(webhook: Webhook, **changes: object) -> ForwardingSettings:
    base = ForwardingSettings(
        webhooks={"police": webhook.url("police"), "bank": webhook.url("bank")},
        keys={"police": (POLICE_KEY,), "bank": (BANK_KEY, NEXT_BANK_KEY)},
        max_attempts=6,
        backoff_s=0.05,
        backoff_max_s=0.2,
        timeout_s=2.0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def on_redis(redis_url: str, body: Callable[[CaseService], Awaitable[T]]) -> T:
    async def go() -> T:
        client = Redis.from_url(redis_url)
        try:
            return await body(CaseService(client, AuditLog(client, AUDIT_KEYS)))
        finally:
            await client.aclose()

    return asyncio.run(go())


async def confirmed_mule_case(cases: CaseService) -> Case:
    case = await cases.fold_alert(alert("mule_account", entity=ACCOUNT))
    assert case is not None
    await cases.review(case.case_id, actor="ana")
    return await cases.confirm(case.case_id, actor="ana", reason="collects from five victims")


async def run_until_idle(loop: DeliveryLoop, cases: CaseService, case_id: str, timeout: float = 20.0) -> None:
    """Run rounds until none of the case's deliveries is pending."""
    deadline = asyncio.get_running_loop().time() + timeout
    while any(d.state == "pending" for d in await cases.deliveries.for_case(case_id)):
        assert asyncio.get_running_loop().time() < deadline, "deliveries still pending"
        await loop.run_once()
        await asyncio.sleep(0.02)


def test_webhook_failing_then_succeeding_applies_each_package_once(redis_url: str, webhook: Webhook) -> None:
    webhook.fail_first = 4

    async def body(cases: CaseService) -> None:
        case = await confirmed_mule_case(cases)
        loop = DeliveryLoop(cases.deliveries, settings(webhook), on_delivered=cases.delivered, rng=random.Random(1))
        try:
            await run_until_idle(loop, cases, case.case_id)
        finally:
            await loop.aclose()
        deliveries = {d.target: d for d in await cases.deliveries.for_case(case.case_id)}
        assert {t: d.state for t, d in deliveries.items()} == {"police": "delivered", "bank": "delivered"}
        assert sum(d.attempts for d in deliveries.values()) == len(webhook.attempts) == 4 + 2
        assert sorted(webhook.applied) == sorted(d.delivery_id for d in deliveries.values()), "one apply per key"
        assert {k for _, k in webhook.attempts} == set(webhook.applied)
        police = webhook.applied[deliveries["police"].delivery_id]
        assert police["kind"] == "police_case" and police["case_id"] == case.case_id
        assert webhook.applied[deliveries["bank"].delivery_id]["accounts"] == [
            {"account": ACCOUNT.value, "action": "freeze"}
        ]
        assert (await cases.get(case.case_id)).status == "forwarded"
        assert await cases.deliveries.redis.zcard(DELIVERY_QUEUE.due) == 0
        actions = [r.action for r in await cases.audit.about(f"case:{case.case_id}")]
        assert actions.count("delivery.delivered") == 2

    on_redis(redis_url, body)


def test_every_post_is_signed_as_the_documented_receiver_verifies(redis_url: str, webhook: Webhook) -> None:
    verify = documented_verify()

    async def body(cases: CaseService) -> None:
        case = await confirmed_mule_case(cases)
        loop = DeliveryLoop(cases.deliveries, settings(webhook), on_delivered=cases.delivered, rng=random.Random(1))
        try:
            await run_until_idle(loop, cases, case.case_id)
        finally:
            await loop.aclose()

    on_redis(redis_url, body)
    by_target = {path: (headers, raw) for (path, _), (headers, raw) in zip(webhook.attempts, webhook.received)}
    police, bank = by_target["police"], by_target["bank"]
    assert verify(police[1], police[0], POLICE_KEY)
    assert verify(bank[1], bank[0], BANK_KEY) and verify(bank[1], bank[0], NEXT_BANK_KEY), "either key while rotating"
    assert not verify(police[1], police[0], BANK_KEY), "another target's key"
    assert not verify(police[1].replace(b"police", b"polite"), police[0], POLICE_KEY), "a changed body"
    sent_at = int(police[0]["X-Antifraud-Timestamp"])
    assert not verify(police[1], police[0], POLICE_KEY, now=sent_at + 301), "played back after the window"
    assert not verify(police[1], {**police[0], "X-Antifraud-Timestamp": str(sent_at + 1)}, POLICE_KEY)


def test_a_delivery_sent_again_after_a_lost_answer_is_applied_once(redis_url: str, webhook: Webhook) -> None:
    """The receiver applied the package but its answer never came back: the next attempt, with the same
    Idempotency-Key, is acknowledged without being applied again."""

    async def body(cases: CaseService) -> None:
        case = await confirmed_mule_case(cases)
        short = settings(webhook, timeout_s=0.3, webhooks={"police": webhook.url("police")})
        webhook.stall_after_apply = True
        loop = DeliveryLoop(cases.deliveries, short, on_delivered=cases.delivered)
        try:
            await loop.run_once()  # police: applied, answer stalls past the timeout; bank: no webhook
            police = next(d for d in await cases.deliveries.for_case(case.case_id) if d.target == "police")
            assert (police.state, police.last_error) == ("pending", "ReadTimeout")
            webhook.stall_after_apply = False
            webhook.release.set()
            await run_until_idle(loop, cases, case.case_id)
        finally:
            await loop.aclose()
        assert [k for _, k in webhook.attempts] == [police.delivery_id] * 2
        assert list(webhook.applied) == [police.delivery_id]
        bank = next(d for d in await cases.deliveries.for_case(case.case_id) if d.target == "bank")
        assert (bank.state, bank.webhook) == ("delivered", False), "no bank webhook: the topic alone delivers"

    on_redis(redis_url, body)


def test_failed_after_max_attempts_then_retried_by_an_analyst(redis_url: str, webhook: Webhook) -> None:
    webhook.fail_first = 3

    async def body(cases: CaseService) -> None:
        case = await confirmed_mule_case(cases)
        loop = DeliveryLoop(
            cases.deliveries,
            settings(webhook, max_attempts=3, webhooks={"police": webhook.url("p")}),
            on_delivered=cases.delivered,
        )
        try:
            await run_until_idle(loop, cases, case.case_id)
            police = next(d for d in await cases.deliveries.for_case(case.case_id) if d.target == "police")
            assert (police.state, police.attempts, police.last_error) == ("failed", 3, "HTTP 503")
            with pytest.raises(WorkRefused):
                await cases.deliveries.retry(
                    next(d for d in await cases.deliveries.for_case(case.case_id) if d.target == "bank").delivery_id,
                    actor="ana",
                )
            back = await cases.deliveries.retry(police.delivery_id, actor="ana")
            assert (back.state, back.retries) == ("pending", 1)
            await run_until_idle(loop, cases, case.case_id)
        finally:
            await loop.aclose()
        assert (await cases.deliveries.get(police.delivery_id)).state == "delivered"
        assert list(webhook.applied) == [police.delivery_id] and len(webhook.attempts) == 4
        actions = [(r.actor, r.action) for r in await cases.audit.about(f"case:{case.case_id}")]
        assert actions[-4:] == [
            ("system", "delivery.delivered"),
            ("system", "delivery.failed"),
            ("ana", "delivery.retry"),
            ("system", "delivery.delivered"),
        ]

    on_redis(redis_url, body)


@pytest.mark.parametrize(("refuse_with", "attempts", "error"), [(422, 1, "HTTP 422"), (429, 3, "HTTP 429")])
def test_a_refusing_receiver_fails_the_delivery_at_once(
    redis_url: str, webhook: Webhook, refuse_with: int, attempts: int, error: str
) -> None:
    """A 4xx other than 408/425/429 will not pass on a later try: failed at once for an analyst to look at."""
    webhook.refuse_with = refuse_with

    async def body(cases: CaseService) -> None:
        case = await confirmed_mule_case(cases)
        loop = DeliveryLoop(
            cases.deliveries,
            settings(webhook, webhooks={"police": webhook.url("p")}, max_attempts=3),
            on_delivered=cases.delivered,
        )
        try:
            await run_until_idle(loop, cases, case.case_id)
        finally:
            await loop.aclose()
        police = next(d for d in await cases.deliveries.for_case(case.case_id) if d.target == "police")
        assert (police.state, police.attempts, police.last_error) == ("failed", attempts, error)
        assert (await cases.get(case.case_id)).status == "forwarded", "the bank's package went out"

    on_redis(redis_url, body)


def test_an_unreachable_receiver_is_retried_until_max_attempts(redis_url: str) -> None:
    async def body(cases: CaseService) -> None:
        case = await confirmed_mule_case(cases)
        unreachable = ForwardingSettings(
            webhooks={"police": "http://127.0.0.1:1/nothing"},
            keys={"police": (POLICE_KEY,)},
            max_attempts=2,
            backoff_s=0.05,
            backoff_max_s=0.1,
            timeout_s=1.0,
        )
        loop = DeliveryLoop(cases.deliveries, unreachable, on_delivered=cases.delivered)
        try:
            await run_until_idle(loop, cases, case.case_id)
        finally:
            await loop.aclose()
        police = next(d for d in await cases.deliveries.for_case(case.case_id) if d.target == "police")
        assert (police.state, police.attempts, police.last_error) == ("failed", 2, "ConnectError")

    on_redis(redis_url, body)
