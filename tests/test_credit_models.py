"""The credit blacklist's pure part: party ids, the listing state machine, objections, repair, expiry."""

import re
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from antifraud.credit import policy
from antifraud.credit.models import (
    PARTY,
    Amendment,
    BadPeriod,
    CapReached,
    IllegalTransition,
    Listing,
    ObjectionClosed,
    ObjectionDecision,
    ObjectionFiling,
    ObjectionNotFound,
    PartyMismatch,
    RepairRefused,
    RepairRequest,
    credit_code_check_char,
    lookup_value,
    moves_from,
)
from antifraud.events.types import make_id_number
from tests.credit_helpers import ACCOUNT, COMPANY, LIMITS, PERSON, PHONE, T0, draft


def listed(**changes: object) -> Listing:
    return policy.open_listing(draft(**changes), listing_id="L1", actor="lister", now=T0, limits=LIMITS, history=())


def objected(at: datetime = T0 + timedelta(days=1)) -> Listing:
    return policy.file_objection(
        listed(), ObjectionFiling(party_id=PERSON, grounds="my ID card was stolen"), actor="teller", now=at
    )


# --- party ids ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["91110108551385082Q", "911100007109311097", "91350100M000100Y43"])
def test_published_credit_codes_pass_the_gb32100_check(code: str) -> None:
    assert credit_code_check_char(code[:17]) == code[17]
    assert PARTY.validate_python({"kind": "credit_code", "id": code}).id == code


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("91110108551385082R", "check character"),  # one character off
        ("91110108551385O82Q", "pattern"),  # letter O is not in the code's alphabet
        ("9111010855138508Q", "pattern"),  # 17 characters
    ],
)
def test_bad_credit_codes_are_refused_naming_the_rule(raw: str, why: str) -> None:
    with pytest.raises(ValidationError) as caught:
        PARTY.validate_python({"kind": "credit_code", "id": raw})
    assert why in str(caught.value)


def test_ids_are_normalised_and_checked_by_kind() -> None:
    assert PARTY.validate_python({"kind": "credit_code", "id": " 91110108551385082q "}).id == COMPANY
    x_id = next(i for i in (make_id_number("320585", "19900101", n) for n in range(100)) if i.endswith("X"))
    assert PARTY.validate_python({"kind": "id_number", "id": x_id.lower()}).id == x_id
    with pytest.raises(ValidationError, match="GB 11643"):
        PARTY.validate_python({"kind": "id_number", "id": PERSON[:17] + ("1" if PERSON[17] != "1" else "2")})
    with pytest.raises(ValidationError, match="GB 32100"):  # an ID number is no credit code
        PARTY.validate_python({"kind": "credit_code", "id": PERSON})


def test_lookup_values_name_the_kind_without_echoing_the_value() -> None:
    assert lookup_value("phone", " +8617012340001") == "+8617012340001"
    with pytest.raises(ValueError, match="account is not valid") as caught:
        lookup_value("account", "6222-0000")
    assert "6222-0000" not in str(caught.value)


# --- listing -----------------------------------------------------------------------------------------------


def test_a_listing_runs_for_its_reason_codes_period() -> None:
    listing = listed()
    assert (listing.state, listing.version, listing.listed_at) == ("listed", 1, T0)
    assert listing.expires_at == T0.replace(year=T0.year + LIMITS.period_years["card_account_trade"])
    assert listed(reason_code="telecom_fraud").expires_at == T0.replace(
        year=T0.year + LIMITS.period_years["telecom_fraud"]
    )


def test_periods_are_calendar_years_ending_on_the_corresponding_day() -> None:
    """Civil Code art. 202: a period in years ends on the corresponding day; 29 February's is 28 February."""
    leap = datetime(2028, 2, 29, 10, 30, tzinfo=timezone.utc)
    assert policy.years_after(leap, 3) == datetime(2031, 2, 28, 10, 30, tzinfo=timezone.utc)
    assert policy.years_after(leap, 4) == datetime(2032, 2, 29, 10, 30, tzinfo=timezone.utc)
    before_leap_day = datetime(2027, 3, 1, tzinfo=timezone.utc)
    assert policy.years_after(before_leap_day, 2) == datetime(2029, 3, 1, tzinfo=timezone.utc)  # 731 days, not 730


