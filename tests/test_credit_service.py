"""The credit blacklist over a real redis-server: flows end to end, indexes, the accounts feed, audit and outbox."""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from redis.asyncio import Redis

from antifraud.audit.service import AuditLog
from antifraud.credit.models import (
    Amendment,
    BadPeriod,
    CapReached,
    IllegalTransition,
    ListingExists,
    ListingNotFound,
    ObjectionClosed,
    ObjectionDecision,
    ObjectionFiling,
    RepairRefused,
    RepairRequest,
)
from antifraud.credit.policy import years_after
from antifraud.credit.service import CreditBlacklist, list_from_case
from antifraud.outbox import STREAM
from antifraud.state.keys import BLACKLIST, LISTINGS_OBJECTED
from streams.topics import CREDIT_BLACKLIST
from tests.conftest import AUDIT_KEYS
from tests.credit_helpers import ACCOUNT, COMPANY, LIMITS, OTHER_PERSON, PERSON, PHONE, T0, confirmed_case, draft

BATCH = 1000
"""Listings one sweep call takes at most (the worker's ANTIFRAUD_BLACKLIST_SWEEP_BATCH)."""
SHARED_ACCOUNT = "6222000000000777"
REPAIR = RepairRequest(
    conditions=("behaviour_corrected", "effects_removed", "training_completed"),
    evidence=("doc:repaid",),
    note="victims repaid, training done",
)


