"""The credit blacklist in Redis: listings, their indexes, the accounts feed, and every change audited and published.

Keys:

- ``credit:listing:{listing_id}``: the listing (JSON), the truth;
- ``credit:by:{kind}:{value}``: set of the listing ids naming a party (``id_number``,
  ``credit_code``), an ``account`` or a ``phone``, ended listings included (a
  party's history, which the cap on an unbroken run of listings reads; lookups
  return ended ones only when asked); a correction that drops an account or phone
  drops it here too;
- ``credit:listings``: sorted set of every listing id by listing time;
- ``credit:expiry``: sorted set of the listings in force by expiry time (the sweep's queue);
- ``credit:objected``: sorted set of the listings with an objection pending, by when it was filed: the
  credit officers' worklist;
- ``credit:ended``: sorted set of the ended listings by when they ended: the sweep deletes those ended
  longer ago than ``[credit_blacklist] keep_ended_years`` (:meth:`CreditBlacklist.purge_ended`);
- ``blacklist:accounts``: the accounts of listings in force, read by the
  transfer-risk detector (a payee on it alerts);
- ``credit:proposal:{proposal_id}``: a listing no confirmed case backs, waiting for a second officer's
  approval (JSON); ``credit:proposals``: sorted set of their ids by when they were proposed.

Every change goes through :meth:`AuditLog.transact`: the listing is read under
WATCH, the pure move (:mod:`antifraud.credit.policy`) decides or refuses, and
one MULTI writes the listing, its indexes, the accounts feed, the audit record
and the outbox record for the ``antifraud.credit-blacklist`` topic. Nothing is
half-applied; a concurrent change makes the move run again on the new state.
Redis must run with AOF (``appendonly yes``) for listings to survive its restart.
"""

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from antifraud import outbox
from antifraud.audit.models import Change
from antifraud.audit.service import AuditLog
from antifraud.clock import utcnow
from antifraud.credit import policy
from antifraud.credit.models import (
    PARTY,
    Listing,
    ListingDraft,
    ListingExists,
    ListingNotFound,
    LookupKind,
    Move,
    ObjectionDecision,
    ObjectionFiling,
    OrganisationParty,
    PartyKind,
    PersonParty,
    Proposal,
    ProposalNotFound,
    ReasonCode,
    Refused,
    RepairRequest,
    Worklist,
)
from antifraud.state import keys as families
from antifraud.state.keys import BLACKLIST
from antifraud.state.replies import texts
from antifraud.thresholds import CreditBlacklistThresholds
from antifraud.topics import CREDIT_BLACKLIST

log = logging.getLogger(__name__)

LISTINGS = families.LISTINGS.key()
EXPIRY = families.LISTINGS_EXPIRY.key()
ENDED = families.LISTINGS_ENDED.key()
OBJECTED = families.LISTINGS_OBJECTED.key()
SYSTEM = "system:expiry"
"""The actor of expiries in the audit trail and on the topic."""


PROPOSALS = families.PROPOSALS.key()


def proposal_key(proposal_id: str) -> str:
    return families.PROPOSAL.key(proposal_id)


def listing_key(listing_id: str) -> str:
    return families.LISTING.key(listing_id)


def index_key(kind: LookupKind, value: str) -> str:
    return families.LISTINGS_NAMING.key(f"{kind}:{value}")


def _index_keys(listing: Listing | None) -> set[str]:
    if listing is None:
        return set()
    return {
        index_key(listing.party.kind, listing.party.id),
        *(index_key("account", a) for a in listing.accounts),
        *(index_key("phone", p) for p in listing.phones),
    }


def _accounts_in_force(listing: Listing | None) -> set[str]:
    return set(listing.accounts) if listing is not None and listing.in_force else set()


def _parse(raw: bytes | str | None) -> Listing | None:
    return Listing.model_validate_json(raw) if raw is not None else None


class _AlreadyListed(Exception):
    """Raised inside a transaction to leave it without writing: the case already listed this party."""

    def __init__(self, listing: Listing) -> None:
        self.listing = listing


Decision = Callable[[Listing | None], Listing]
"""The listing as stored (None: not yet) -> the listing after the move; raises to refuse."""


