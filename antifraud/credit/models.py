"""A credit blacklist listing, the objections to it, and the only moves its state may make.

Plan sections (二) and (三): records are indexed by the ID number (people) or the
unified social credit code (organisations), every listing names its reason and
evidence ("可查可核可溯"), a listed party may object (异议处理) and a wrong entry is
corrected, a party that has put things right is repaired (信用修复), and listings
expire.

States of a listing:

- ``listed``: in force, its accounts are on ``blacklist:accounts``;
- ``objected``: in force, an objection is pending review (a pending objection
  does not suspend the listing, as with 异议 on published credit information);
- ``removed``: a correction found the listing wrong (ended);
- ``repaired``: removed early on credit repair (ended);
- ``expired``: its period ran out (ended).

Every move adds one to ``version``; ``(listing_id, version)`` names a change once
and for all, so consumers of the blacklist topic drop repeats by ``change_id``.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from antifraud.events.types import AccountNo, IdNumber, Msisdn, Stripped, UtcTime
from antifraud.refusals import Invalid, Refusal, Unknown
from antifraud.thresholds import ReasonCode, RepairCondition  # noqa: F401 - the credit vocabulary, named here too

# GB 32100-2015: the 31 characters of the unified social credit code (no I, O, S, V, Z)
# and the weights 3**i mod 31 of its first 17 characters.
CREDIT_CODE_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_CODE_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def credit_code_check_char(first17: str) -> str:
    """The check character of a unified social credit code from its first 17 characters (GB 32100)."""
    if len(first17) != 17 or any(c not in CREDIT_CODE_CHARS for c in first17):
        raise PydanticCustomError(
            "credit_code_chars", "need exactly 17 characters from {chars}", {"chars": CREDIT_CODE_CHARS}
        )
    total = sum(CREDIT_CODE_CHARS.index(c) * w for c, w in zip(first17, _CREDIT_CODE_WEIGHTS))
    return CREDIT_CODE_CHARS[-total % 31]


def _valid_credit_code(value: str) -> str:
    if credit_code_check_char(value[:17]) != value[17]:
        raise PydanticCustomError(
            "credit_code_check_char", "unified social credit code check character does not match (GB 32100)"
        )
    return value


def _normalised(value: object) -> object:
    """Codes are printed in upper case; staff type them in either case and with stray spaces."""
    return value.strip().upper() if isinstance(value, str) else value


CREDIT_CODE_FORMAT = "gb32100"
"""The JSON Schema ``format`` of a unified social credit code: 17 characters and the check character
GB 32100 computes from them."""

CreditCode = Annotated[
    str,
    StringConstraints(pattern=f"^[{CREDIT_CODE_CHARS}]{{18}}$"),
    BeforeValidator(_normalised),  # after the constraints in this list, so it runs first and they stay in the schema
    AfterValidator(_valid_credit_code),
    Field(json_schema_extra={"format": CREDIT_CODE_FORMAT}),
]
"""18-character unified social credit code with a valid check character (GB 32100-2015)."""

PartyIdNumber = Annotated[IdNumber, BeforeValidator(_normalised)]
"""A resident ID number as typed at a counter (a lower-case x accepted)."""

PartyKind = Literal["id_number", "credit_code"]
"""A person by resident ID number, an organisation by unified social credit code."""

LookupKind = Literal["id_number", "credit_code", "account", "phone"]
"""What a listing can be found by: its party, or an account or phone number it names."""

_LOOKUP: dict[str, TypeAdapter[str]] = {
    "id_number": TypeAdapter(PartyIdNumber),
    "credit_code": TypeAdapter(CreditCode),
    "account": TypeAdapter(AccountNo),
    "phone": TypeAdapter(Msisdn),
}
_LOOKUP_RULE = {
    "id_number": "18-character resident ID number with a valid check character (GB 11643)",
    "credit_code": "18-character unified social credit code with a valid check character (GB 32100)",
    "account": "8-30 digits",
    "phone": "3-15 digits, optional leading '+'",
}


def lookup_schema(kind: LookupKind) -> dict[str, Any]:
    """The JSON Schema of a look-up value of ``kind``: its pattern, and the check character's ``format``."""
    return _LOOKUP[kind].json_schema()


