"""The hold ledger through the worker's engine on a real redis-server: each hold made once and released once,
at its due time by event time; a transfer dated far ahead of the clock moves nothing.

(A crash between a batch and its checkpoint, and two workers at once, are shown over the real broker by
``tests/test_determinism.py``: state, timers and offsets land in one transaction.)"""

import asyncio
import math
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

from aiokafka import ConsumerRecord
from redis.asyncio import Redis

from antifraud.holds.models import HoldEvent
from antifraud.holds.service import HoldLedger
from antifraud.thresholds import load_thresholds
from streams import topics
from streams.loop import decode_record
from streams.progress import Partitioning
from streams.records import Rejected
from tests.stream_helpers import run_stream
from tests.test_holds import DAY, T0, atm_transfer, hold_id_for

LIMITS = load_thresholds().holds


def test_a_transfer_twice_makes_one_hold_released_once_when_due(redis_url: str) -> None:
    transfer = atm_transfer("t-1", T0)

    async def go() -> list[HoldEvent]:
        client = Redis.from_url(redis_url)
        try:
            events = []
            for batch, until in (([transfer], T0 + DAY / 2), ([transfer], T0 + DAY * 2)):
                sink = await run_stream(client, batch, until=until.timestamp())
                events += [HoldEvent.model_validate_json(v) for v in sink.on(topics.HOLDS)]
            assert await HoldLedger.configured(client, LIMITS).counts() == {
                "held": 0, "released": 1, "revoked": 0, "frozen": 0, "returned": 0}
            return events
        finally:
            await client.aclose()

    events = asyncio.run(go())
    assert [e.to_state for e in events if e.to_state == "released"] == ["released"]
    assert {e.transition_id for e in events if e.to_state == "held"} == {events[0].transition_id}, "one hold, one id"


def test_a_fast_replay_of_three_days_releases_each_hold_once_at_its_due_time(redis_url: str) -> None:
    # A transfer every 7 minutes for 3 days; every third one to the sender's own name (no hold).
    transfers = [
        atm_transfer(f"t-{i}", T0 + timedelta(minutes=7 * i), payee_name="张三" if i % 3 == 0 else "李四",
                     payer=f"62220000000{i % 5:05d}")
        for i in range(3 * 24 * 60 // 7)
    ]
    held = {hold_id_for(t.event_id): t.event_time + DAY for t in transfers if t.payee_name != "张三"}
    end = transfers[-1].event_time
    events: list[HoldEvent] = []

    async def go() -> None:
        client = Redis.from_url(redis_url)
        try:
            for start in range(0, len(transfers), 37):
                batch = transfers[start: start + 37]
                following = transfers[start + 37].event_time.timestamp() if start + 37 < len(transfers) else \
                    math.nextafter(end.timestamp(), math.inf)
                sink = await run_stream(client, batch, until=following)
                for value in sink.on(topics.HOLDS):
                    event = HoldEvent.model_validate_json(value)
                    assert event.to_state == "held" or event.at.timestamp() < following, "released before due"
                    events.append(event)
        finally:
            await client.aclose()

    asyncio.run(go())
    assert Counter(e.to_state for e in events) == {"held": len(held), "released": sum(d <= end for d in held.values())}
    releases = {e.hold_id: e.at for e in events if e.to_state == "released"}
    assert releases == {h: due for h, due in held.items() if due <= end}
    assert len({e.transition_id for e in events}) == len(events)


def test_a_transfer_stamped_in_the_future_is_refused_before_it_moves_time() -> None:
    """A broken clock's transfer dated years ahead would move time on for every entity (releasing every
    hold); the loop dead-letters it instead."""
    transfer = atm_transfer("from-2099", datetime(2099, 1, 1, tzinfo=timezone.utc))
    topic = topics.INPUT_TOPICS["bank_transfer"]
    partitioning = Partitioning({topic: 1})
    message = ConsumerRecord(topic, 0, 7, 0, 0, transfer.payer_account.encode(), transfer.model_dump_json().encode(),
                             None, 0, 0, [])
    latest = time.time() + LIMITS.max_event_time_ahead_minutes * 60
    refused = decode_record(message, partitioning, 1 << 20, -math.inf, latest)
    assert isinstance(refused, Rejected) and refused.error.kind == "from_the_future"
    fine = decode_record(message, partitioning, 1 << 20, -math.inf, transfer.event_time.timestamp())
    assert not isinstance(fine, Rejected)