class CreditBlacklist:
    def __init__(self, redis: Redis, audit: AuditLog, limits: CreditBlacklistThresholds) -> None:
        self.redis = redis
        self.audit = audit
        self.limits = limits

    async def add(
        self, draft: ListingDraft, *, actor: str, now: datetime, approved_by: str | None = None
    ) -> tuple[Listing, bool]:
        """List a party for a case; ``(listing, created)``. The same request again returns the existing
        listing (``created`` False); a different one for the same case and party raises :class:`ListingExists`.
        Whether a confirmed case backs the listing, or a second officer (``approved_by``) does, is the
        caller's to establish (:mod:`antifraud.credit.backing`)."""
        listing_id = uuid.uuid4().hex
        party_index = index_key(draft.party.kind, draft.party.id)
        history: list[Listing] = []

        async def existing(pipe: Pipeline) -> None:
            history[:] = await self._party_listings(pipe, draft.party, listing_id)
            for found in history:
                if found.case_id == draft.case_id:
                    if not policy.same_listing(found, draft):
                        raise ListingExists(found.listing_id, found.state)
                    raise _AlreadyListed(found)

        def decide(before: Listing | None) -> Listing:
            return policy.open_listing(
                draft,
                listing_id=listing_id,
                actor=actor,
                now=now,
                limits=self.limits,
                history=history,
                approved_by=approved_by,
            )

        try:
            return await self._change(
                listing_id, "list", actor, now, decide, precheck=existing, watch=[party_index]
            ), True
        except _AlreadyListed as already:
            return already.listing, False

    async def propose(self, draft: ListingDraft, *, actor: str, now: datetime) -> Proposal:
        """Keep a listing no confirmed case backs until a second officer approves it (audited)."""
        proposal = Proposal(proposal_id=uuid.uuid4().hex, draft=draft, proposed_by=actor, proposed_at=now)

        async def decide(pipe: Pipeline) -> Change:
            def write(tx: Pipeline) -> None:
                tx.set(proposal_key(proposal.proposal_id), proposal.model_dump_json())
                tx.zadd(PROPOSALS, {proposal.proposal_id: now.timestamp()})

            return Change(before=None, after={"state": "proposed", "case_id": draft.case_id}, write=write)

        await self.audit.transact(
            actor=actor, action="credit.propose", subject=f"proposal:{proposal.proposal_id}", watch=[], decide=decide
        )
        return proposal

    async def worklist(self, now: datetime, *, recent_days: int, soon_days: int, limit: int = 100) -> Worklist:
        """What waits for a credit officer: objections pending (oldest first), proposals to approve, listings
        made in the last ``recent_days`` (newest first) and listings ending in the next ``soon_days``."""
        day = 86400
        at = now.timestamp()
        objected = texts(await self.redis.zrange(OBJECTED, 0, limit - 1))
        recent = texts(await self.redis.zrevrangebyscore(LISTINGS, "+inf", at - recent_days * day, start=0, num=limit))
        soon = texts(await self.redis.zrangebyscore(EXPIRY, at, at + soon_days * day, start=0, num=limit))
        return Worklist(
            objected=await self._listings(objected),
            proposals=(await self.proposals())[:limit],
            recent=await self._listings(recent),
            ending=await self._listings(soon),
        )

    async def index_objected(self, batch: int = 1000) -> int:
        """Put every listing with an objection pending into ``credit:objected`` (by when it was filed), as
        each change now keeps it: the worklist of a deployment older than the index. Idempotent (``NX``); how
        many listings are objected."""
        found = 0
        total = await self.redis.zcard(LISTINGS)
        for start in range(0, total, batch):
            ids = texts(await self.redis.zrange(LISTINGS, start, start + batch - 1))
            objected = {
                listing.listing_id: min(o.filed_at for o in listing.objections if o.state == "pending").timestamp()
                for listing in await self._read(self.redis, ids)
                if listing.state == "objected" and any(o.state == "pending" for o in listing.objections)
            }
            if objected:
                await self.redis.zadd(OBJECTED, objected, nx=True)
            found += len(objected)
        return found

    async def _listings(self, ids: list[str]) -> list[Listing]:
        raws = await self.redis.mget([listing_key(i) for i in ids]) if ids else []
        return [Listing.model_validate_json(raw) for raw in raws if raw is not None]

    async def proposals(self) -> list[Proposal]:
        """The proposals waiting for approval, oldest first."""
        ids = texts(await self.redis.zrange(PROPOSALS, 0, -1))
        raws = await self.redis.mget([proposal_key(i) for i in ids]) if ids else []
        return [Proposal.model_validate_json(raw) for raw in raws if raw is not None]

    async def approve(self, proposal_id: str, *, actor: str, now: datetime) -> tuple[Listing, bool]:
        """List what a proposal asks for, approved by ``actor``, who must not be its proposer (four eyes);
        the proposal is then gone. Approving again after a crash finds the listing made (``add`` is
        idempotent per case and party)."""
        raw = await self.redis.get(proposal_key(proposal_id))
        if raw is None:
            raise ProposalNotFound(proposal_id)
        proposal = Proposal.model_validate_json(raw)
        if actor == proposal.proposed_by:
            raise Refused(
                "four_eyes_proposal",
                f"proposal {proposal_id}: {actor} proposed it, so may not approve it (four eyes)",
                proposal=proposal_id,
            )
        listed = await self.add(proposal.draft, actor=proposal.proposed_by, now=now, approved_by=actor)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(proposal_key(proposal_id))
        pipe.zrem(PROPOSALS, proposal_id)
        await pipe.execute()
        return listed

    async def object(self, listing_id: str, filing: ObjectionFiling, *, actor: str, now: datetime) -> Listing:
        """File the party's objection (taken at a counter by ``actor``)."""
        return await self._change(
            listing_id,
            "object",
            actor,
            now,
            lambda before: policy.file_objection(_found(before, listing_id), filing, actor=actor, now=now),
        )

    async def decide(
        self, listing_id: str, objection_id: int, decision: ObjectionDecision, *, actor: str, now: datetime
    ) -> Listing:
        """Review the pending objection: uphold, or correct (amend or remove); an amended expiry is checked
        against the party's other listings (the cap on an unbroken run)."""
        history: list[Listing] = []

        async def party_history(pipe: Pipeline) -> None:
            listing = _parse(await pipe.get(listing_key(listing_id)))
            history[:] = await self._party_listings(pipe, listing.party, listing_id) if listing is not None else []

        sets_expiry = decision.amend is not None and decision.amend.expires_at is not None
        return await self._change(
            listing_id,
            policy.review_move(decision),
            actor,
            now,
            lambda before: policy.decide_objection(
                _found(before, listing_id),
                objection_id,
                decision,
                actor=actor,
                now=now,
                limits=self.limits,
                history=history,
            ),
            precheck=party_history if sets_expiry else None,
        )

    async def repair(self, listing_id: str, request: RepairRequest, *, actor: str, now: datetime) -> Listing:
        """End the listing on credit repair (conditions met, listed long enough)."""
        return await self._change(
            listing_id,
            "repair",
            actor,
            now,
            lambda before: policy.repair(_found(before, listing_id), request, now=now, limits=self.limits),
        )

    async def get(self, listing_id: str, *, now: datetime) -> Listing:
        """The listing, expired first if its period ran out (expiry applies on read, not only on sweeps)."""
        return _found(next(iter(await self._fresh(await self._read(self.redis, [listing_id]), now)), None), listing_id)

    async def find(self, kind: LookupKind, value: str, *, now: datetime, include_ended: bool = False) -> list[Listing]:
        """Listings naming ``value`` (normalised, see :func:`~antifraud.credit.models.lookup_value`), oldest first;
        only those in force unless ``include_ended``."""
        ids = sorted(texts(await self.redis.smembers(index_key(kind, value))))
        listings = await self._fresh(await self._read(self.redis, ids), now)
        return sorted((x for x in listings if include_ended or x.in_force), key=lambda x: (x.listed_at, x.listing_id))

    async def latest(self, count: int, *, now: datetime) -> list[Listing]:
        """The ``count`` most recently listed, newest first."""
        ids = texts(await self.redis.zrevrange(LISTINGS, 0, count - 1))
        return await self._fresh(await self._read(self.redis, ids), now)

    async def expire_due(self, now: datetime, batch: int) -> list[Listing]:
        """Expire the listings in force whose period ran out by ``now`` (at most ``batch``; call again for the
        rest). A listing moved meanwhile by someone else is skipped."""
        ids = texts(await self.redis.zrangebyscore(EXPIRY, "-inf", now.timestamp(), start=0, num=batch))
        expired = []
        for listing_id in ids:
            try:
                expired.append(await self._expire(listing_id, now))
            except Refused:
                continue
        return expired

    async def purge_ended(self, now: datetime, batch: int) -> int:
        """Delete the listings that ended more than ``keep_ended_years`` before ``now`` (at most ``batch``; call
        again for the rest), each in an audited transaction (``blacklist.purged``, with what it was); how many
        went."""
        cutoff = policy.years_after(now, -self.limits.keep_ended_years)
        ids = texts(await self.redis.zrangebyscore(ENDED, "-inf", f"({cutoff.timestamp()!r}", start=0, num=batch))
        purged = 0
        for listing_id in ids:
            key = listing_key(listing_id)

            async def decide(pipe: Pipeline, listing_id: str = listing_id, key: str = key) -> Change:
                listing = _parse(await pipe.get(key))
                if listing is None or listing.in_force or listing.ended_at is None or listing.ended_at >= cutoff:
                    raise Refused(
                        "listing_not_old", f"listing {listing_id} is not an old ended one", listing=listing_id
                    )

                def write(tx: Pipeline) -> None:
                    tx.delete(key)
                    for index in _index_keys(listing):
                        tx.srem(index, listing_id)
                    tx.zrem(LISTINGS, listing_id)
                    tx.zrem(ENDED, listing_id)

                return Change(
                    before={
                        "state": listing.state,
                        "party": listing.party.kind,
                        "ended_at": listing.ended_at.isoformat(),
                    },
                    after=None,
                    write=write,
                    event_id=f"listing-purged:{listing_id}",
                )

            try:
                await self.audit.transact(
                    actor=SYSTEM, action="blacklist.purged", subject=f"listing:{listing_id}", watch=[key], decide=decide
                )
                purged += 1
            except Refused:
                await self.redis.zrem(ENDED, listing_id)  # gone, or back in force: not this sweep's
        return purged

    async def _expire(self, listing_id: str, now: datetime) -> Listing:
        return await self._change(
            listing_id, "expire", SYSTEM, now, lambda before: policy.expire(_found(before, listing_id), now)
        )

    async def _fresh(self, listings: Iterable[Listing], now: datetime) -> list[Listing]:
        """``listings`` with those due expired now (lazily, through the same audited move as the sweep)."""
        fresh = []
        for listing in listings:
            if listing.due(now):
                try:
                    listing = await self._expire(listing.listing_id, now)
                except Refused:  # moved by someone else meanwhile: take it as it is now
                    [listing] = await self._read(self.redis, [listing.listing_id])
            fresh.append(listing)
        return fresh

    async def _party_listings(
        self, pipe: Pipeline, party: PersonParty | OrganisationParty, listing_id: str
    ) -> list[Listing]:
        """The party's listings other than ``listing_id``, watched: one changing meanwhile makes the move run
        again on the new state."""
        ids = sorted(texts(await pipe.smembers(index_key(party.kind, party.id))))
        others = [i for i in ids if i != listing_id]
        if others:
            await pipe.watch(*(listing_key(i) for i in others))
        return await self._read(pipe, others)

    async def _read(self, client: Redis | Pipeline, ids: Sequence[str]) -> list[Listing]:
        if not ids:
            return []
        raws = await client.mget([listing_key(i) for i in ids])
        return [x for x in map(_parse, raws) if x is not None]

    async def _change(
        self,
        listing_id: str,
        move: Move,
        actor: str,
        now: datetime,
        decide: Decision,
        *,
        precheck: Callable[[Pipeline], Awaitable[None]] | None = None,
        watch: Sequence[str] = (),
    ) -> Listing:
        """Read the listing under WATCH, let ``decide`` move it, write the move with its audit and topic records.

        1. WATCH the listing (and ``watch``); run ``precheck``; read the listing.
        2. ``decide`` returns the listing after the move, or raises to refuse (nothing written).
        3. Accounts leaving the feed: those no other listing in force still names (their listings watched too).
        4. MULTI: the listing, its indexes, the expiry queue, the accounts feed, the outbox record, the audit record.
        """
        key = listing_key(listing_id)
        outcome: list[Listing] = []

        async def transaction(pipe: Pipeline) -> Change:
            if precheck is not None:
                await precheck(pipe)
            before = _parse(await pipe.get(key))
            after = decide(before)
            leaving = _accounts_in_force(before) - _accounts_in_force(after)
            released = leaving - await self._named_elsewhere(pipe, leaving, listing_id)
            event = policy.event_for(before, after, move, actor, now)
            outcome[:] = [after]

            def write(tx: Pipeline) -> None:
                tx.set(key, after.model_dump_json())
                if before is None:
                    tx.zadd(LISTINGS, {listing_id: after.listed_at.timestamp()})
                old, new = _index_keys(before), _index_keys(after)
                for index in new - old:
                    tx.sadd(index, listing_id)
                for index in old - new:
                    tx.srem(index, listing_id)
                if after.in_force:
                    tx.zadd(EXPIRY, {listing_id: after.expires_at.timestamp()})
                    if after.accounts:
                        tx.sadd(BLACKLIST.key(), *after.accounts)
                else:
                    tx.zrem(EXPIRY, listing_id)
                if after.ended_at is not None:
                    tx.zadd(ENDED, {listing_id: after.ended_at.timestamp()})
                if after.state == "objected":
                    tx.zadd(OBJECTED, {listing_id: now.timestamp()}, nx=True)
                else:
                    tx.zrem(OBJECTED, listing_id)
                if released:
                    tx.srem(BLACKLIST.key(), *sorted(released))
                outbox.queue(tx, CREDIT_BLACKLIST, after.party.id, event.model_dump_json())

            return Change(
                before=before.model_dump(mode="json") if before else None,
                after=after.model_dump(mode="json"),
                write=write,
                event_id=event.change_id,
            )

        await self.audit.transact(
            actor=actor,
            action=f"blacklist.{move}",
            subject=f"listing:{listing_id}",
            watch=[key, *watch],
            decide=transaction,
        )
        log.info("listing %s: %s by %s, now %s", listing_id, move, actor, outcome[0].state)
        return outcome[0]

    async def _named_elsewhere(self, pipe: Pipeline, accounts: set[str], listing_id: str) -> set[str]:
        """Which of ``accounts`` another listing in force still names (those stay on the feed); the other
        listings are watched, so one ending at the same time makes this transaction run again."""
        if not accounts:
            return set()
        others = {i for a in accounts for i in texts(await pipe.smembers(index_key("account", a)))} - {listing_id}
        if not others:
            return set()
        await pipe.watch(*(listing_key(i) for i in sorted(others)))
        return {
            a for other in await self._read(pipe, sorted(others)) if other.in_force for a in other.accounts
        } & accounts


def _found(listing: Listing | None, listing_id: str) -> Listing:
    if listing is None:
        raise ListingNotFound(listing_id)
    return listing


async def list_from_case(
    blacklist: CreditBlacklist,
    *,
    party_id: str,
    kind: PartyKind,
    reason: str,
    evidence: Sequence[str],
    case_id: str,
    actor: str,
    accounts: Sequence[str] = (),
    phones: Sequence[str] = (),
    reason_code: ReasonCode = "telecom_fraud",
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> Listing:
    """List the party a confirmed case holds responsible; the case module calls this on confirmation.

    Calling it again for the same case and party (a retry) returns the same listing. Raises
    pydantic's ValidationError on a bad party id, account or phone, and :class:`ListingExists` if the
    case already listed the party with other details.
    """
    draft = ListingDraft(
        party=PARTY.validate_python({"kind": kind, "id": party_id}),
        case_id=case_id,
        reason_code=reason_code,
        reason=reason,
        evidence=tuple(evidence),
        accounts=tuple(accounts),
        phones=tuple(phones),
        expires_at=expires_at,
    )
    listing, _ = await blacklist.add(draft, actor=actor, now=now or utcnow())
    return listing