def lookup_value(kind: LookupKind, raw: str) -> str:
    """``raw`` as stored (normalised), or ValueError naming the kind and its rule, never echoing the value."""
    try:
        return _LOOKUP[kind].validate_python(raw.strip())
    except ValidationError:
        raise ValueError(f"{kind} is not valid: expected {_LOOKUP_RULE[kind]}") from None


ListingState = Literal["listed", "objected", "removed", "repaired", "expired"]
IN_FORCE: frozenset[ListingState] = frozenset({"listed", "objected"})


ObjectionState = Literal["pending", "upheld", "corrected", "lapsed"]
"""``lapsed``: the listing expired before the objection was decided."""

Move = Literal["list", "object", "uphold", "amend", "remove", "repair", "expire"]

TRANSITIONS: dict[Move, tuple[frozenset[ListingState | None], ListingState]] = {
    "list": (frozenset({None}), "listed"),
    "object": (frozenset({"listed"}), "objected"),
    "uphold": (frozenset({"objected"}), "listed"),
    "amend": (frozenset({"objected"}), "listed"),
    "remove": (frozenset({"objected"}), "removed"),
    "repair": (frozenset({"listed"}), "repaired"),
    "expire": (frozenset({"listed", "objected"}), "expired"),
}
"""Move -> (states it may start from, state it leads to); ``None`` is "not listed yet"."""

PERSON_MOVES: tuple[Move, ...] = ("object", "uphold", "amend", "remove", "repair")
"""The moves a person makes on a listing (listing itself aside; expiry is the clock's)."""


def moves_from(state: ListingState) -> list[Move]:
    """What a person may do to a listing in ``state``: the desk offers only these forms and buttons."""
    return [move for move in PERSON_MOVES if state in TRANSITIONS[move][0]]


Text = Annotated[str, Stripped(1000)]
Ref = Annotated[str, Stripped(128)]
"""An opaque reference: a case id, an alert or event id, a document number."""
ActorName = Annotated[str, Stripped(100)]


class ListingNotFound(Unknown, LookupError):
    def __init__(self, listing_id: str) -> None:
        self.listing_id = listing_id
        super().__init__("listing_unknown", f"no listing {listing_id}", listing=listing_id)


class ObjectionNotFound(Unknown, LookupError):
    def __init__(self, listing_id: str, objection_id: int) -> None:
        self.listing_id, self.objection_id = listing_id, objection_id
        super().__init__(
            "objection_unknown",
            f"listing {listing_id} has no objection {objection_id}",
            listing=listing_id,
            objection=objection_id,
        )


class ProposalNotFound(Unknown, LookupError):
    def __init__(self, proposal_id: str) -> None:
        super().__init__(
            "proposal_unknown", f"no proposal {proposal_id} (approved already, or never made)", proposal=proposal_id
        )


class Refused(Refusal, ValueError):
    """A request the listing's state or the rules refuse (HTTP 409); the message says why."""


class ObjectionClosed(Refused):
    def __init__(self, listing_id: str, objection_id: int, state: str) -> None:
        self.listing_id, self.objection_id, self.state = listing_id, objection_id, state
        super().__init__(
            "objection_closed",
            f"listing {listing_id}: objection {objection_id} is already {state}",
            listing=listing_id,
            objection=objection_id,
            state=state,
        )


class PartyMismatch(Invalid, ValueError):
    """An objection whose presented ID is not the listed party's: only the party (or their agent) may object."""

    def __init__(self, listing_id: str) -> None:
        self.listing_id = listing_id
        super().__init__(
            "party_mismatch", f"listing {listing_id}: party_id does not match the listed party", listing=listing_id
        )


class RepairRefused(Refused):
    """A repair asked for before its time or without every condition met; ``missing``: the conditions not met,
    ``earliest``: when the listing has been in force long enough (None when it has)."""

    def __init__(self, listing_id: str, missing: Sequence[str], earliest: datetime | None, min_years: int) -> None:
        self.listing_id = listing_id
        problems = [f"conditions not met: {', '.join(missing)}"] if missing else []
        if earliest is not None:
            problems.append(f"listed for less than {min_years} year(s) (repair possible from {earliest.isoformat()})")
        self.problems = problems
        code = "repair_conditions" if earliest is None else "repair_early" if not missing else "repair_both"
        super().__init__(
            code,
            f"listing {listing_id}: repair refused: {'; '.join(problems)}",
            listing=listing_id,
            missing=list(missing),
            earliest=earliest.isoformat() if earliest else "",
            years=min_years,
        )


