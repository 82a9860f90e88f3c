"""Which transfers are held, when a hold is released, and when its payee's flag is told to its bank (pure).

A hold applies to a personal ATM transfer whose payee account is not in the
payer's own name (2016 PBOC/MIIT notice; plan (一)1 item 10). Names are compared
as the bank recorded them, ignoring case and inner spacing: "Zhang San" and
"zhang  san" are the same person, "张三" and "张四" are not.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from antifraud.alerts.models import Alert, Audience, Entity, Reason
from antifraud.events.models import BankTransfer
from antifraud.holds.models import (
    Hold,
    HoldEvent,
    PayeeFlag,
    PayeeFlagged,
    payee_flagged,
    stable_id,
    transition,
)

WARNING_DETECTOR = "hold_payee_flagged"
"""The detector name of the alert that tells the ATM's bank a held transfer's payee was flagged."""


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
        hold_id=hold_id_for(transfer.event_id),
        transfer_event_id=transfer.event_id,
        payer_account=transfer.payer_account,
        payee_account=transfer.payee_account,
        amount_fen=transfer.amount_fen,
        atm_id=transfer.atm_id,
        created_at=transfer.event_time,
        due_at=transfer.event_time + period,
    )


def warning_alert(warning: PayeeFlagged) -> Alert:
    """The alert for the ATM's bank: the payee of a transfer it still holds was flagged."""
    hold, flag = warning.hold, warning.flag
    return Alert.create(
        detector=WARNING_DETECTOR,
        entity=Entity(kind="account", value=hold.payee_account),
        trigger=warning.warning_id,
        window_start=hold.created_at,
        window_end=warning.at,
        severity="high",
        score=flag.score,
        reasons=[
            Reason(feature=f"payee_flagged_by_{flag.detector}", value=flag.score, threshold=0.0),
            Reason(feature="held_amount_yuan", value=hold.amount_fen / 100, threshold=0.0),
        ],
        evidence_event_ids=[hold.transfer_event_id],
        audience=[Audience(kind="atm", id=hold.atm_id), Audience(kind="bank_risk")],
    )


@dataclass(frozen=True)
class PayeeSide:
    """What a payee account's owner keeps for payee warnings: the held holds paying it (until due) and
    the alerts flagging it (for ``payee_flag_hours``), each told to it by a message."""

    holds: Mapping[str, Hold] = field(default_factory=dict)
    flags: Mapping[str, PayeeFlag] = field(default_factory=dict)


@dataclass(frozen=True)
class PayeeChange:
    """A payee side after a message, and the warnings it gives: a held hold and a flag on its payee meet
    once, whichever message comes second (a flag that came first warns the holds made while it holds)."""

    side: PayeeSide
    warnings: list[PayeeFlagged]


def _pruned(side: PayeeSide, now: datetime, flag_horizon: timedelta) -> PayeeSide:
    return PayeeSide(
        holds={i: h for i, h in side.holds.items() if h.due_at > now},
        flags={i: f for i, f in side.flags.items() if f.at + flag_horizon > now},
    )


def on_held(side: PayeeSide, hold: Hold, now: datetime, flag_horizon: timedelta) -> PayeeChange:
    """A hold paying the account was made (told at ``now``): warned about each flag already known that
    was still remembered when the hold was made."""
    side = _pruned(side, now, flag_horizon)
    warnings = [payee_flagged(hold, f) for f in side.flags.values() if f.at + flag_horizon > hold.created_at]
    return PayeeChange(PayeeSide({**side.holds, hold.hold_id: hold}, side.flags), warnings)


def on_flag(side: PayeeSide, flag: PayeeFlag, now: datetime, flag_horizon: timedelta) -> PayeeChange:
    """An alert flagged the account (told at ``now``): every hold paying it and not yet due is warned about."""
    side = _pruned(side, now, flag_horizon)
    warnings = [payee_flagged(h, flag) for h in side.holds.values()]
    return PayeeChange(PayeeSide(side.holds, {**side.flags, flag.alert_id: flag}), warnings)


def release(hold: Hold) -> HoldEvent:
    """The release of a held hold at its due time."""
    return transition(hold, "released", at=hold.due_at, actor="system", reason="hold period elapsed")
