"""The hold on an ATM transfer to another name, and the only moves its state may make.

States (2016 PBOC/MIIT notice on ATM transfers to others; plan (一)1 item 10):

- ``held``: the funds wait for ``due_at`` (24 hours after the transfer);
- ``released``: paid to the payee, when due or when a freezing order is lifted;
- ``revoked``: the sender took the transfer back within the period;
- ``frozen``: held further on a police order;
- ``returned``: a frozen hold paid back to the victim by order.

Every move is a :class:`HoldEvent`. The graph has no cycle, so (hold, from, to)
names a move once and for all: its id is stable, and a replayed batch produces the
same ids (consumers of the holds topic drop duplicates by ``transition_id``).
The holds topic also carries :class:`PayeeFlagged` warnings (plan item 10 with
issue item 5): a held transfer's payee was flagged by a detector before release.
Consumers tell the two apart by ``kind`` (:data:`HOLD_RECORD`).
"""

import hashlib
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from antifraud.events.types import AccountNo, Code, Fen, UtcTime
from antifraud.refusals import Refusal

HoldState = Literal["held", "released", "revoked", "frozen", "returned"]
Actor = Literal["system", "sender", "police"]
"""Who moves a hold: the ledger when due, the sender revoking, the police by order."""

TRANSITIONS: dict[tuple[HoldState | None, HoldState], frozenset[Actor]] = {
    (None, "held"): frozenset({"system"}),
    ("held", "released"): frozenset({"system"}),
    ("held", "revoked"): frozenset({"sender"}),
    ("held", "frozen"): frozenset({"police"}),
    ("frozen", "released"): frozenset({"police"}),
    ("frozen", "returned"): frozenset({"police"}),
}
"""(from, to) -> who may make the move; ``None`` is "no hold yet" (creation)."""

HUMAN_MOVES: dict[str, tuple[HoldState, Actor]] = {
    "revoke": ("revoked", "sender"),
    "freeze": ("frozen", "police"),
    "release": ("released", "police"),
    "return": ("returned", "police"),
}
"""The moves people make (CLI and HTTP verbs) -> the state reached and on whose authority."""

MOVE_HELP: dict[str, str] = {
    "revoke": "the sender takes the transfer back (refused once the hold is due)",
    "freeze": "hold the funds further on a police order (refused once the hold is due)",
    "release": "pay a frozen hold to the payee: the order was lifted",
    "return": "pay a frozen hold back to the sender by order",
}
"""What each human move means, for the CLI's help and the HTTP API's documentation."""

HOLD_ID_PATTERN = r"^[0-9a-f]{32}$"


class IllegalTransition(Refusal, ValueError):
    """A move the state machine does not allow, from this state or by this actor; ``code`` and ``params``
    for a reason of the caller's (a release under way)."""

    def __init__(
        self,
        hold_id: str,
        current: HoldState | None,
        attempted: HoldState,
        actor: Actor,
        why: str | None = None,
        code: str | None = None,
        **params: object,
    ) -> None:
        self.hold_id, self.current, self.attempted, self.actor = hold_id, current, attempted, actor
        allowed = TRANSITIONS.get((current, attempted))
        code = code or ("hold_actor" if allowed else "hold_transition")
        why = why or (f"not allowed to {actor}" if allowed else "not a legal move")
        super().__init__(
            code,
            f"hold {hold_id}: {current or 'none'} -> {attempted} refused ({why})",
            hold=hold_id[:12],
            current=current or "none",
            attempted=attempted,
            actor=actor,
            **params,
        )


def stable_id(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


class Hold(BaseModel):
    """One held transfer; ``hold_id`` follows from the transfer, so a replayed transfer is the same hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    hold_id: str
    transfer_event_id: Annotated[str, Field(min_length=1, max_length=128)]
    payer_account: AccountNo
    payee_account: AccountNo
    amount_fen: Fen
    atm_id: Code
    created_at: UtcTime
    """The transfer's event time."""
    due_at: UtcTime
    state: HoldState = "held"


class HoldEvent(BaseModel):
    """One move of a hold, with the hold as it is after the move (what a bank needs to act on)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["transition"] = "transition"
    transition_id: str
    hold_id: str
    from_state: HoldState | None
    to_state: HoldState
    at: UtcTime
    actor: Actor
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    by: str | None = None
    """The person who recorded a human move (the teller for a revocation, the analyst for an order)."""
    hold: Hold


class PayeeFlag(BaseModel):
    """The alert that flagged an account, as the ledger remembers it for holds paying that account."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    alert_id: str
    detector: str
    score: float
    at: UtcTime
    """The flagging alert's ``window_end``."""


class PayeeFlagged(BaseModel):
    """A warning on the holds topic: the payee of a still-held transfer was flagged, so the bank can
    call the sender (who may still revoke) before the funds are released. One per hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["payee_flagged"] = "payee_flagged"
    warning_id: str
    hold_id: str
    at: UtcTime
    flag: PayeeFlag
    hold: Hold


HOLD_RECORD: TypeAdapter[HoldEvent | PayeeFlagged] = TypeAdapter(
    Annotated[HoldEvent | PayeeFlagged, Field(discriminator="kind")]
)
"""Parses any record of the holds topic."""


def _move(
    hold: Hold, current: HoldState | None, to: HoldState, at: datetime, actor: Actor, reason: str, by: str | None = None
) -> HoldEvent:
    if actor not in TRANSITIONS.get((current, to), frozenset()):
        raise IllegalTransition(hold.hold_id, current, to, actor)
    return HoldEvent(
        transition_id=stable_id("hold", hold.hold_id, current or "none", to),
        hold_id=hold.hold_id,
        from_state=current,
        to_state=to,
        at=at,
        actor=actor,
        reason=reason,
        by=by,
        hold=hold.model_copy(update={"state": to}),
    )


def creation(hold: Hold) -> HoldEvent:
    """The event that opens a new hold, at its transfer's time."""
    return _move(hold, None, "held", hold.created_at, "system", "ATM transfer to an account in another name")


def transition(
    hold: Hold, to: HoldState, *, at: datetime, actor: Actor, reason: str, by: str | None = None
) -> HoldEvent:
    """Move ``hold`` to ``to``, or raise :class:`IllegalTransition` naming the hold and both states."""
    return _move(hold, hold.state, to, at, actor, reason, by)


def payee_flagged(hold: Hold, flag: PayeeFlag) -> PayeeFlagged:
    """The warning for a held hold whose payee ``flag`` names; its id follows from the hold and the alert."""
    return PayeeFlagged(
        warning_id=stable_id("payee_flagged", hold.hold_id, flag.alert_id),
        hold_id=hold.hold_id,
        at=max(flag.at, hold.created_at),
        flag=flag,
        hold=hold,
    )