class World:
    """The blacklist under test with raw access to what it wrote."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.audit = AuditLog(redis, AUDIT_KEYS)
        self.blacklist = CreditBlacklist(redis, self.audit, LIMITS)

    async def published(self) -> list[dict[str, Any]]:
        """The outbox records queued for the blacklist topic, oldest first (topic and key checked)."""
        out = []
        for _, fields in await self.redis.xrange(STREAM):
            assert fields[b"topic"].decode() == CREDIT_BLACKLIST
            record = json.loads(fields[b"value"])
            assert fields[b"key"].decode() == record["listing"]["party"]["id"]
            out.append(record)
        return out

    async def actions(self, listing_id: str) -> list[tuple[str, str]]:
        return [(r.action, r.actor) for r in await self.audit.about(f"listing:{listing_id}")]

    async def feed(self) -> set[str]:
        return {a.decode() for a in await self.redis.smembers(BLACKLIST.key())}


def run(redis_url: str, scenario: Callable[[World], Awaitable[None]]) -> None:
    async def go() -> None:
        redis = Redis.from_url(redis_url)
        try:
            await scenario(World(redis))
        finally:
            await redis.aclose()

    asyncio.run(go())


def test_a_listing_is_found_by_party_account_and_phone_feeds_the_detector_and_is_published(redis_url: str) -> None:
    async def scenario(w: World) -> None:
        listing, created = await w.blacklist.add(draft(), actor="officer", now=T0)
        company, _ = await w.blacklist.add(
            draft(COMPANY, "credit_code", accounts=[SHARED_ACCOUNT], phones=[]),
            actor="officer",
            now=T0 + timedelta(hours=1),
        )
        assert created and listing.state == "listed" and listing.listed_by == "officer"
        assert [x.listing_id for x in await w.blacklist.find("id_number", PERSON, now=T0)] == [listing.listing_id]
        assert [x.listing_id for x in await w.blacklist.find("account", ACCOUNT, now=T0)] == [listing.listing_id]
        assert [x.listing_id for x in await w.blacklist.find("phone", PHONE, now=T0)] == [listing.listing_id]
        assert [x.listing_id for x in await w.blacklist.find("credit_code", COMPANY, now=T0)] == [company.listing_id]
        assert await w.blacklist.find("id_number", OTHER_PERSON, now=T0) == []
        assert await w.feed() == {ACCOUNT, SHARED_ACCOUNT}
        [first, second] = await w.published()
        assert (first["change_id"], first["move"], first["to_state"]) == (f"{listing.listing_id}.v1", "list", "listed")
        assert second["listing"]["party"] == {"kind": "credit_code", "id": COMPANY}
        assert await w.actions(listing.listing_id) == [("blacklist.list", "officer")]
        assert (await w.blacklist.get(listing.listing_id, now=T0)) == listing
        assert [x.listing_id for x in await w.blacklist.latest(10, now=T0)] == [company.listing_id, listing.listing_id]
        assert (await w.audit.verify()).ok

    run(redis_url, scenario)


def test_listing_again_from_the_same_case_is_idempotent_and_a_different_one_refused(redis_url: str) -> None:
    async def scenario(w: World) -> None:
        listing = await list_from_case(
            w.blacklist,
            party_id=PERSON.lower(),
            kind="id_number",
            reason="sold bank cards to a fraud team",
            evidence=["alert:a1"],
            case_id="case-1",
            actor="analyst-7",
            accounts=[ACCOUNT],
            phones=[PHONE],
            reason_code="card_account_trade",
            now=T0,
        )
        again, created = await w.blacklist.add(draft(), actor="officer", now=T0 + timedelta(hours=1))
        assert again == listing and not created
        with pytest.raises(ListingExists, match=f"listing {listing.listing_id} \\(listed\\)"):
            await w.blacklist.add(draft(reason="another reason"), actor="officer", now=T0)
        other, created = await w.blacklist.add(draft(case_id="case-2"), actor="officer", now=T0)
        assert created and other.listing_id != listing.listing_id
        assert len(await w.published()) == 2 and len(await w.audit.records()) == 2

    run(redis_url, scenario)


def test_objection_then_correction_removes_the_listing_end_to_end(redis_url: str) -> None:
    async def scenario(w: World) -> None:
        listing, _ = await w.blacklist.add(draft(), actor="officer", now=T0)
        lid = listing.listing_id
        objected = await w.blacklist.object(
            lid,
            ObjectionFiling(party_id=PERSON, grounds="my ID card was stolen", evidence=("doc:police-report-loss",)),
            actor="teller-b001",
            now=T0 + timedelta(days=2),
        )
        assert objected.state == "objected" and await w.feed() == {ACCOUNT}  # in force while under review
        work = await w.blacklist.worklist(T0 + timedelta(days=2), recent_days=7, soon_days=30)
        assert [x.listing_id for x in work.objected] == [lid] and [x.listing_id for x in work.recent] == [lid]
        assert work.ending == [] and work.proposals == []
        await w.redis.delete(LISTINGS_OBJECTED.key())  # as a deployment older than the index has it
        assert (await w.blacklist.worklist(T0 + timedelta(days=2), recent_days=7, soon_days=30)).objected == []
        assert await w.blacklist.index_objected(batch=1) == 1 and await w.blacklist.index_objected() == 1
        assert await w.redis.zrange(LISTINGS_OBJECTED.key(), 0, -1, withscores=True) == [
            (lid.encode(), (T0 + timedelta(days=2)).timestamp())
        ], "by when the objection was filed"
        far = await w.blacklist.worklist(T0 + timedelta(days=2), recent_days=1, soon_days=3650)
        assert far.recent == [] and [x.listing_id for x in far.ending] == [lid], "listed 2 days ago; ends in years"
        assert [x.state for x in await w.blacklist.find("id_number", PERSON, now=T0 + timedelta(days=2))] == [
            "objected"
        ]
        removed = await w.blacklist.decide(
            lid,
            1,
            ObjectionDecision(decision="correct", note="theft confirmed"),
            actor="reviewer",
            now=T0 + timedelta(days=5),
        )
        assert (removed.state, removed.objections[0].state, removed.version) == ("removed", "corrected", 3)
        after = await w.blacklist.worklist(T0 + timedelta(days=5), recent_days=7, soon_days=3650)
        assert after.objected == [] and after.ending == [], "decided and removed: off the worklist"
        assert await w.feed() == set()
        assert await w.blacklist.find("id_number", PERSON, now=T0 + timedelta(days=5)) == []
        assert [
            x.state for x in await w.blacklist.find("account", ACCOUNT, now=T0 + timedelta(days=5), include_ended=True)
        ] == ["removed"]
        assert [(r["move"], r["from_state"], r["to_state"]) for r in await w.published()] == [
            ("list", None, "listed"),
            ("object", "listed", "objected"),
            ("remove", "objected", "removed"),
        ]
        assert await w.actions(lid) == [
            ("blacklist.list", "officer"),
            ("blacklist.object", "teller-b001"),
            ("blacklist.remove", "reviewer"),
        ]
        [*_, last] = await w.audit.about(f"listing:{lid}")
        assert (last.before["state"], last.after["state"], last.event_id) == ("objected", "removed", f"{lid}.v3")
        with pytest.raises(ObjectionClosed):
            await w.blacklist.decide(lid, 1, ObjectionDecision(decision="uphold", note="n"), actor="reviewer", now=T0)
        with pytest.raises(IllegalTransition):
            await w.blacklist.repair(lid, REPAIR, actor="officer", now=T0 + timedelta(days=400))
        assert len(await w.published()) == 3 and len(await w.audit.records()) == 3  # refusals wrote nothing

    run(redis_url, scenario)


def test_objection_upheld_then_amended_drops_only_the_corrected_account(redis_url: str) -> None:
    async def scenario(w: World) -> None:
        listing, _ = await w.blacklist.add(draft(accounts=[ACCOUNT, SHARED_ACCOUNT]), actor="officer", now=T0)
        lid = listing.listing_id
        filing = ObjectionFiling(party_id=PERSON, grounds="one card is my salary card")
        await w.blacklist.object(lid, filing, actor="teller", now=T0 + timedelta(days=1))
        upheld = await w.blacklist.decide(
            lid,
            1,
            ObjectionDecision(decision="uphold", note="the evidence holds"),
            actor="reviewer",
            now=T0 + timedelta(days=2),
        )
        assert upheld.state == "listed"
        await w.blacklist.object(
            lid, filing.model_copy(update={"grounds": "payslips attached"}), actor="teller", now=T0 + timedelta(days=3)
        )
        amended = await w.blacklist.decide(
            lid,
            2,
            ObjectionDecision(decision="correct", note="salary card", amend=Amendment(accounts=(ACCOUNT,))),
            actor="reviewer",
            now=T0 + timedelta(days=4),
        )
        assert (amended.state, amended.accounts, amended.version) == ("listed", (ACCOUNT,), 5)
        assert await w.feed() == {ACCOUNT}
        assert await w.blacklist.find("account", SHARED_ACCOUNT, now=T0, include_ended=True) == []
        assert [x.listing_id for x in await w.blacklist.find("phone", PHONE, now=T0)] == [lid]
        assert [r["move"] for r in await w.published()] == ["list", "object", "uphold", "object", "amend"]

    run(redis_url, scenario)


def test_repair_refused_then_granted_ends_the_listing(redis_url: str) -> None:
    async def scenario(w: World) -> None:
        listing, _ = await w.blacklist.add(draft(), actor="officer", now=T0)
        with pytest.raises(RepairRefused, match="listed for less than"):
            await w.blacklist.repair(listing.listing_id, REPAIR, actor="officer", now=T0 + timedelta(days=100))
        assert (await w.blacklist.get(listing.listing_id, now=T0)).state == "listed" and len(await w.published()) == 1
        when = years_after(T0, LIMITS.min_listed_years_before_repair)
        repaired = await w.blacklist.repair(listing.listing_id, REPAIR, actor="officer", now=when)
        assert (repaired.state, repaired.ended_at) == ("repaired", when)
        assert await w.feed() == set() and await w.blacklist.find("id_number", PERSON, now=when) == []
        assert await w.redis.zscore("credit:expiry", listing.listing_id) is None
        assert [r["move"] for r in await w.published()] == ["list", "repair"]

    run(redis_url, scenario)


def test_expiry_applies_on_read_and_by_sweep_and_a_shared_account_stays_while_named(redis_url: str) -> None:
    async def scenario(w: World) -> None:
        short, _ = await w.blacklist.add(
            draft(accounts=[SHARED_ACCOUNT], expires_at=T0 + timedelta(days=10)), actor="officer", now=T0
        )
        long, _ = await w.blacklist.add(
            draft(OTHER_PERSON, accounts=[SHARED_ACCOUNT, ACCOUNT], expires_at=T0 + timedelta(days=20)),
            actor="officer",
            now=T0,
        )
        assert await w.blacklist.expire_due(T0 + timedelta(days=9), BATCH) == []
        read = await w.blacklist.get(short.listing_id, now=T0 + timedelta(days=10))  # lazily, on read
        assert read.state == "expired"
        assert await w.feed() == {SHARED_ACCOUNT, ACCOUNT}  # the other listing still names it
        [swept] = await w.blacklist.expire_due(T0 + timedelta(days=21), BATCH)
        assert (swept.listing_id, swept.state) == (long.listing_id, "expired")
        assert await w.feed() == set()
        assert await w.blacklist.expire_due(T0 + timedelta(days=30), BATCH) == []
        assert await w.actions(short.listing_id) == [
            ("blacklist.list", "officer"),
            ("blacklist.expire", "system:expiry"),
        ]
        assert [r["move"] for r in await w.published()] == ["list", "list", "expire", "expire"]

    run(redis_url, scenario)


def test_lookups_by_account_and_phone_do_not_return_ended_listings_as_current(redis_url: str) -> None:
    """Ended listings stay in the indexes as the party's history, but a lookup gives them only when asked."""

    async def scenario(w: World) -> None:
        swept, _ = await w.blacklist.add(draft(expires_at=T0 + timedelta(days=10)), actor="officer", now=T0)
        lazily, _ = await w.blacklist.add(
            draft(OTHER_PERSON, expires_at=T0 + timedelta(days=20)), actor="officer", now=T0
        )
        repaired, _ = await w.blacklist.add(
            draft(case_id="case-2", expires_at=T0 + timedelta(days=700)), actor="officer", now=T0
        )
        when = years_after(T0, LIMITS.min_listed_years_before_repair)
        await w.blacklist.expire_due(T0 + timedelta(days=15), BATCH)
        await w.blacklist.repair(repaired.listing_id, REPAIR, actor="officer", now=when)
        for kind, value in (("account", ACCOUNT), ("phone", PHONE)):
            assert await w.redis.scard(f"credit:by:{kind}:{value}") == 3  # kept as history
            assert await w.blacklist.find(kind, value, now=when) == []  # the unswept one expired on read
            ended = await w.blacklist.find(kind, value, now=when, include_ended=True)
            assert {(x.listing_id, x.state) for x in ended} == {
                (swept.listing_id, "expired"),
                (lazily.listing_id, "expired"),
                (repaired.listing_id, "repaired"),
            }
        assert await w.feed() == set()

    run(redis_url, scenario)


