"""Which transfers are held, and what one batch of transfers does to the ledger (pure).

A hold applies to a personal ATM transfer whose payee account is not in the
payer's own name (2016 PBOC/MIIT notice; plan (一)1 item 10). Names are compared
as the bank recorded them, ignoring case and inner spacing: "Zhang San" and
"zhang  san" are the same person, "张三" and "张四" are not.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from antifraud.alerts.models import Alert, Audience, Entity, Reason
from antifraud.events.models import BankTransfer
from antifraud.holds.models import (
    Hold,
    HoldEvent,
    PayeeFlag,
    PayeeFlagged,
    creation,
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
    pending: tuple[tuple[str, Hold | None, PayeeFlag], ...] = ()
    """Holds whose payee was flagged, not yet warned about: (hold id, the hold if still held, the flag)."""


@dataclass(frozen=True)
class BatchPlan:
    created: list[Hold] = field(default_factory=list)
    events: list[HoldEvent | PayeeFlagged] = field(default_factory=list)
    """Creations, then payee warnings, then releases in due order."""
    released: list[str] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    """One alert per payee warning, to the ATM the transfer was made at."""
    warned: list[str] = field(default_factory=list)
    drained: list[str] = field(default_factory=list)
    """Pending warnings this plan settles: warned, or no longer needed (the hold left ``held``)."""


def warning_alert(warning: PayeeFlagged) -> Alert:
    """The alert for the ATM's bank: the payee of a transfer it still holds was flagged."""
    hold, flag = warning.hold, warning.flag
    return Alert.create(
        detector=WARNING_DETECTOR, entity=Entity(kind="account", value=hold.payee_account),
        window_start=hold.created_at, window_end=warning.at, severity="high", score=flag.score,
        reasons=[Reason(feature=f"payee_flagged_by_{flag.detector}", value=flag.score, threshold=0.0),
                 Reason(feature="held_amount_yuan", value=hold.amount_fen / 100, threshold=0.0)],
        evidence_event_ids=[hold.transfer_event_id],
        audience=[Audience(kind="atm", id=hold.atm_id), Audience(kind="bank_risk")],
    )


def plan_batch(holds: Iterable[Hold], view: LedgerView) -> BatchPlan:
    """New holds are created; pending payee warnings go out; every held hold due by the watermark, a new one
    too, is released at its due time.

    The release time is ``due_at``, not the batch's time, and a warning's id and
    time follow from the hold and the flagging alert, so a replay, a retry or a
    late batch yields the same events with the same ids. Warnings come before
    releases: a hold due in the same batch is still warned about first.
    """
    new = list({h.hold_id: h for h in holds if h.hold_id not in view.existing}.values())
    due: Sequence[Hold] = sorted(
        {h.hold_id: h for h in (*view.due, *(h for h in new if h.due_at <= view.watermark))}.values(),
        key=lambda h: (h.due_at, h.hold_id),
    )
    releases = [transition(h, "released", at=h.due_at, actor="system", reason="hold period elapsed") for h in due]
    warnings = [payee_flagged(hold, flag) for _, hold, flag in view.pending if hold is not None]
    return BatchPlan(
        created=new, events=[*(creation(h) for h in new), *warnings, *releases], released=[h.hold_id for h in due],
        alerts=[warning_alert(w) for w in warnings], warned=[w.hold_id for w in warnings],
        drained=[hold_id for hold_id, _, _ in view.pending],
    )


def payee_flags(alerts: Iterable[Alert]) -> dict[str, PayeeFlag]:
    """Accounts flagged by ``alerts`` (an alert whose entity is an account), each with its strongest alert.

    The hold warnings' own alerts are left out: a warning is not a new finding about the payee.
    """
    flags: dict[str, PayeeFlag] = {}
    for alert in alerts:
        if alert.entity.kind != "account" or alert.detector == WARNING_DETECTOR:
            continue
        flag = PayeeFlag(alert_id=alert.alert_id, detector=alert.detector, score=alert.score, at=alert.window_end)
        known = flags.get(alert.entity.value)
        if known is None or (flag.score, flag.alert_id) > (known.score, known.alert_id):
            flags[alert.entity.value] = flag
    return flags
