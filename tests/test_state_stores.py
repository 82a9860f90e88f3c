"""The two kinds of detector state against a real redis-server: owned state written through and read back
as it was kept in memory, and facts read only the cross-entity delay after their time."""

from redis.asyncio import Redis

from antifraud.state import keys
from antifraud.state.store import FactTable, OwnedStore, Staged
from antifraud.state.transfer_risk import InflowCodec, account_codec
from antifraud.thresholds import load_thresholds
from detectors.transfer_risk import Account, AccountChange, Flow, add_outflow
from tests.redis_helpers import on_redis

LIMITS = load_thresholds().transfer_risk
T0 = 1_772_400_000.0
DELAY = 30.0


async def checkpoint(client: Redis, *stores: OwnedStore[Account, AccountChange] | FactTable[Flow]) -> None:
    """What the checkpoint does with stores: queue every write in one transaction, then commit."""
    async with client.pipeline(transaction=True) as pipe:
        for store in stores:
            store.queue(pipe)
        await pipe.execute()
    for store in stores:
        store.committed()


def outflow(n: int, at: float) -> Flow:
    return Flow(f"t{n}", at, f"62220000000{n:05d}", 100_000 + n, "mobile", False)


def apply(change: Staged) -> None:
    change.store.apply(change.change)


def test_owned_state_written_through_reads_back_as_it_was_kept(redis_url: str) -> None:
    async def body(client: Redis) -> None:
        store = OwnedStore(client, account_codec(LIMITS))
        await store.ensure(["payer"])
        account = store.get("payer")
        assert account == Account()
        flows = [outflow(n, T0 + n) for n in range(3)]
        for flow in flows:
            add_outflow(account, flow, LIMITS)
        account.quiet_until = T0 + 600
        apply(store.stage("payer", account, AccountChange(added=flows, quiet_until=T0 + 600)))
        await checkpoint(client, store)
        again = OwnedStore(client, account_codec(LIMITS))
        await again.ensure(["payer", "nobody"])
        assert again.get("payer") == account
        assert again.get("nobody") == Account()

    on_redis(redis_url, body)


def test_a_dropped_batch_leaves_memory_as_redis_has_it(redis_url: str) -> None:
    async def body(client: Redis) -> None:
        store = OwnedStore(client, account_codec(LIMITS))
        await store.ensure(["payer"])
        account = store.get("payer")
        add_outflow(account, outflow(1, T0), LIMITS)  # advanced in place by a batch that is then dropped
        store.discard()
        await store.ensure(["payer"])
        assert store.get("payer") == Account()

    on_redis(redis_url, body)


def test_facts_are_seen_only_the_delay_after_their_time(redis_url: str) -> None:
    async def body(client: Redis) -> None:
        def table() -> FactTable[Flow]:
            return FactTable(
                client,
                keys.INFLOWS,
                InflowCodec(),
                delay=DELAY,
                keep_seconds=3600,
                margin_seconds=2 * DELAY,
                ttl_seconds=86400,
            )

        writer = table()
        early, late = (
            Flow("p1", T0, "payer-1", 500_000, "mobile", False),
            Flow("p2", T0 + 10, "payer-2", 1, "atm", True),
        )
        for flow in (early, late):
            apply(writer.add("payee", flow.at, flow))
        await checkpoint(client, writer)
        reader = table()
        await reader.ensure(["payee"])
        assert reader.visible("payee", T0 + DELAY - 1) == []
        assert reader.visible("payee", T0 + DELAY) == [early]
        assert reader.visible("payee", T0 + 10 + DELAY) == [early, late]

    on_redis(redis_url, body)


def test_facts_older_than_kept_before_the_newest_are_trimmed(redis_url: str) -> None:
    async def body(client: Redis) -> None:
        writer = FactTable(
            client, keys.INFLOWS, InflowCodec(), delay=DELAY, keep_seconds=100, margin_seconds=0, ttl_seconds=86400
        )
        old, new = Flow("p1", T0, "a", 1, "mobile", False), Flow("p2", T0 + 500, "b", 1, "mobile", False)
        for flow in (old, new):
            apply(writer.add("payee", flow.at, flow))
        await checkpoint(client, writer)
        assert await client.zcard(keys.INFLOWS.key("payee")) == 1
        assert 0 < await client.ttl(keys.INFLOWS.key("payee")) <= 86400

    on_redis(redis_url, body)