def test_a_listing_needs_evidence_and_an_expiry_within_the_cap() -> None:
    with pytest.raises(ValidationError, match="evidence"):
        draft(evidence=[])
    with pytest.raises(BadPeriod, match=f"at most {LIMITS.max_period_years} years"):
        listed(expires_at=cap_from(T0) + timedelta(seconds=1))
    with pytest.raises(BadPeriod, match="not in the future"):
        listed(expires_at=T0)


def test_duplicate_accounts_and_phones_are_kept_once() -> None:
    listing = listed(accounts=[ACCOUNT, ACCOUNT], phones=[PHONE, PHONE])
    assert (listing.accounts, listing.phones) == ((ACCOUNT,), (PHONE,))
    assert policy.same_listing(listing, draft(accounts=[ACCOUNT, ACCOUNT]))
    assert not policy.same_listing(listing, draft(reason="another reason"))


# --- objection, review -------------------------------------------------------------------------------------


def test_an_objection_needs_the_listed_partys_id() -> None:
    with pytest.raises(PartyMismatch, match="listing L1"):
        policy.file_objection(listed(), ObjectionFiling(party_id=COMPANY, grounds="not me"), actor="teller", now=T0)


def test_objection_upheld_returns_the_listing_in_force() -> None:
    decision = ObjectionDecision(decision="uphold", note="evidence holds")
    listing = policy.decide_objection(
        objected(), 1, decision, actor="officer", now=T0 + timedelta(days=3), limits=LIMITS, history=()
    )
    assert (policy.review_move(decision), listing.state, listing.version) == ("uphold", "listed", 3)
    assert (listing.objections[0].state, listing.objections[0].decided_by) == ("upheld", "officer")


def test_correction_without_amendment_removes_the_listing() -> None:
    decision = ObjectionDecision(decision="correct", note="ID was stolen")
    listing = policy.decide_objection(
        objected(), 1, decision, actor="officer", now=T0 + timedelta(days=3), limits=LIMITS, history=()
    )
    assert (policy.review_move(decision), listing.state, listing.ended_at) == (
        "remove",
        "removed",
        T0 + timedelta(days=3),
    )
    assert listing.objections[0].state == "corrected"


def test_correction_with_amendment_keeps_the_listing_amended() -> None:
    amend = Amendment(accounts=(), reason="sold one card, not two")
    decision = ObjectionDecision(decision="correct", note="one card only", amend=amend)
    listing = policy.decide_objection(
        objected(), 1, decision, actor="officer", now=T0 + timedelta(days=3), limits=LIMITS, history=()
    )
    assert (policy.review_move(decision), listing.state, listing.accounts, listing.phones) == (
        "amend",
        "listed",
        (),
        (PHONE,),
    )
    assert listing.reason == "sold one card, not two" and listing.objections[0].amendment == amend


def test_amended_expiry_stays_within_the_cap() -> None:
    amend = Amendment(expires_at=cap_from(T0) + timedelta(days=1))
    with pytest.raises(BadPeriod):
        policy.decide_objection(
            objected(),
            1,
            ObjectionDecision(decision="correct", note="n", amend=amend),
            actor="officer",
            now=T0,
            limits=LIMITS,
            history=(),
        )


# --- the cap on an unbroken run of listings (joint punishment measures: 5 years in a row at most) -------------


def cap_from(start: datetime) -> datetime:
    return policy.years_after(start, LIMITS.max_period_years)


def fraud_from(start: datetime) -> datetime:
    """When a telecom-fraud listing made at ``start`` runs out."""
    return policy.years_after(start, LIMITS.period_years["telecom_fraud"])


def again(listing_id: str, now: datetime, history: tuple[Listing, ...], **changes: object) -> Listing:
    """The party listed once more, on another case."""
    return policy.open_listing(
        draft(case_id=listing_id, reason_code="telecom_fraud", **changes),
        listing_id=listing_id,
        actor="lister",
        now=now,
        limits=LIMITS,
        history=history,
    )


