"""A case confirmed while the worker is dead (SIGKILL) is acted on once a worker runs again: the
follow-up queued with the confirmation lists the party on the credit blacklist, once."""

import asyncio
import time
from collections.abc import Callable

from redis.asyncio import Redis

from antifraud.audit.service import AuditLog
from antifraud.case.followups import FollowUp
from antifraud.case.models import case_id_for
from antifraud.case.service import CaseService
from antifraud.credit.models import Listing
from antifraud.credit.service import CreditBlacklist
from antifraud.stack.embedded import Endpoints
from antifraud.stack.worker import WorkerProcess, metric_sum
from antifraud.thresholds import load_thresholds
from tests.conftest import AUDIT_KEYS, wait_for
from tests.test_alert_model import make_alert
from tests.test_case_followups import DEALER
from tests.test_forwarding_worker import kill, produce_alerts, with_cases


def listings(stack: Endpoints) -> list[Listing]:
    async def go() -> list[Listing]:
        client = Redis.from_url(stack.redis_url)
        try:
            blacklist = CreditBlacklist(client, AuditLog(client, AUDIT_KEYS), load_thresholds().credit_blacklist)
            return await blacklist.find("id_number", DEALER.value, now=make_alert().window_end)
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_a_worker_killed_before_the_follow_up_lists_the_party_after_restart(
    stack: Endpoints, start_worker: Callable[..., WorkerProcess]
) -> None:
    case_id = case_id_for(DEALER, "bulk_opening")
    worker = start_worker()
    produce_alerts(stack, [make_alert(detector="card_opening", entity=DEALER)])
    wait_for(
        lambda: with_cases(stack, lambda cases: cases.redis.exists(f"case:{case_id}")) == 1,
        what="the alert folded into its case",
    )
    kill(worker)

    async def confirm(cases: CaseService) -> list[FollowUp]:
        await cases.review(case_id, actor="ana")
        await cases.confirm(case_id, actor="ana", reason="opened cards at six banks in a week")
        return await cases.followups.for_case(case_id)

    assert [(f.kind, f.state) for f in with_cases(stack, confirm)] == [("credit_listing", "pending")]
    assert listings(stack) == [], "nobody performs the follow-up while the worker is down"

    start_worker()
    wait_for(lambda: len(listings(stack)) == 1, timeout=90, what="the party listed by the restarted worker")
    [done] = with_cases(stack, lambda cases: cases.followups.for_case(case_id))
    assert (done.state, done.result["listing_id"]) == ("done", listings(stack)[0].listing_id)
    assert listings(stack)[0].case_id == case_id


def test_a_stream_worker_leaves_jobs_to_a_jobs_worker(
    stack: Endpoints, start_worker: Callable[..., WorkerProcess]
) -> None:
    """``--role stream`` folds alerts but performs no follow-up; a ``--role jobs`` worker beside it does,
    and reads no input."""
    case_id = case_id_for(DEALER, "bulk_opening")
    stream = start_worker(ANTIFRAUD_WORKER_ROLE="stream")
    produce_alerts(stack, [make_alert(detector="card_opening", entity=DEALER)])
    wait_for(
        lambda: with_cases(stack, lambda cases: cases.redis.exists(f"case:{case_id}")) == 1,
        what="the alert folded into its case by the stream worker",
    )

    async def confirm(cases: CaseService) -> list[FollowUp]:
        await cases.review(case_id, actor="ana")
        await cases.confirm(case_id, actor="ana", reason="opened cards at six banks in a week")
        return await cases.followups.for_case(case_id)

    with_cases(stack, confirm)
    later = make_alert(detector="card_opening", entity=DEALER, trigger="a later card opening")
    produce_alerts(stack, [later])
    wait_for(
        lambda: len(with_cases(stack, lambda cases: cases.alerts(case_id))) == 2,
        what="a later alert folded: the stream worker is running",
    )
    time.sleep(3)  # three follow-up ticks and a gauge refresh of a worker that ran jobs
    [pending] = with_cases(stack, lambda cases: cases.followups.for_case(case_id))
    assert pending.state == "pending" and listings(stack) == [], "the stream worker performs no follow-up"
    assert metric_sum(stream.scrape(), "antifraud_cases") == 0, "nor refreshes the gauges"

    jobs = start_worker(ANTIFRAUD_WORKER_ROLE="jobs")
    wait_for(lambda: len(listings(stack)) == 1, timeout=90, what="the party listed by the jobs worker")
    wait_for(lambda: metric_sum(jobs.scrape(), "antifraud_cases") == 1, what="the jobs worker refreshing the gauges")
    assert metric_sum(jobs.scrape(), "antifraud_events_consumed_total") == 0, "a jobs worker reads no input"
