"""A live worker (wall clock) on the real broker and Redis: a quiet ledger still releases on time, a flagged
payee's held transfer is warned about, and a person's move reaches the holds topic through the outbox."""

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from redis.asyncio import Redis

from antifraud.audit.service import AuditLog
from antifraud.holds.models import HOLD_RECORD, HoldEvent, PayeeFlagged
from antifraud.holds.policy import WARNING_DETECTOR
from antifraud.holds.service import HoldLedger
from antifraud.stack.embedded import Endpoints
from antifraud.stack.worker import WorkerProcess, metric_sum
from antifraud.thresholds import load_thresholds
from streams import topics
from tests.conftest import AUDIT_KEYS, wait_consumed, wait_for
from tests.kafka_helpers import read_all
from tests.test_holds import DAY, atm_transfer, hold_id_for
from tests.test_holds_actions import mule_day
from tests.test_pipeline_integration import alerts_on_topic, produce
from tests.test_transfer_risk import MULE
from tests.test_transfer_risk import T0 as RISK_T0

FLAGGED = "6222000000000888"
"""The payee of 'later': nobody flags it."""


def holds_topic(endpoints: Endpoints) -> list[HoldEvent | PayeeFlagged]:
    return [HOLD_RECORD.validate_json(r.value) for r in read_all(endpoints.kafka_bootstrap, topics.HOLDS, settle=0.5)]


def test_a_live_worker_releases_by_the_wall_clock_warns_about_flagged_payees_and_publishes_moves(
    stack: Endpoints, start_worker: Callable[..., WorkerProcess]
) -> None:
    now = datetime.now(timezone.utc)
    soon = atm_transfer("soon", now - DAY + timedelta(seconds=2))
    later = atm_transfer("later", now - timedelta(hours=1)).model_copy(update={"payee_account": FLAGGED})
    revoke_me = atm_transfer("revoke-me", now - timedelta(hours=1), payer="6222000000000002")
    # A mule the transfer stage flags (three payers, each receipt passed on), paid first at an ATM (held);
    # a transfer to the sender's own name afterwards moves event time past the flag's message to the payee.
    shift = now - timedelta(hours=3) - RISK_T0
    flagging = [t.model_copy(update={"event_time": t.event_time + shift}) for t in mule_day()]
    tick = atm_transfer(
        "tick", max(t.event_time for t in flagging) + timedelta(minutes=5), payee_name="张三", payer="6222000000000003"
    )
    worker = start_worker(ANTIFRAUD_HOLD_CLOCK="wall")
    produce(stack, sorted([soon, later, revoke_me, *flagging, tick], key=lambda t: t.event_time))
    wait_consumed(worker, 4 + len(flagging))

    # The sender revokes at a counter: ledger, audit and outbox in one transaction; the worker's relay publishes.
    async def revoke() -> None:
        client = Redis.from_url(stack.redis_url)
        try:
            await HoldLedger.configured(client, load_thresholds().holds).move(
                AuditLog(client, AUDIT_KEYS),
                hold_id_for("revoke-me"),
                "revoked",
                actor="sender",
                by="teller:li@B001",
                reason="sender asked",
                at=datetime.now(timezone.utc),
            )
        finally:
            await client.aclose()

    asyncio.run(revoke())

    def moves() -> set[tuple[str, str]]:
        return {(r.hold_id, r.to_state if isinstance(r, HoldEvent) else r.kind) for r in holds_topic(stack)}

    expected = {
        (hold_id_for("soon"), "held"),
        (hold_id_for("later"), "held"),
        (hold_id_for("revoke-me"), "held"),
        (hold_id_for("soon"), "released"),
        (hold_id_for("revoke-me"), "revoked"),
        (hold_id_for("in0"), "held"),
        (hold_id_for("in0"), "payee_flagged"),
    }
    wait_for(lambda: moves() >= expected, timeout=60, what=f"hold moves {expected} (worker log {worker.log_path})")

    records = holds_topic(stack)
    assert moves() == expected, "nothing else: 'later' and the revoked hold are not released"
    [released] = [r for r in records if isinstance(r, HoldEvent) and r.to_state == "released"]
    assert released.at == soon.event_time + DAY, "released at its due time, though no transfer came after it"
    [warning] = [r for r in records if isinstance(r, PayeeFlagged)]
    assert (warning.flag.detector, warning.hold.payee_account) == ("mule_account", MULE)
    wait_for(lambda: any(a.detector == WARNING_DETECTOR for a in alerts_on_topic(stack)), what="the warning's alert")
    [alert] = [a for a in alerts_on_topic(stack) if a.detector == WARNING_DETECTOR]
    assert [(a.kind, a.id) for a in alert.audience] == [("atm", "atm-9"), ("bank_risk", None)]


def test_a_producer_whose_clock_runs_ahead_cannot_release_a_hold_early(
    stack: Endpoints, start_worker: Callable[..., WorkerProcess]
) -> None:
    """A transfer stamped 8 minutes ahead (a skewed producer's clock; within what the loop lets through) waits
    for its time: the stream's time, and so the hold clock, does not pass the wall clock, and a hold due in
    3 minutes stays held."""
    now = datetime.now(timezone.utc)
    due_soon = atm_transfer("due-soon", now - DAY + timedelta(minutes=3))
    ahead = atm_transfer("ahead", now + timedelta(minutes=8), payee_name="张三", payer="6222000000000004")
    worker = start_worker()
    produce(stack, [due_soon, ahead])
    wait_consumed(worker, 1)
    time.sleep(3)  # every partition idle (ANTIFRAUD_IDLE_SECONDS, 1 s) and a few rounds more

    async def ledger() -> tuple[str | None, datetime | None]:
        client = Redis.from_url(stack.redis_url)
        try:
            holds = HoldLedger.configured(client, load_thresholds().holds)
            hold = await holds.get(hold_id_for("due-soon"))
            return (hold.state if hold else None), await holds.watermark()
        finally:
            await client.aclose()

    state, clock = asyncio.run(ledger())
    assert state == "held"
    assert clock is not None and clock <= datetime.now(timezone.utc)
    assert metric_sum(worker.scrape(), "antifraud_events_consumed_total") == 1, "the one ahead waits for its time"