class ListingExists(Refused):
    """The case already listed this party, differently: correct that listing instead of listing again."""

    def __init__(self, listing_id: str, state: str) -> None:
        self.listing_id, self.state = listing_id, state
        super().__init__(
            "listing_exists",
            f"case already listed this party as listing {listing_id} ({state}) with other details",
            listing=listing_id,
            state=state,
        )


class Unbacked(Refused):
    """A listing no confirmed case of the party backs: only a proposal, which a second officer approves."""

    def __init__(self, code: str, why: str, case_id: str, **params: object) -> None:
        self.why = why
        super().__init__(
            code,
            f"case_id: {why}; a listing no confirmed case of the party backs needs a second officer: "
            "propose it (POST /api/blacklist/proposals)",
            case=case_id,
            **params,
        )


class BadPeriod(Invalid, ValueError):
    """An expiry outside what the thresholds allow (HTTP 422)."""


class CapReached(Refused):
    """The party has been listed without a break for the whole cap: no listing may extend that run."""

    def __init__(self, since: datetime, ceiling: datetime, cap_years: int) -> None:
        self.since, self.ceiling = since, ceiling
        super().__init__(
            "listing_cap",
            f"party listed without a break since {since.isoformat()}; the {cap_years}-year cap on "
            f"consecutive listings ended at {ceiling.isoformat()}",
            since=since.isoformat(),
            ceiling=ceiling.isoformat(),
            years=cap_years,
        )


class IllegalTransition(Refused):
    """A move the state machine does not allow from the listing's current state."""

    def __init__(self, listing_id: str, current: ListingState | None, move: Move) -> None:
        self.listing_id, self.current, self.move = listing_id, current, move
        starts, target = TRANSITIONS[move]
        allowed = sorted(s or "none" for s in starts)
        super().__init__(
            "listing_transition",
            f"listing {listing_id}: {move} ({current or 'none'} -> {target}) refused; only from {', '.join(allowed)}",
            listing=listing_id,
            current=current or "none",
            move=move,
            allowed=allowed,
        )


