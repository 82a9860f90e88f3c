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
"""

import hashlib
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from antifraud.events.types import AccountNo, Code, Fen, UtcTime

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


class IllegalTransition(ValueError):
    """A move the state machine does not allow, from this state or by this actor."""

    def __init__(self, hold_id: str, current: HoldState | None, attempted: HoldState, actor: Actor) -> None:
        self.hold_id, self.current, self.attempted, self.actor = hold_id, current, attempted, actor
        allowed = TRANSITIONS.get((current, attempted))
        why = f"not allowed to {actor}" if allowed else "not a legal move"
        super().__init__(f"hold {hold_id}: {current or 'none'} -> {attempted} refused ({why})")


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
    transition_id: str
    hold_id: str
    from_state: HoldState | None
    to_state: HoldState
    at: UtcTime
    actor: Actor
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    hold: Hold


def _move(hold: Hold, current: HoldState | None, to: HoldState, at: datetime, actor: Actor, reason: str) -> HoldEvent:
    if actor not in TRANSITIONS.get((current, to), frozenset()):
        raise IllegalTransition(hold.hold_id, current, to, actor)
    return HoldEvent(
        transition_id=stable_id("hold", hold.hold_id, current or "none", to),
        hold_id=hold.hold_id, from_state=current, to_state=to, at=at, actor=actor, reason=reason,
        hold=hold.model_copy(update={"state": to}),
    )


def creation(hold: Hold) -> HoldEvent:
    """The event that opens a new hold, at its transfer's time."""
    return _move(hold, None, "held", hold.created_at, "system", "ATM transfer to an account in another name")


def transition(hold: Hold, to: HoldState, *, at: datetime, actor: Actor, reason: str) -> HoldEvent:
    """Move ``hold`` to ``to``, or raise :class:`IllegalTransition` naming the hold and both states."""
    return _move(hold, hold.state, to, at, actor, reason)