def test_a_listing_made_while_another_binds_ends_at_the_cap_from_the_first() -> None:
    first = again("L1", T0, ())
    second = again("L2", fraud_from(T0) - timedelta(days=30), (first,))
    assert first.expires_at == fraud_from(T0) and second.expires_at == cap_from(T0)  # not its own full period
    with pytest.raises(
        BadPeriod,
        match=re.escape(
            f"at most {LIMITS.max_period_years} years after the party's listing "
            f"without a break began ({T0.isoformat()})"
        ),
    ):
        again("L2", T0 + timedelta(days=400), (first,), expires_at=cap_from(T0) + timedelta(seconds=1))
    # Listed again the moment the run reaches the cap: refused, nothing more to run.
    with pytest.raises(CapReached, match=re.escape(f"since {T0.isoformat()}")):
        again("L3", second.expires_at, (first, second))


def test_after_a_break_or_beside_a_removed_listing_a_listing_runs_its_full_period() -> None:
    first = again("L1", T0, ())
    later = fraud_from(T0) + timedelta(days=1)
    assert again("L2", later, (policy.expire(first, later),)).expires_at == fraud_from(later)
    wrong = policy.decide_objection(
        policy.file_objection(first, ObjectionFiling(party_id=PERSON, grounds="not me"), actor="teller", now=T0),
        1,
        ObjectionDecision(decision="correct", note="ID stolen"),
        actor="officer",
        now=T0 + timedelta(days=900),
        limits=LIMITS,
        history=(),
    )
    meanwhile = T0 + timedelta(days=800)
    assert again("L2", meanwhile, (wrong,)).expires_at == fraud_from(meanwhile)


def test_the_run_goes_back_through_overlapping_listings_and_an_expiry_not_its_late_sweep() -> None:
    a = policy.expire(again("A", T0, (), expires_at=T0 + timedelta(days=100)), T0 + timedelta(days=150))
    b = again("B", T0 + timedelta(days=50), (), expires_at=T0 + timedelta(days=300))
    assert policy.run_start([b, a], T0 + timedelta(days=200)) == T0  # through b to a, whichever order given
    assert policy.run_start([a], T0 + timedelta(days=120)) == T0 + timedelta(days=120)  # a ended at day 100


def test_an_amended_expiry_stays_within_the_cap_on_the_run_the_listing_began_in() -> None:
    first = again("L1", T0, ())
    second = again("L2", T0 + timedelta(days=400), (first,))
    objection = policy.file_objection(
        second, ObjectionFiling(party_id=PERSON, grounds="g"), actor="t", now=T0 + timedelta(days=401)
    )
    longer = ObjectionDecision(
        decision="correct", note="n", amend=Amendment(expires_at=cap_from(T0) + timedelta(days=1))
    )
    with pytest.raises(BadPeriod, match=re.escape(f"began ({T0.isoformat()})")):
        policy.decide_objection(
            objection, 1, longer, actor="o", now=T0 + timedelta(days=402), limits=LIMITS, history=(first,)
        )
    alone = policy.decide_objection(
        objection, 1, longer, actor="o", now=T0 + timedelta(days=402), limits=LIMITS, history=()
    )
    assert alone.expires_at == cap_from(T0) + timedelta(days=1)


def test_review_requests_are_validated() -> None:
    with pytest.raises(ValidationError, match="upheld listing is not amended"):
        ObjectionDecision(decision="uphold", note="n", amend=Amendment(reason="r"))
    for nothing in ({}, {"reason": None}):
        with pytest.raises(ValidationError, match="at least one field"):
            Amendment.model_validate(nothing)


def test_refused_moves_name_the_listing_its_state_and_the_move() -> None:
    with pytest.raises(
        IllegalTransition, match=r"listing L1: object \(objected -> objected\) refused; only from listed"
    ):
        policy.file_objection(objected(), ObjectionFiling(party_id=PERSON, grounds="again"), actor="t", now=T0)
    removed = policy.decide_objection(
        objected(), 1, ObjectionDecision(decision="correct", note="n"), actor="o", now=T0, limits=LIMITS, history=()
    )
    late = cap_from(T0)
    for refused in (
        lambda: policy.file_objection(removed, ObjectionFiling(party_id=PERSON, grounds="g"), actor="t", now=late),
        lambda: policy.repair(removed, REPAIR, now=late, limits=LIMITS),
        lambda: policy.expire(removed, late),
    ):
        with pytest.raises(IllegalTransition, match=r"listing L1: \w+ \(removed -> \w+\) refused"):
            refused()


