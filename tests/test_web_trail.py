"""The money trail view the console draws: from an account's outgoing transfers, hop by hop, reading only."""

import asyncio
from datetime import datetime, timedelta, timezone

from redis.asyncio import Redis

from antifraud.events.models import BankTransfer
from antifraud.stack.embedded import Endpoints
from tests.trail_helpers import index_transfers
from tests.web_helpers import as_user, web_client

START = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)
MULE, HOP, CASH, OWN = "6222000000000666", "6222000000000777", "6222000000000888", "6222000000000999"


def transfer(event_id: str, payer: str, payee: str, fen: int, minutes: int) -> BankTransfer:
    return BankTransfer(
        event_id=event_id,
        event_time=START + timedelta(minutes=minutes),
        channel="mobile",
        payer_account=payer,
        payer_name="李强",
        payer_id_number="320585199001011235",
        payee_account=payee,
        payee_name="赵六",
        amount_fen=fen,
    )


def test_the_trail_follows_the_money_from_an_account_and_changes_nothing(stack: Endpoints) -> None:
    async def record() -> None:
        client = Redis.from_url(stack.redis_url)
        await index_transfers(
            client,
            [
                transfer("t1", MULE, HOP, 3_000_000, 10),
                transfer("t2", HOP, CASH, 1_000_000, 20),
                transfer("t3", OWN, MULE, 500_000, 5),
            ],
        )
        await client.aclose()

    asyncio.run(record())
    query = {"account": MULE, "since": START.isoformat(), "until": (START + timedelta(hours=1)).isoformat()}
    with web_client(stack) as client:
        before = client.get("/api/holds?state=frozen", headers=as_user("analyst")).json()
        view = client.get("/api/trail", params=query, headers=as_user("analyst")).json()
        assert client.get("/api/holds?state=frozen", headers=as_user("analyst")).json() == before == []
    assert [
        (n["account"], n["hop"], n["received_fen"], n["passed_on_fen"], n["retained_fen"]) for n in view["nodes"]
    ] == [
        (MULE, 0, 0, 3_000_000, 0),
        (HOP, 1, 3_000_000, 1_000_000, 2_000_000),
        (CASH, 2, 1_000_000, 0, 1_000_000),
    ]
    assert [(e["event_id"], e["payer"], e["payee"], e["tainted_fen"], e["hop"]) for e in view["edges"]] == [
        ("t1", MULE, HOP, 3_000_000, 1),
        ("t2", HOP, CASH, 1_000_000, 2),
    ]