def test_the_cap_runs_across_a_partys_listings_without_a_break(redis_url: str) -> None:
    cap_end = years_after(T0, LIMITS.max_period_years)

    async def scenario(w: World) -> None:
        first, _ = await w.blacklist.add(draft(reason_code="telecom_fraud"), actor="officer", now=T0)
        second, _ = await w.blacklist.add(
            draft(case_id="case-2", reason_code="telecom_fraud"),
            actor="officer",
            now=first.expires_at - timedelta(days=30),
        )
        other, _ = await w.blacklist.add(
            draft(OTHER_PERSON, reason_code="telecom_fraud"), actor="officer", now=first.expires_at - timedelta(days=30)
        )
        assert second.expires_at == cap_end  # cut at 5 years from the first, not its own 3
        assert other.expires_at == years_after(other.listed_at, LIMITS.period_years["telecom_fraud"])
        filing = ObjectionFiling(party_id=PERSON, grounds="g")
        await w.blacklist.object(second.listing_id, filing, actor="teller", now=second.listed_at)
        longer = ObjectionDecision(
            decision="correct", note="n", amend=Amendment(expires_at=cap_end + timedelta(days=1))
        )
        with pytest.raises(BadPeriod, match="without a break began"):
            await w.blacklist.decide(second.listing_id, 1, longer, actor="reviewer", now=second.listed_at)
        with pytest.raises(CapReached):
            await w.blacklist.add(draft(case_id="case-3"), actor="officer", now=cap_end)
        assert [r["move"] for r in await w.published()] == ["list", "list", "list", "object"]  # refusals wrote nothing

    run(redis_url, scenario)