def test_a_decided_or_unknown_objection_is_refused() -> None:
    upheld = policy.decide_objection(
        objected(), 1, ObjectionDecision(decision="uphold", note="n"), actor="o", now=T0, limits=LIMITS, history=()
    )
    again = policy.file_objection(upheld, ObjectionFiling(party_id=PERSON, grounds="new facts"), actor="t", now=T0)
    assert [o.objection_id for o in again.objections] == [1, 2] and again.state == "objected"
    with pytest.raises(ObjectionClosed, match="objection 1 is already upheld"):
        policy.decide_objection(
            again, 1, ObjectionDecision(decision="correct", note="n"), actor="o", now=T0, limits=LIMITS, history=()
        )
    with pytest.raises(ObjectionNotFound):
        policy.decide_objection(
            again, 3, ObjectionDecision(decision="uphold", note="n"), actor="o", now=T0, limits=LIMITS, history=()
        )


# --- repair, expiry ----------------------------------------------------------------------------------------

REPAIR = RepairRequest(
    conditions=("behaviour_corrected", "effects_removed", "training_completed"),
    evidence=("doc:repaid-victims", "doc:training-cert"),
    note="victims repaid, course done",
)


def test_repair_after_the_minimum_time_with_every_condition_ends_the_listing() -> None:
    when = policy.years_after(T0, LIMITS.min_listed_years_before_repair)
    listing = policy.repair(listed(), REPAIR, now=when, limits=LIMITS)
    assert (listing.state, listing.ended_at, listing.repair.conditions) == ("repaired", when, REPAIR.conditions)


def test_repair_is_refused_too_early_or_with_conditions_missing() -> None:
    partial = REPAIR.model_copy(update={"conditions": ("behaviour_corrected",)})
    with pytest.raises(RepairRefused) as caught:
        policy.repair(listed(), partial, now=T0 + timedelta(days=30), limits=LIMITS)
    assert caught.value.problems == [
        "conditions not met: effects_removed, training_completed",
        f"listed for less than {LIMITS.min_listed_years_before_repair} year(s) (repair possible from "
        f"{policy.years_after(T0, LIMITS.min_listed_years_before_repair).isoformat()})",
    ]


def test_repair_waits_for_a_pending_objection() -> None:
    with pytest.raises(IllegalTransition, match="repair \\(objected -> repaired\\)"):
        policy.repair(objected(), REPAIR, now=T0 + timedelta(days=400), limits=LIMITS)


def test_expiry_only_when_due_and_a_pending_objection_lapses() -> None:
    listing = objected()
    with pytest.raises(policy.NotDue):
        policy.expire(listing, listing.expires_at - timedelta(seconds=1))
    assert listing.due(listing.expires_at) and not listing.due(listing.expires_at - timedelta(seconds=1))
    ended = policy.expire(listing, listing.expires_at)
    assert (ended.state, ended.objections[0].state, ended.objections[0].decided_by) == ("expired", "lapsed", "system")
    assert not ended.due(ended.expires_at + timedelta(days=1))


def test_events_carry_a_stable_change_id_per_version() -> None:
    first = policy.event_for(None, listed(), "list", "officer", T0)
    before = listed()
    second = policy.event_for(before, objected(), "object", "teller", T0)
    assert (first.change_id, first.from_state, first.to_state) == ("L1.v1", None, "listed")
    assert (second.change_id, second.from_state, second.to_state) == ("L1.v2", "listed", "objected")


def test_the_desk_offers_the_moves_a_listings_state_allows() -> None:
    assert moves_from("listed") == ["object", "repair"]
    assert moves_from("objected") == ["uphold", "amend", "remove"]
    assert moves_from("removed") == moves_from("repaired") == moves_from("expired") == []
