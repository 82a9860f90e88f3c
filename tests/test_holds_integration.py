"""Holds over the real broker and Redis: created, the worker SIGKILLed and restarted, each released once when due."""

import asyncio
import os
import signal
from collections.abc import Callable
from datetime import timedelta

from redis.asyncio import Redis

from antifraud.holds.models import HOLD_RECORD, HoldEvent
from antifraud.stack.embedded import Endpoints
from antifraud.stack.worker import WorkerProcess
from streams import topics
from tests.conftest import wait_consumed, wait_for
from tests.kafka_helpers import read_all
from tests.test_holds import DAY, T0, atm_transfer, hold_id_for
from tests.test_pipeline_integration import produce

HELD = 12


def hold_events(endpoints: Endpoints) -> list[HoldEvent]:
    """The hold moves on the holds topic (payee warnings left out)."""
    records = [HOLD_RECORD.validate_json(r.value) for r in read_all(endpoints.kafka_bootstrap, topics.HOLDS)]
    return [r for r in records if isinstance(r, HoldEvent)]


def test_holds_survive_a_sigkill_and_are_released_once_when_due(
    stack: Endpoints, start_worker: Callable[..., WorkerProcess]
) -> None:
    day_one = [atm_transfer(f"d1-{i}", T0 + timedelta(minutes=5 * i), payer=f"62220000000{i:05d}") for i in range(HELD)]
    first = start_worker()
    produce(stack, day_one)
    wait_consumed(first, HELD)
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait()

    # Half of day one's holds fall due; a day-two hold does not.
    tick = T0 + DAY + timedelta(minutes=5 * (HELD // 2 - 1))
    later = [atm_transfer("tick", tick, payee_name="张三"), atm_transfer("d2", tick, payer="6222000000099999")]
    second = start_worker()
    produce(stack, later)
    wait_consumed(second, len(later))
    due_by_tick = {hold_id_for(t.event_id) for t in day_one if t.event_time + DAY <= tick}
    wait_for(lambda: {e.hold_id for e in hold_events(stack) if e.to_state == "released"} == due_by_tick,
             what="the holds due by the tick released, and only those")
    os.kill(second.proc.pid, signal.SIGKILL)
    second.proc.wait()

    # Past every due time: the rest are released, none twice.
    third = start_worker()
    produce(stack, [atm_transfer("end", T0 + 3 * DAY, payee_name="张三")])
    wait_consumed(third, 1)
    wait_for(lambda: len({e.hold_id for e in hold_events(stack) if e.to_state == "released"}) == HELD + 1,
             what="every hold released")

    events = hold_events(stack)
    created = {e.hold_id for e in events if e.to_state == "held"}
    assert created == {hold_id_for(t.event_id) for t in day_one} | {hold_id_for("d2")}
    released: dict[str, set[str]] = {}
    for event in events:
        if event.to_state == "released":
            released.setdefault(event.hold_id, set()).add(event.transition_id)
            assert event.at == event.hold.due_at
    assert set(released) == created and all(len(ids) == 1 for ids in released.values())

    async def states() -> set[bytes]:
        client = Redis.from_url(stack.redis_url)
        try:
            return {await client.hget(f"hold:{h}", "state") for h in created}
        finally:
            await client.aclose()

    assert asyncio.run(states()) == {b"released"}
