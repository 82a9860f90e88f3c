"""What each action does to a listing (pure): listing, objection, review, repair, expiry.

Each function takes the listing as it is, the request and the time, and returns
the listing after the move with ``version`` raised by one, or raises naming the
listing and what was refused. Redis, the audit log and the topic are the
service's business (:mod:`antifraud.credit.service`).
"""

from collections.abc import Iterable, Sequence
from datetime import datetime

from antifraud.credit.models import (
    TRANSITIONS,
    BadPeriod,
    CapReached,
    IllegalTransition,
    Listing,
    ListingDraft,
    ListingEvent,
    ListingState,
    Move,
    Objection,
    ObjectionClosed,
    ObjectionDecision,
    ObjectionFiling,
    ObjectionNotFound,
    PartyMismatch,
    Refused,
    Repair,
    RepairRefused,
    RepairRequest,
)
from antifraud.thresholds import CreditBlacklistThresholds


class NotDue(Refused):
    def __init__(self, listing_id: str, expires_at: datetime) -> None:
        super().__init__(
            "listing_not_due",
            f"listing {listing_id} runs until {expires_at.isoformat()}; not due to expire",
            listing=listing_id,
            until=expires_at.isoformat(),
        )


def _ended(listing: Listing) -> datetime:
    """When the listing stops (or stopped) binding the party: its expiry, or the earlier end of an ended one."""
    return listing.expires_at if listing.ended_at is None else min(listing.ended_at, listing.expires_at)


def run_start(history: Iterable[Listing], start: datetime) -> datetime:
    """When the party's unbroken run of listings that ``start`` falls in began: ``start`` moved back to the
    listing time of each of the party's listings binding at it (or ending just then); a removed listing was
    wrong and does not count.

    The joint punishment measures cap the consecutive punishment of a party listed again within a period,
    not each listing (``max_period_years``). Latest listed first, one pass suffices: each listing seen later
    was listed earlier, so none seen before could move ``start`` further back."""
    since = start
    spans = sorted(((x.listed_at, _ended(x)) for x in history if x.state != "removed"), reverse=True)
    for listed_at, ends in spans:
        if listed_at < since <= ends:
            since = listed_at
    return since


def years_after(at: datetime, years: int) -> datetime:
    """``at`` moved on by calendar years: a period in years ends on the corresponding day, the last day of
    the month where there is none (Civil Code art. 202: 29 February's is 28 February)."""
    try:
        return at.replace(year=at.year + years)
    except ValueError:
        return at.replace(year=at.year + years, day=28)


def _check_period(expires_at: datetime, now: datetime, since: datetime, limits: CreditBlacklistThresholds) -> None:
    """``expires_at`` in the future and within the cap on the run of listings that began at ``since``."""
    if expires_at <= now:
        raise BadPeriod("period_past", f"expires_at {expires_at.isoformat()} is not in the future")
    longest = years_after(since, limits.max_period_years)
    if expires_at > longest:
        raise BadPeriod(
            "period_too_long",
            f"expires_at may be at most {limits.max_period_years} years after the party's listing "
            f"without a break began ({since.isoformat()}): {longest.isoformat()}",
            years=limits.max_period_years,
            latest=longest.isoformat(),
        )


def _moved(listing: Listing, move: Move, **changes: object) -> Listing:
    starts, target = TRANSITIONS[move]
    if listing.state not in starts:
        raise IllegalTransition(listing.listing_id, listing.state, move)
    return Listing.model_validate({**listing.model_dump(), **changes, "state": target, "version": listing.version + 1})


def open_listing(
    draft: ListingDraft,
    *,
    listing_id: str,
    actor: str,
    now: datetime,
    limits: CreditBlacklistThresholds,
    history: Sequence[Listing],
    approved_by: str | None = None,
) -> Listing:
    """A new listing from ``draft``, running for the reason code's period unless the draft sets its expiry;
    either way no further than the cap on the party's unbroken run of listings (``history``: the party's
    other listings, see :func:`run_start`). A party listed for the whole cap already is refused."""
    since = run_start(history, now)
    ceiling = years_after(since, limits.max_period_years)
    if ceiling <= now:
        raise CapReached(since, ceiling, limits.max_period_years)
    expires_at = draft.expires_at or min(years_after(now, limits.period_years[draft.reason_code]), ceiling)
    _check_period(expires_at, now, since, limits)
    return Listing(
        listing_id=listing_id,
        version=1,
        party=draft.party,
        case_id=draft.case_id,
        reason_code=draft.reason_code,
        reason=draft.reason,
        evidence=draft.evidence,
        accounts=tuple(dict.fromkeys(draft.accounts)),
        phones=tuple(dict.fromkeys(draft.phones)),
        listed_at=now,
        listed_by=actor,
        approved_by=approved_by,
        expires_at=expires_at,
    )


