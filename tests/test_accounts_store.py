"""The account registry and the bulk openers on a real redis-server, written as the card-opening stage
writes them (facts, through the engine): round trip, bounded keys, idempotent writes, the first flag
kept; and card openings feeding card-trade alerts through the stages, once even on replay."""

from datetime import timedelta

from redis.asyncio import Redis

from antifraud.alerts.models import Alert
from antifraud.state import keys
from antifraud.state.accounts import opening
from antifraud.state.store import Store
from antifraud.thresholds import load_thresholds
from detectors import card_opening, card_trade
from streams.stages import BankingFacts
from streams.topics import ALERTS
from tests.redis_helpers import on_redis
from tests.stream_helpers import ListSink, run_stream
from tests.test_card_opening import BANKS, ID, card
from tests.test_card_trade import CARD, HOLDER, OLD, OPENING, T0, info_of, paid, person

THRESHOLDS = load_thresholds()
DELAY = THRESHOLDS.stream.cross_entity_delay_seconds
HORIZON = THRESHOLDS.account_registry.horizon_days * 86400
OPENERS = THRESHOLDS.card_opening.history_days * 86400


async def checkpoint(client: Redis, *stores: Store) -> None:
    async with client.pipeline(transaction=True) as pipe:
        for store in stores:
            store.queue(pipe)
        await pipe.execute()
    for store in stores:
        store.committed()


def alerts_of(sink: ListSink, detector: str) -> list[Alert]:
    return [a for v in sink.on(ALERTS) if (a := Alert.model_validate_json(v)).detector == detector]


def test_registry_round_trip_is_bounded_and_idempotent(redis_url: str) -> None:
    async def body(client: Redis) -> None:
        assert await opening(client, CARD) is None
        await run_stream(client, [OPENING])
        await run_stream(client, [OPENING])  # the same opening again (a replay): one fact
        assert await opening(client, CARD) == info_of(OPENING)
        assert await opening(client, OLD) is None
        assert await client.zcard(keys.OPENED.key(CARD)) == 1
        assert HORIZON - 60 < await client.ttl(keys.OPENED.key(CARD)) <= HORIZON
        info = await opening(client, CARD)
        assert info is not None
        assert info.opened_within(OPENING.event_time.timestamp() + 86400, days=30)
        assert not info.opened_within(OPENING.event_time.timestamp() + 31 * 86400, days=30)
        # The banking stages see it only the cross-entity delay after the opening.
        facts = BankingFacts(client, THRESHOLDS, DELAY)
        await facts.opened.ensure([CARD])
        at = OPENING.event_time.timestamp()
        assert facts.opened.visible(CARD, at + DELAY - 1) == []
        assert facts.opened.visible(CARD, at + DELAY) == [info_of(OPENING)]

    on_redis(redis_url, body)


def test_bulk_openers_keep_the_first_flag_bounded(redis_url: str) -> None:
    async def body(client: Redis) -> None:
        for at in (200.0, 100.0, 300.0):  # flags written by three batches, one a late one
            writer = BankingFacts(client, THRESHOLDS, DELAY).bulk_openers
            writer.apply(writer.add(HOLDER, at, at).change)
            await checkpoint(client, writer)
        reader = BankingFacts(client, THRESHOLDS, DELAY).bulk_openers
        await reader.ensure([HOLDER, person(1)])
        assert reader.visible(HOLDER, 1000.0) == [100.0]
        assert reader.visible(person(1), 1000.0) == []
        assert await client.zcard(keys.BULK_OPENERS.key(HOLDER)) == 1
        assert OPENERS - 60 < await client.ttl(keys.BULK_OPENERS.key(HOLDER)) <= OPENERS

    on_redis(redis_url, body)


def test_stages_turn_openings_and_receipts_into_alerts_once_even_on_replay(redis_url: str) -> None:
    openings = [OPENING] + [card(i, i * 0.5, BANKS[i]) for i in range(3)]
    receipts = [paid(i, 2 + i * 0.3, person(i)) for i in range(4)] + [paid(99, 1, person(99), payee=OLD)]
    opened_until = (T0 + timedelta(days=1, minutes=5)).timestamp()
    paid_until = (T0 + timedelta(days=4)).timestamp()

    async def body(client: Redis) -> None:
        first = await run_stream(client, openings, until=opened_until)
        [bulk] = alerts_of(first, card_opening.DETECTOR)
        assert bulk.entity.value == ID == HOLDER
        facts = BankingFacts(client, THRESHOLDS, DELAY)
        await facts.bulk_openers.ensure([ID])
        assert facts.bulk_openers.visible(ID, opened_until) == [bulk.window_end.timestamp()]

        # Receipts judged by a worker that reads the openings from Redis: the holder was flagged for bulk
        # opening, so the card alerts at its first stranger's receipt; the old account is never judged.
        paid_out = await run_stream(client, receipts, until=paid_until)
        [trade] = alerts_of(paid_out, card_trade.DETECTOR)
        assert (trade.entity.value, trade.window_end, trade.trigger) == (CARD, receipts[0].event_time, "tx-000")
        assert {r.feature for r in trade.reasons} >= {"holder_flagged_bulk_opener"}
        await facts.flags.table.ensure([CARD])
        flags = facts.flags.table.visible(CARD, paid_until)  # (its payers' transfers scored too)
        assert [f.alert_id for f in flags if f.detector == card_trade.DETECTOR] == [trade.alert_id]

        # A replay of both (a crash after the checkpoint): no alert again, the state unchanged.
        state_keys = [keys.WINDOWS_CARD.key(ID), keys.WINDOWS_CARD_TRADE.key(CARD)]
        snapshot = {key: await client.hgetall(key) for key in state_keys}
        assert all(snapshot.values())
        facts_before = {
            key: await client.zrange(key, 0, -1, withscores=True)
            for key in (keys.BULK_OPENERS.key(ID), keys.FLAGS.key(CARD), keys.OPENED.key(CARD))
        }
        assert alerts_of(await run_stream(client, openings, until=paid_until + 1), card_opening.DETECTOR) == []
        assert alerts_of(await run_stream(client, receipts, until=paid_until + 2), card_trade.DETECTOR) == []
        assert {key: await client.hgetall(key) for key in state_keys} == snapshot
        assert {key: await client.zrange(key, 0, -1, withscores=True) for key in facts_before} == facts_before
        assert (
            0
            < await client.ttl(keys.WINDOWS_CARD_TRADE.key(CARD))
            <= 2 * THRESHOLDS.card_trade.new_account_days * 86400
        )
        assert 0 < await client.ttl(keys.WINDOWS_CARD.key(openings[1].id_number)) <= OPENERS

    on_redis(redis_url, body)
