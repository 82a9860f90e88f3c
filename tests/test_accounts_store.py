"""The account registry and the banking stages on a real redis-server: round trip, bounded keys,
idempotent writes, and card openings feeding card-trade alerts through ``build_stages``."""

import asyncio

from redis.asyncio import Redis

from antifraud.state.accounts import FLAG_PREFIX, PREFIX, AccountRegistry, BulkOpeners, info_of
from antifraud.thresholds import load_thresholds
from detectors import card_opening, card_trade
from streams.batch import run_stages
from streams.stages import build_stages
from tests.test_card_opening import BANKS, ID, card
from tests.test_card_trade import CARD, HOLDER, OLD, OPENING, paid, person

THRESHOLDS = load_thresholds()


def test_registry_round_trip_is_bounded_and_idempotent(redis_url: str) -> None:
    async def run() -> None:
        client = Redis.from_url(redis_url)
        registry = AccountRegistry(client, horizon_days=365)
        try:
            assert await registry.opened([]) == {}
            assert await registry.opened([CARD, OLD]) == {}
            await registry.record([OPENING])
            await registry.record([OPENING])
            assert await registry.opened([CARD, OLD, CARD]) == {CARD: info_of(OPENING)}
            assert await client.keys(PREFIX + "*") == [(PREFIX + CARD).encode()]
            assert 364 * 86400 < await client.ttl(PREFIX + CARD) <= 365 * 86400
            info = (await registry.opened([CARD]))[CARD]
            assert info.opened_within(OPENING.event_time.timestamp() + 86400, days=30)
            assert not info.opened_within(OPENING.event_time.timestamp() + 31 * 86400, days=30)
        finally:
            await client.aclose()

    asyncio.run(run())


def test_bulk_openers_keep_the_first_flag_bounded(redis_url: str) -> None:
    async def run() -> None:
        client = Redis.from_url(redis_url)
        openers = BulkOpeners(client, ttl_days=365)
        try:
            assert await openers.flagged([]) == {}
            await openers.flag({})
            await openers.flag({HOLDER: 100.0})
            await openers.flag({HOLDER: 200.0})
            assert await openers.flagged([HOLDER, person(1), HOLDER]) == {HOLDER: 100.0}
            assert await client.keys(FLAG_PREFIX + "*") == [(FLAG_PREFIX + HOLDER).encode()]
            assert 364 * 86400 < await client.ttl(FLAG_PREFIX + HOLDER) <= 365 * 86400
        finally:
            await client.aclose()

    asyncio.run(run())


def test_stages_turn_openings_and_receipts_into_alerts_once_even_on_replay(redis_url: str) -> None:
    openings = [OPENING] + [card(i, i * 0.5, BANKS[i]) for i in range(3)]
    receipts = [paid(i, 2 + i * 0.3, person(i)) for i in range(4)] + [paid(99, 1, person(99), payee=OLD)]

    async def run() -> None:
        client = Redis.from_url(redis_url)
        stages = build_stages(client, THRESHOLDS)
        try:
            # A crash before the flush replays the batch on the same state: the same alerts.
            first = await run_stages(stages["card_opening"], openings)
            assert [a.detector for a in first.alerts] == [card_opening.DETECTOR]
            assert [a.alert_id for a in (await run_stages(stages["card_opening"], openings)).alerts] == \
                [a.alert_id for a in first.alerts]
            await first.flush_state()
            # Receipts judged after the openings' state is flushed.
            paid_out = await run_stages(stages["bank_transfer"], receipts)
            trade = [a for a in paid_out.alerts if a.detector == card_trade.DETECTOR]
            # The holder was flagged for bulk opening: the card alerts at its first stranger's receipt.
            assert [(a.entity.value, a.window_end) for a in trade] == [(CARD, receipts[0].event_time)]
            await paid_out.flush_state()
            # A crash after the flush replays on the new state: no alert again, state unchanged.
            snapshot = {key: await client.hgetall(key) for key in await client.keys("card*")}
            flag = await client.get(FLAG_PREFIX + ID)
            assert flag is not None
            assert (await run_stages(stages["card_opening"], openings)).alerts == []
            again = await run_stages(stages["bank_transfer"], receipts)
            assert [a for a in again.alerts if a.detector == card_trade.DETECTOR] == []
            await again.flush_state()
            assert {key: await client.hgetall(key) for key in await client.keys("card*")} == snapshot
            assert await client.get(FLAG_PREFIX + ID) == flag
            assert 0 < await client.ttl("cardtrade:" + CARD) <= 2 * THRESHOLDS.card_trade.new_account_days * 86400
            assert 0 < await client.ttl("cardopen:" + openings[1].id_number) <= 365 * 86400
        finally:
            await client.aclose()

    asyncio.run(run())