def test_an_unknown_listing_is_not_found(redis_url: str) -> None:
    async def scenario(w: World) -> None:
        with pytest.raises(ListingNotFound, match="no listing nope"):
            await w.blacklist.get("nope", now=T0)
        with pytest.raises(ListingNotFound):
            await w.blacklist.object("nope", ObjectionFiling(party_id=PERSON, grounds="g"), actor="t", now=T0)
        assert await w.published() == [] and await w.audit.records() == []

    run(redis_url, scenario)


def test_two_officers_deciding_one_objection_at_once_one_wins(redis_url: str) -> None:
    """WATCH makes the second decision re-read the listing and find the objection decided."""

    async def scenario(w: World) -> None:
        listing, _ = await w.blacklist.add(draft(), actor="officer", now=T0)
        await w.blacklist.object(listing.listing_id, ObjectionFiling(party_id=PERSON, grounds="g"), actor="t", now=T0)
        second = Redis.from_url(redis_url)
        other = CreditBlacklist(second, AuditLog(second, AUDIT_KEYS), LIMITS)
        results = await asyncio.gather(
            w.blacklist.decide(
                listing.listing_id, 1, ObjectionDecision(decision="uphold", note="a"), actor="officer-a", now=T0
            ),
            other.decide(
                listing.listing_id, 1, ObjectionDecision(decision="correct", note="b"), actor="officer-b", now=T0
            ),
            return_exceptions=True,
        )
        await second.aclose()
        assert sorted(type(r).__name__ for r in results) == ["Listing", "ObjectionClosed"]
        assert len([r for r in await w.published() if r["move"] in ("uphold", "remove")]) == 1
        assert (await w.audit.verify()).ok

    run(redis_url, scenario)