def same_listing(listing: Listing, draft: ListingDraft) -> bool:
    """Whether ``draft`` asks for what ``listing`` already is (a retried request, not a different one)."""
    return (listing.party, listing.reason_code, listing.reason, listing.evidence, listing.accounts, listing.phones) == (
        draft.party,
        draft.reason_code,
        draft.reason,
        draft.evidence,
        tuple(dict.fromkeys(draft.accounts)),
        tuple(dict.fromkeys(draft.phones)),
    )


def file_objection(listing: Listing, filing: ObjectionFiling, *, actor: str, now: datetime) -> Listing:
    """The party objects (at a counter, with the ID document the listing names); the listing stays in force."""
    if filing.party_id != listing.party.id:
        raise PartyMismatch(listing.listing_id)
    objection = Objection(
        objection_id=len(listing.objections) + 1,
        filed_at=now,
        filed_by=actor,
        grounds=filing.grounds,
        evidence=filing.evidence,
    )
    return _moved(listing, "object", objections=(*listing.objections, objection))


def review_move(decision: ObjectionDecision) -> Move:
    """Uphold leaves the listing in force; a correction amends it, or removes it when nothing is amended."""
    return "uphold" if decision.decision == "uphold" else "amend" if decision.amend is not None else "remove"


def decide_objection(
    listing: Listing,
    objection_id: int,
    decision: ObjectionDecision,
    *,
    actor: str,
    now: datetime,
    limits: CreditBlacklistThresholds,
    history: Sequence[Listing],
) -> Listing:
    """Review the pending objection (the move is :func:`review_move`'s): upheld, the listing is in force
    again; corrected with an amendment, it stays amended; corrected without one, it was wrong and is removed.
    An amended expiry stays within the cap on the run the listing began in (``history``: the party's other
    listings; only read when the amendment sets ``expires_at``)."""
    index = objection_id - 1
    if not 0 <= index < len(listing.objections):
        raise ObjectionNotFound(listing.listing_id, objection_id)
    objection = listing.objections[index]
    if objection.state != "pending":
        raise ObjectionClosed(listing.listing_id, objection_id, objection.state)
    if actor in (objection.filed_by, listing.listed_by, listing.approved_by):
        raise Refused(
            "four_eyes_objection",
            f"listing {listing.listing_id}: {actor} filed the objection or made the listing, so may not decide it "
            "(four eyes: another officer decides)",
            listing=listing.listing_id,
        )
    decided = objection.model_copy(
        update={
            "state": "upheld" if decision.decision == "uphold" else "corrected",
            "decided_at": now,
            "decided_by": actor,
            "note": decision.note,
            "amendment": decision.amend,
        }
    )
    objections = (*listing.objections[:index], decided, *listing.objections[index + 1 :])
    if decision.amend is None:
        if decision.decision == "uphold":
            return _moved(listing, "uphold", objections=objections)
        return _moved(listing, "remove", objections=objections, ended_at=now)
    changes = decision.amend.model_dump(exclude_none=True)
    if decision.amend.expires_at is not None:
        _check_period(decision.amend.expires_at, now, run_start(history, listing.listed_at), limits)
    for field in ("accounts", "phones"):
        if field in changes:
            changes[field] = tuple(dict.fromkeys(changes[field]))
    return _moved(listing, "amend", objections=objections, **changes)


def repair(listing: Listing, request: RepairRequest, *, now: datetime, limits: CreditBlacklistThresholds) -> Listing:
    """End a listing early once the party met every required condition and it was listed long enough."""
    if listing.state not in TRANSITIONS["repair"][0]:
        raise IllegalTransition(listing.listing_id, listing.state, "repair")
    missing = [c for c in limits.repair_conditions if c not in request.conditions]
    earliest = years_after(listing.listed_at, limits.min_listed_years_before_repair)
    if missing or now < earliest:
        too_early = earliest if now < earliest else None
        raise RepairRefused(listing.listing_id, missing, too_early, limits.min_listed_years_before_repair)
    done = Repair(conditions=tuple(dict.fromkeys(request.conditions)), evidence=request.evidence, note=request.note)
    return _moved(listing, "repair", repair=done, ended_at=now)


def expire(listing: Listing, now: datetime) -> Listing:
    """End a listing whose period ran out; a pending objection lapses with it."""
    if listing.in_force and not listing.due(now):
        raise NotDue(listing.listing_id, listing.expires_at)
    objections = tuple(
        o.model_copy(
            update={
                "state": "lapsed",
                "decided_at": now,
                "decided_by": "system",
                "note": "the listing expired before the objection was decided",
            }
        )
        if o.state == "pending"
        else o
        for o in listing.objections
    )
    return _moved(listing, "expire", objections=objections, ended_at=now)


def event_for(before: Listing | None, after: Listing, move: Move, actor: str, at: datetime) -> ListingEvent:
    """The topic record of a move; its id follows from the listing and its new version."""
    from_state: ListingState | None = before.state if before is not None else None
    return ListingEvent(
        change_id=f"{after.listing_id}.v{after.version}",
        listing_id=after.listing_id,
        move=move,
        from_state=from_state,
        to_state=after.state,
        at=at,
        actor=actor,
        listing=after,
    )
