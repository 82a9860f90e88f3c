"""Listings survive a crash of Redis: a redis-server with AOF is killed (SIGKILL) and restarted on its data."""

import asyncio
import signal
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from redis.asyncio import Redis

from antifraud.audit.service import AuditLog
from antifraud.credit.models import Listing, ListingDraft, ObjectionFiling
from antifraud.credit.service import CreditBlacklist
from antifraud.events.types import make_id_number
from antifraud.outbox import STREAM
from antifraud.stack.embedded import redis_answers, redis_server_binary
from antifraud.stack.process import free_port, spawn, stop
from antifraud.state.transfer_risk import BLACKLIST
from antifraud.thresholds import load_thresholds
from tests.conftest import wait_for

LIMITS = load_thresholds().credit_blacklist
T0 = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
PERSON = make_id_number("320585", "19900101", 7)
ACCOUNT = "6222000000000999"


class AofRedis:
    """A redis-server of this test's own, fsyncing every write to its AOF, restartable on the same folder."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data),
                "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no"]
        self.proc = spawn(argv, log_path=self.data / "redis.log")
        wait_for(lambda: redis_answers(self.url), 30, "redis-server to answer")

    def crash(self) -> None:
        """SIGKILL: no shutdown, no final save; only what the AOF already holds survives."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[AofRedis]:
    server = AofRedis(tmp_path)
    server.start()
    yield server
    if server.proc is not None:
        stop(server.proc)


async def _list_and_object(url: str) -> Listing:
    async with Redis.from_url(url) as redis:
        blacklist = CreditBlacklist(redis, AuditLog(redis), LIMITS)
        draft = ListingDraft.model_validate({
            "party": {"kind": "id_number", "id": PERSON}, "case_id": "case-9", "reason_code": "telecom_fraud",
            "reason": "convicted of telecom fraud", "evidence": ["judgment:2026-001"], "accounts": [ACCOUNT]})
        listing, _ = await blacklist.add(draft, actor="officer", now=T0)
        return await blacklist.object(listing.listing_id, ObjectionFiling(party_id=PERSON, grounds="appeal pending"),
                                      actor="teller", now=T0 + timedelta(days=1))


async def _read_back(url: str, listing_id: str) -> tuple[Listing, list[Listing], set[bytes], int, bool]:
    async with Redis.from_url(url) as redis:
        audit = AuditLog(redis)
        blacklist = CreditBlacklist(redis, audit, LIMITS)
        now = T0 + timedelta(days=2)
        return (await blacklist.get(listing_id, now=now), await blacklist.find("account", ACCOUNT, now=now),
                await redis.smembers(BLACKLIST), await redis.xlen(STREAM), (await audit.verify()).ok)


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
