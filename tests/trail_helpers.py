"""Transfers written to the money-trail index as the transfer stage writes them (its fact table)."""

from collections.abc import Sequence

from redis.asyncio import Redis

from antifraud.events.models import BankTransfer
from antifraud.holds.policy import needs_hold
from antifraud.state.money_trail import TrailEntry
from antifraud.thresholds import load_thresholds
from detectors.money_trail import Transfer
from streams.stages import BankingFacts


async def index_transfers(redis: Redis, transfers: Sequence[BankTransfer]) -> None:
    thresholds = load_thresholds()
    trail = BankingFacts(redis, thresholds, thresholds.stream.cross_entity_delay_seconds).trail
    for t in transfers:
        at = t.event_time.timestamp()
        entry = TrailEntry(Transfer(t.event_id, t.payer_account, t.payee_account, t.amount_fen, at), needs_hold(t))
        trail.apply(trail.add(t.payer_account, at, entry).change)
    async with redis.pipeline(transaction=True) as pipe:
        trail.queue(pipe)
        await pipe.execute()
