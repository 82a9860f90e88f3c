"""Cases and deliveries survive the worker and Redis being killed (SIGKILL) and restarted: Redis with
AOF (``appendfsync always`` here; see docs/forwarding.md for ``everysec``) loses nothing, and the
restarted worker resumes the pending delivery, which the receiver applies once."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from antifraud.case.models import Case, case_id_for
from antifraud.case.service import CaseService
from antifraud.stack.embedded import EmbeddedStack, Endpoints
from antifraud.stack.worker import WorkerProcess
from streams import topics
from tests.conftest import PARTITIONS, wait_for
from tests.redis_helpers import AofRedis, aof_redis  # noqa: F401 - the fixture
from tests.test_case import ACCOUNT, alert
from tests.test_forwarding import Webhook, webhook  # noqa: F401 - the fixture
from tests.test_forwarding_worker import delivery_env, kill, police_delivery, produce_alerts, with_cases


@pytest.fixture
def stack(tmp_path: Path, aof_redis: AofRedis, monkeypatch: pytest.MonkeyPatch) -> Iterator[Endpoints]:
    """The embedded broker with this test's restartable Redis (``start_worker`` uses this stack)."""
    monkeypatch.setenv("REDIS_URL", aof_redis.url)
    with EmbeddedStack(workdir=tmp_path) as endpoints:
        topics.ensure_topics(endpoints.kafka_bootstrap, PARTITIONS)
        yield endpoints


def test_cases_and_deliveries_survive_killing_worker_and_redis(
    stack: Endpoints, aof_redis: AofRedis, start_worker: Callable[..., WorkerProcess], webhook: Webhook
) -> None:
    webhook.fail_first = 2
    alerts = [alert("mule_account", entity=ACCOUNT), alert("transfer_risk", entity=ACCOUNT, minutes=20)]
    case_id = case_id_for(ACCOUNT, "mule")
    worker = start_worker(**delivery_env(webhook))
    produce_alerts(stack, alerts)
    wait_for(
        lambda: with_cases(stack, lambda cases: cases.redis.hlen(f"case:{case_id}:alerts")) == 2,
        what="both alerts in the case",
    )

    async def decide(cases: CaseService) -> Case:
        await cases.review(case_id, actor="ana")
        await cases.add_note(case_id, actor="ana", text="five victims paid this account")
        return await cases.confirm(case_id, actor="ana", reason="mule: collects and moves on")

    with_cases(stack, decide)
    wait_for(lambda: len(webhook.attempts) >= 1, what="a failed attempt")
    kill(worker)

    async def snapshot(cases: CaseService) -> tuple[object, ...]:
        return (
            await cases.get(case_id),
            await cases.alerts(case_id),
            await cases.notes(case_id),
            await cases.deliveries.for_case(case_id),
            await cases.audit.about(f"case:{case_id}"),
            await cases.counts(),
        )

    before = with_cases(stack, snapshot)
    assert police_delivery(stack, case_id).state == "pending"
    assert sorted(d.target for d in with_cases(stack, lambda cases: cases.deliveries.for_case(case_id))) == [
        "bank",
        "police",
    ]

    aof_redis.crash()
    aof_redis.start()
    assert with_cases(stack, snapshot) == before, "nothing lost across a Redis SIGKILL and restart"
    assert with_cases(stack, lambda cases: cases.audit.verify()).ok

    start_worker(**delivery_env(webhook))
    wait_for(lambda: police_delivery(stack, case_id).state == "delivered", timeout=90, what="the delivery resumed")
    assert list(webhook.applied) == [police_delivery(stack, case_id).delivery_id]
    assert with_cases(stack, lambda cases: cases.get(case_id)).status == "forwarded"
