"""Listings survive a crash of Redis: a redis-server with AOF is killed (SIGKILL) and restarted on its data."""

import asyncio
from datetime import timedelta

from redis.asyncio import Redis

from antifraud.audit.service import AuditLog
from antifraud.credit.models import Listing, ListingDraft, ObjectionFiling
from antifraud.credit.service import CreditBlacklist
from antifraud.outbox import STREAM
from antifraud.state.keys import BLACKLIST
from tests.conftest import AUDIT_KEYS
from tests.credit_helpers import ACCOUNT, LIMITS, PERSON, T0
from tests.redis_helpers import AofRedis, aof_redis  # noqa: F401 - the fixture


async def _list_and_object(url: str) -> Listing:
    async with Redis.from_url(url) as redis:
        blacklist = CreditBlacklist(redis, AuditLog(redis, AUDIT_KEYS), LIMITS)
        draft = ListingDraft.model_validate(
            {
                "party": {"kind": "id_number", "id": PERSON},
                "case_id": "case-9",
                "reason_code": "telecom_fraud",
                "reason": "convicted of telecom fraud",
                "evidence": ["judgment:2026-001"],
                "accounts": [ACCOUNT],
            }
        )
        listing, _ = await blacklist.add(draft, actor="officer", now=T0)
        return await blacklist.object(
            listing.listing_id,
            ObjectionFiling(party_id=PERSON, grounds="appeal pending"),
            actor="teller",
            now=T0 + timedelta(days=1),
        )


async def _read_back(url: str, listing_id: str) -> tuple[Listing, list[Listing], set[bytes], int, bool]:
    async with Redis.from_url(url) as redis:
        audit = AuditLog(redis, AUDIT_KEYS)
        blacklist = CreditBlacklist(redis, audit, LIMITS)
        now = T0 + timedelta(days=2)
        return (
            await blacklist.get(listing_id, now=now),
            await blacklist.find("account", ACCOUNT, now=now),
            await redis.smembers(BLACKLIST.key()),
            await redis.xlen(STREAM),
            (await audit.verify()).ok,
        )


def test_listings_their_indexes_audit_and_outbox_survive_a_redis_crash(aof_redis: AofRedis) -> None:
    before = asyncio.run(_list_and_object(aof_redis.url))
    aof_redis.crash()
    aof_redis.start()
    listing, by_account, feed, queued, chain_ok = asyncio.run(_read_back(aof_redis.url, before.listing_id))
    assert listing == before and listing.state == "objected"
    assert [x.listing_id for x in by_account] == [before.listing_id]
    assert feed == {ACCOUNT.encode()}
    assert queued == 2  # the topic records not yet relayed are still queued
    assert chain_ok
