"""The worker publishes every listing change on the blacklist topic and expires listings by its sweep."""

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from redis.asyncio import Redis

from antifraud.audit.service import AuditLog
from antifraud.credit.models import ListingDraft, ObjectionDecision, ObjectionFiling
from antifraud.credit.service import CreditBlacklist
from antifraud.stack.embedded import Endpoints
from antifraud.stack.worker import WorkerProcess
from antifraud.state.keys import BLACKLIST
from antifraud.thresholds import load_thresholds
from streams.topics import CREDIT_BLACKLIST
from tests.conftest import AUDIT_KEYS, wait_for
from tests.credit_helpers import OTHER_PERSON, PERSON
from tests.kafka_helpers import read_all

pytestmark = pytest.mark.integration

SHORT_ACCOUNT, WRONG_ACCOUNT = "6222000000000111", "6222000000000222"


def _draft(party_id: str, case_id: str, account: str, expires_at: datetime | None = None) -> ListingDraft:
    return ListingDraft.model_validate(
        {
            "party": {"kind": "id_number", "id": party_id},
            "case_id": case_id,
            "reason_code": "card_account_trade",
            "reason": "sold cards",
            "evidence": ["alert:a"],
            "accounts": [account],
            "expires_at": expires_at,
        }
    )


async def _changes(redis_url: str) -> tuple[str, str]:
    async with Redis.from_url(redis_url) as redis:
        blacklist = CreditBlacklist(redis, AuditLog(redis, AUDIT_KEYS), load_thresholds().credit_blacklist)
        now = datetime.now(timezone.utc)
        short, _ = await blacklist.add(
            _draft(PERSON, "case-1", SHORT_ACCOUNT, now + timedelta(seconds=3)), actor="officer", now=now
        )
        wrong, _ = await blacklist.add(_draft(OTHER_PERSON, "case-2", WRONG_ACCOUNT), actor="officer", now=now)
        await blacklist.object(
            wrong.listing_id, ObjectionFiling(party_id=OTHER_PERSON, grounds="not me"), actor="teller", now=now
        )
        await blacklist.decide(
            wrong.listing_id, 1, ObjectionDecision(decision="correct", note="wrong person"), actor="reviewer", now=now
        )
        return short.listing_id, wrong.listing_id


async def _feed(redis_url: str) -> set[bytes]:
    async with Redis.from_url(redis_url) as redis:
        return await redis.smembers(BLACKLIST.key())


def test_changes_reach_the_topic_and_the_sweep_expires_a_listing(
    stack: Endpoints, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    short, wrong = asyncio.run(_changes(stack.redis_url))
    assert asyncio.run(_feed(stack.redis_url)) == {SHORT_ACCOUNT.encode()}
    start_worker(ANTIFRAUD_BLACKLIST_SWEEP_SECONDS="0.5")

    def published() -> list[dict[str, object]]:
        return [json.loads(r.value) for r in read_all(stack.kafka_bootstrap, CREDIT_BLACKLIST, settle=0.5)]

    wait_for(lambda: len(published()) >= 5, timeout=90, what="5 listing changes on the blacklist topic")
    records = list({r["change_id"]: r for r in published()}.values())  # at least once: drop repeats by id
    assert sorted((r["listing_id"], r["move"]) for r in records) == sorted(
        [(short, "list"), (short, "expire"), (wrong, "list"), (wrong, "object"), (wrong, "remove")]
    )
    [expiry] = [r for r in records if r["move"] == "expire"]
    assert expiry["actor"] == "system:expiry"
    assert asyncio.run(_feed(stack.redis_url)) == set()
