"""The worker folds alerts from the topic into cases and delivers confirmed cases to a webhook that
fails several times, across two SIGKILLs: one while waiting to retry, one after the receiver applied
the package but before the worker heard back. The receiver applies the package exactly once."""

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis

from antifraud.alerts.models import Alert
from antifraud.audit.service import AuditLog
from antifraud.case.models import Case, case_id_for
from antifraud.case.service import CaseService
from antifraud.forwarding.models import Delivery, ForwardingPackage
from antifraud.stack.embedded import Endpoints
from antifraud.stack.worker import WorkerProcess
from streams import topics
from streams.io import EventProducer
from tests.conftest import AUDIT_KEYS, wait_for
from tests.kafka_helpers import read_all
from tests.test_case import PHONE, alert
from tests.test_forwarding import POLICE_KEY, Webhook, webhook  # noqa: F401 - the fixture

T = TypeVar("T")
FAILURES = 3


def delivery_env(webhook: Webhook) -> dict[str, str]:
    return {
        "ANTIFRAUD_WEBHOOK_POLICE": webhook.url("police"),
        "ANTIFRAUD_WEBHOOK_POLICE_KEYS": POLICE_KEY.decode(),
        "ANTIFRAUD_DELIVERY_BACKOFF": "1",
        "ANTIFRAUD_DELIVERY_BACKOFF_MAX": "1",
        "ANTIFRAUD_DELIVERY_TIMEOUT": "1",
        "ANTIFRAUD_DELIVERY_MAX_ATTEMPTS": "20",
    }


def with_cases(endpoints: Endpoints, body: Callable[[CaseService], Awaitable[T]]) -> T:
    async def go() -> T:
        client = Redis.from_url(endpoints.redis_url)
        try:
            return await body(CaseService(client, AuditLog(client, AUDIT_KEYS)))
        finally:
            await client.aclose()

    return asyncio.run(go())


def produce_alerts(endpoints: Endpoints, alerts: list[Alert]) -> None:
    producer = EventProducer(endpoints.kafka_bootstrap)
    for a in alerts:
        producer.send_raw(topics.ALERTS, a.entity.value.encode(), a.model_dump_json().encode())
    producer.flush()
    producer.close()


def kill(worker: WorkerProcess) -> None:
    assert worker.proc is not None
    os.kill(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait()


def police_delivery(endpoints: Endpoints, case_id: str) -> Delivery:
    async def body(cases: CaseService) -> Delivery:
        return next(d for d in await cases.deliveries.for_case(case_id) if d.target == "police")

    return with_cases(endpoints, body)


def test_alerts_become_one_case_and_its_package_is_applied_once_across_sigkills(
    stack: Endpoints, start_worker: Callable[..., WorkerProcess], webhook: Webhook
) -> None:
    webhook.fail_first = FAILURES
    first_alert, second_alert = alert(), alert("interception", minutes=30)
    case_id = case_id_for(PHONE, "fraud_number")
    worker = start_worker(**delivery_env(webhook))
    produce_alerts(stack, [first_alert, first_alert, second_alert, first_alert])

    def case_now() -> Case | None:
        async def body(cases: CaseService) -> Case | None:
            return await cases.get(case_id) if await cases.redis.exists(f"case:{case_id}") else None

        return with_cases(stack, body)

    wait_for(lambda: (c := case_now()) is not None and c.alert_count == 2, what="two alerts folded into the case")

    async def confirm(cases: CaseService) -> Case:
        await cases.review(case_id, actor="ana")
        return await cases.confirm(case_id, actor="ana", reason="short calls to many numbers")

    with_cases(stack, confirm)
    police = police_delivery(stack, case_id)

    wait_for(lambda: len(webhook.attempts) >= 2, what="two failed attempts")
    kill(worker)  # waiting to retry
    assert not webhook.applied

    webhook.stall_after_apply = True
    worker = start_worker(**delivery_env(webhook))
    wait_for(lambda: bool(webhook.applied), what="the package applied by the receiver")
    kill(worker)  # the receiver applied it; the worker never heard back
    webhook.release.set()
    assert police_delivery(stack, case_id).state == "pending"

    start_worker(**delivery_env(webhook))
    wait_for(lambda: police_delivery(stack, case_id).state == "delivered", timeout=90, what="the delivery recorded")

    assert list(webhook.applied) == [police.delivery_id], "applied exactly once"
    assert [key for _, key in webhook.attempts] == [police.delivery_id] * (FAILURES + 2)
    assert with_cases(stack, lambda cases: cases.get(case_id)).status == "forwarded"
    assert [a.alert_id for a in with_cases(stack, lambda cases: cases.alerts(case_id))] == [
        first_alert.alert_id,
        second_alert.alert_id,
    ]
    packages = [
        ForwardingPackage.model_validate_json(r.value).root for r in read_all(stack.kafka_bootstrap, topics.FORWARDING)
    ]
    assert {(p.kind, p.package_id) for p in packages} >= {("police_case", police.delivery_id)}
    assert {p.case_id for p in packages} == {case_id}
