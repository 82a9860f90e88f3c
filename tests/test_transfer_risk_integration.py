"""Call-then-transfer over the real broker and Redis: a listed number calls, the person called pays at a counter."""

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from antifraud.events.models import BankTransfer, CallRecord
from antifraud.stack.embedded import Endpoints
from antifraud.stack.worker import WorkerProcess
from tests.conftest import wait_consumed, wait_for
from tests.test_pipeline_integration import alerts_on_topic, block_number, produce

LISTED = "17055550009"
VICTIM_PHONE = "13900000001"
MULE = "6222000000000666"


def test_a_counter_transfer_after_a_call_from_a_listed_number_warns_the_branch(
    stack: Endpoints, start_worker: Callable[..., WorkerProcess]
) -> None:
    # Event times in the recent past: the worker dead-letters records dated further ahead of its clock than
    # [holds] max_event_time_ahead_minutes (event_time_out_of_range), so none may lie ahead of now.
    now = datetime.now(timezone.utc).replace(microsecond=0)
    block_number(stack, LISTED, "case-9")
    worker = start_worker()
    call = CallRecord(
        event_id="call-1",
        event_time=now - timedelta(minutes=40),
        caller=LISTED,
        callee=VICTIM_PHONE,
        start=now - timedelta(minutes=60),
        duration_s=1200,
        cell_id="cell-1",
        imei="860000000000001",
    )
    produce(stack, [call])
    wait_consumed(worker, 1)
    paid = BankTransfer(
        event_id="pay-1",
        event_time=now - timedelta(minutes=10),
        channel="counter",
        payer_account="6222000000000001",
        payer_name="王芳",
        payer_id_number="320585198609013410",
        payee_account=MULE,
        payee_name="李强",
        amount_fen=3_000_000,
        branch_id="br-017",
        payer_phone=VICTIM_PHONE,
    )
    produce(stack, [paid])  # type: ignore[list-item]
    wait_for(lambda: any(a.entity.value == MULE for a in alerts_on_topic(stack)), what="an alert on the payee")
    [alert] = [a for a in alerts_on_topic(stack) if a.entity.value == MULE]
    assert (alert.detector, alert.entity.kind, alert.severity) == ("transfer_risk", "account", "critical")
    assert ("branch", "br-017") in {(a.kind, a.id) for a in alert.audience}
    reasons = {r.feature: r.value for r in alert.reasons}
    assert {"call_before_hours_max", "flagged_call_minutes", "new_payee"} <= set(reasons)
    assert (reasons["call_before_hours_max"], reasons["flagged_call_minutes"]) == (0.5, 20.0)
    assert alert.evidence_event_ids == ["pay-1"]
    text = "".join(f"{name}{labels}" for name, labels in worker.scrape())
    assert VICTIM_PHONE not in text and MULE not in text