class PersonParty(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["id_number"]
    id: PartyIdNumber


class OrganisationParty(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["credit_code"]
    id: CreditCode


Party = Annotated[PersonParty | OrganisationParty, Field(discriminator="kind")]
"""Who is listed: a person by ID number or an organisation by unified social credit code."""

PARTY: TypeAdapter[PersonParty | OrganisationParty] = TypeAdapter(Party)


def _some_field_given(schema: dict[str, Any]) -> None:
    """JSON Schema: at least one of the properties is given and not null (``Amendment._changes_something``)."""
    schema["anyOf"] = [
        {"required": [name], "properties": {name: {"not": {"type": "null"}}}} for name in schema["properties"]
    ]


class Amendment(BaseModel):
    """What a correction changes in a listing that stays; fields left out (or null) stay as they were."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_some_field_given)
    reason_code: ReasonCode | None = None
    reason: Text | None = None
    evidence: Annotated[tuple[Ref, ...], Field(min_length=1, max_length=100)] | None = None
    accounts: Annotated[tuple[AccountNo, ...], Field(max_length=100)] | None = None
    phones: Annotated[tuple[Msisdn, ...], Field(max_length=100)] | None = None
    expires_at: UtcTime | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> "Amendment":
        if not self.model_dump(exclude_none=True):
            raise PydanticCustomError("amend_nothing", "an amendment must change at least one field")
        return self


class Objection(BaseModel):
    """An objection filed for the listed party at a counter, and its review."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    objection_id: int = Field(ge=1)
    filed_at: UtcTime
    filed_by: ActorName
    grounds: Text
    evidence: tuple[Ref, ...] = ()
    state: ObjectionState = "pending"
    decided_at: UtcTime | None = None
    decided_by: ActorName | None = None
    note: Text | None = None
    amendment: Amendment | None = None


class Repair(BaseModel):
    """The credit repair that ended a listing: the conditions met and what shows it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    conditions: tuple[RepairCondition, ...]
    evidence: tuple[Ref, ...]
    note: Text


class Listing(BaseModel):
    """One party listed on one case, with its period, its objections and how it ended."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    listing_id: Ref
    version: int = Field(ge=1)
    party: Party
    case_id: Ref
    reason_code: ReasonCode
    reason: Text
    evidence: Annotated[tuple[Ref, ...], Field(min_length=1, max_length=100)]
    accounts: Annotated[tuple[AccountNo, ...], Field(max_length=100)] = ()
    phones: Annotated[tuple[Msisdn, ...], Field(max_length=100)] = ()
    listed_at: UtcTime
    listed_by: ActorName
    approved_by: ActorName | None = None
    """A listing a confirmed case of the party did not back: the second officer who approved it (four eyes)."""
    expires_at: UtcTime
    state: ListingState = "listed"
    objections: tuple[Objection, ...] = ()
    ended_at: UtcTime | None = None
    repair: Repair | None = None

    @model_validator(mode="after")
    def _expires_after_listing(self) -> "Listing":
        if self.expires_at <= self.listed_at:
            raise PydanticCustomError("expiry_before_listing", "expires_at must be after listed_at")
        return self

    @property
    def in_force(self) -> bool:
        return self.state in IN_FORCE

    def due(self, now: datetime) -> bool:
        """In force but past its expiry: the next read or sweep expires it."""
        return self.in_force and self.expires_at <= now


class ListingEvent(BaseModel):
    """One change of a listing, with the listing as it is after it: the record on the blacklist topic."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    change_id: str
    """``{listing_id}.v{version}``: stable, so a record relayed twice is dropped by consumers."""
    listing_id: str
    move: Move
    from_state: ListingState | None
    to_state: ListingState
    at: UtcTime
    actor: str
    listing: Listing


class ListingDraft(BaseModel):
    """What a credit officer (or a confirmed case) supplies to list a party."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    party: Party
    case_id: Ref
    reason_code: ReasonCode
    reason: Text
    evidence: Annotated[tuple[Ref, ...], Field(min_length=1, max_length=100)]
    accounts: Annotated[tuple[AccountNo, ...], Field(max_length=100)] = ()
    phones: Annotated[tuple[Msisdn, ...], Field(max_length=100)] = ()
    expires_at: UtcTime | None = None
    """None: the default period for the reason code ([credit_blacklist] in thresholds.toml)."""


class Proposal(BaseModel):
    """A listing an officer asked for that no confirmed case of the party backs: it waits for a second
    officer's approval (four eyes) and is listed only then."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    proposal_id: str
    draft: ListingDraft
    proposed_by: ActorName
    proposed_at: UtcTime


class ObjectionFiling(BaseModel):
    """An objection as taken at a counter: the ID the party presented, their grounds, what they brought."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    party_id: Annotated[str, BeforeValidator(_normalised), StringConstraints(min_length=1, max_length=18)]
    """The listed party's ID number or credit code, from the document presented: proof it is theirs."""
    grounds: Text
    evidence: Annotated[tuple[Ref, ...], Field(max_length=100)] = ()


class ObjectionDecision(BaseModel):
    """An officer's review: uphold the listing, or correct it (amended if ``amend`` is given, else removed)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "if": {"properties": {"decision": {"const": "uphold"}}, "required": ["decision"]},
            "then": {"properties": {"amend": {"type": "null"}}},
        },
    )
    decision: Literal["uphold", "correct"]
    note: Text
    amend: Amendment | None = None

    @model_validator(mode="after")
    def _amend_only_when_correcting(self) -> "ObjectionDecision":
        if self.decision == "uphold" and self.amend is not None:
            raise PydanticCustomError(
                "upheld_not_amended", "an upheld listing is not amended: decide 'correct' to amend it"
            )
        return self


class RepairRequest(BaseModel):
    """A credit repair: the conditions the party met, the evidence of each, the officer's note."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    conditions: Annotated[tuple[RepairCondition, ...], Field(min_length=1)]
    evidence: Annotated[tuple[Ref, ...], Field(min_length=1, max_length=100)]
    note: Text


class Worklist(BaseModel):
    """What waits for a credit officer, the blacklist desk's landing: objections pending (oldest first),
    listings proposed for a second officer, listings made lately and listings about to end."""

    model_config = ConfigDict(frozen=True)
    objected: list[Listing]
    proposals: list[Proposal]
    recent: list[Listing]
    ending: list[Listing]
