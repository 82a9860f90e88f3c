"""Which transfers are held, and what one batch of transfers does to the ledger (pure).

A hold applies to a personal ATM transfer whose payee account is not in the
payer's own name (2016 PBOC/MIIT notice; plan (一)1 item 10). Names are compared
as the bank recorded them, ignoring case and inner spacing: "Zhang San" and
"zhang  san" are the same person, "张三" and "张四" are not.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from antifraud.events.models import BankTransfer
from antifraud.holds.models import Hold, HoldEvent, creation, stable_id, transition


def _same_name(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def needs_hold(transfer: BankTransfer) -> bool:
    return transfer.channel == "atm" and not _same_name(transfer.payer_name, transfer.payee_name)


def hold_id_for(transfer_event_id: str) -> str:
    return stable_id("hold", transfer_event_id)


def hold_for(transfer: BankTransfer, period: timedelta) -> Hold:
    """The hold of a transfer that :func:`needs_hold`, due ``period`` after the transfer (event time)."""
    assert transfer.atm_id is not None, "BankTransfer validation requires atm_id on ATM transfers"
    return Hold(
        hold_id=hold_id_for(transfer.event_id), transfer_event_id=transfer.event_id,
        payer_account=transfer.payer_account, payee_account=transfer.payee_account,
        amount_fen=transfer.amount_fen, atm_id=transfer.atm_id,
        created_at=transfer.event_time, due_at=transfer.event_time + period,
    )


@dataclass(frozen=True)
class LedgerView:
    """What the ledger holds for a batch, read before it is processed."""

    watermark: datetime
    """Event time the ledger has reached: the stored one or the batch's newest, whichever is later."""
    existing: frozenset[str] = frozenset()
    """Ids of the batch's holds already in the ledger (a replayed transfer)."""
    due: tuple[Hold, ...] = ()
    """Held holds due by the watermark."""


@dataclass(frozen=True)
class BatchPlan:
    created: list[Hold] = field(default_factory=list)
    events: list[HoldEvent] = field(default_factory=list)
    """Creations, then releases in due order."""
    released: list[str] = field(default_factory=list)


def plan_batch(holds: Iterable[Hold], view: LedgerView) -> BatchPlan:
    """New holds are created; every held hold due by the watermark, a new one too, is released at its due time.

    The release time is ``due_at``, not the batch's time, so a replay, a retry or
    a late batch yields the same event with the same id.
    """
    new = list({h.hold_id: h for h in holds if h.hold_id not in view.existing}.values())
    due: Sequence[Hold] = sorted(
        {h.hold_id: h for h in (*view.due, *(h for h in new if h.due_at <= view.watermark))}.values(),
        key=lambda h: (h.due_at, h.hold_id),
    )
    releases = [transition(h, "released", at=h.due_at, actor="system", reason="hold period elapsed") for h in due]
    return BatchPlan(created=new, events=[creation(h) for h in new] + releases, released=[h.hold_id for h in due])