def test_cli_add_object_correct_list_and_expire(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from antifraud.cli import main

    monkeypatch.setenv("REDIS_URL", redis_url)
    invented = ["blacklist", "add", PERSON, "--case-id", "case-1", "--reason-code", "card_account_trade"]
    assert main([*invented, "--reason", "r", "--evidence", "alert:a1", "--actor", "officer"]) == 2
    assert "there is no case case-1: a listing no confirmed case" in capsys.readouterr().err
    case_id = confirmed_case(redis_url)
    expires_at = datetime.now(timezone.utc) + timedelta(seconds=5)
    expires = expires_at.isoformat()
    assert (
        main(
            [
                "blacklist",
                "add",
                PERSON,
                "--case-id",
                case_id,
                "--reason-code",
                "card_account_trade",
                "--reason",
                "sold cards",
                "--evidence",
                "alert:a1",
                "--account",
                ACCOUNT,
                "--actor",
                "officer",
                "--expires",
                expires,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("listed: ") and PERSON not in out and ACCOUNT not in out
    lid = out.split()[1]
    assert main(["blacklist", "list", "--account", ACCOUNT, "--show-ids"]) == 0
    assert capsys.readouterr().out.split("\t")[:3] == [lid, "listed", PERSON]
    assert main(["blacklist", "object", lid, "--party-id", PERSON, "--grounds", "stolen ID", "--actor", "teller"]) == 0
    assert main(["blacklist", "decide", lid, "1", "correct", "--note", "n", "--amend", '{"accounts": []}']) == 0
    assert "objection 1 corrected" in capsys.readouterr().out
    assert main(["blacklist", "show", lid]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["state"], shown["accounts"], shown["party"]["id"]) == (
        "listed",
        [],
        PERSON[:4] + "*" * 10 + PERSON[-4:],
    )
    time.sleep(max(0.0, (expires_at - datetime.now(timezone.utc)).total_seconds()) + 0.1)
    assert main(["blacklist", "expire"]) == 0
    assert "expired 1 listings" in capsys.readouterr().out
    assert main(["blacklist", "list"]) == 0 and capsys.readouterr().out == ""
    assert main(["blacklist", "list", "--all"]) == 0 and "\texpired\t" in capsys.readouterr().out

    bad_id = PERSON[:17] + ("1" if PERSON[17] != "1" else "2")
    assert (
        main(
            [
                "blacklist",
                "add",
                bad_id,
                "--case-id",
                "c",
                "--reason-code",
                "telecom_fraud",
                "--reason",
                "r",
                "--evidence",
                "e",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "party.id_number.id" in err and bad_id not in err
    assert main(["blacklist", "show", "nope"]) == 1 and "no listing nope" in capsys.readouterr().err
    assert (
        main(["blacklist", "repair", lid, "--condition", "behaviour_corrected", "--evidence", "e", "--note", "n"]) == 2
    )
    assert "repair (expired -> repaired) refused" in capsys.readouterr().err


def test_an_ended_listing_is_deleted_five_years_after_it_ended_and_the_audit_keeps_it(redis_url: str) -> None:
    """Credit Investigation Regulation art. 16: negative information is kept 5 years from its end, then
    deleted. A listing in force, and one ended less than 5 years ago, stay."""

    async def scenario(w: World) -> None:
        ended, _ = await w.blacklist.add(
            draft(accounts=[ACCOUNT], expires_at=T0 + timedelta(days=10)), actor="officer", now=T0
        )
        await w.blacklist.add(draft(OTHER_PERSON, expires_at=years_after(T0, 2)), actor="officer", now=T0)
        [expired] = await w.blacklist.expire_due(T0 + timedelta(days=11), BATCH)
        end = expired.ended_at
        assert end is not None and await w.blacklist.purge_ended(years_after(end, LIMITS.keep_ended_years), BATCH) == 0
        later = years_after(end, LIMITS.keep_ended_years) + timedelta(seconds=1)
        assert await w.blacklist.purge_ended(later, BATCH) == 1
        with pytest.raises(ListingNotFound):
            await w.blacklist.get(ended.listing_id, now=later)
        named = await w.blacklist.find("account", ACCOUNT, include_ended=True, now=later)
        assert ended.listing_id not in {x.listing_id for x in named}
        assert len(await w.blacklist.latest(10, now=later)) == 1
        assert await w.actions(ended.listing_id) == [
            ("blacklist.list", "officer"),
            ("blacklist.expire", "system:expiry"),
            ("blacklist.purged", "system:expiry"),
        ]
        assert (await w.audit.verify()).ok
        assert await w.blacklist.purge_ended(later, BATCH) == 0

    run(redis_url, scenario)
