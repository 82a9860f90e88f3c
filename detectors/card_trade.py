"""Card trade: a newly opened account that unrelated people soon pay into (the sold card).

A card sold or rented to a fraud ring (plan (一)1 item 8) stays in the seller's
name, so payee names match; what gives it away is that within days of opening
it receives from several people who are not its holder (victims), whereas a
new account of one's own is funded by its holder, an employer or a relative or
two. Per account opened within ``new_account_days`` (from the account
registry) the detector remembers each receipt from a payer other than the
holder (keyed by event id) and alerts once when the distinct payers exceed
``max_unrelated_payers``; the account is then quiet until it is no longer new.
A card whose holder was flagged for bulk card opening before the receipt (see
:func:`detectors.card_opening.flagged`) is likely sold, and a dealer's cards
pass each receipt on within minutes, so for it the limit is
``max_unrelated_payers_bulk_opener`` (0: the first stranger's receipt alerts).

The account's state belongs to the owner of its partition of the transfers (as a payer). Payments
are keyed by their payer, so the payer's side tells the account of each receipt (:func:`is_receipt`)
with a message delivered the cross-entity delay later (a :class:`Receipt`), judged as of the payment.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from antifraud.alerts.models import Alert, Audience, Entity, Reason
from antifraud.events.models import BankTransfer
from antifraud.thresholds import CardTradeThresholds
from detectors.accounts import AccountInfo
from detectors.window import DAY, EntityState, Seen, Tracker, WindowResult, judge, limit_alert, result_of, trackers

DETECTOR = "card_trade"
_RECEIPTS = "r"


@dataclass(frozen=True)
class Receipt:
    """A payment into a newly opened account from someone other than its holder, as the account's owner
    learns of it: ``at`` is when the message reaches it, ``paid_at`` when the transfer was made."""

    at: float
    account: str
    paid_at: float
    event_id: str
    payer_id_number: str
    opening: AccountInfo


def is_receipt(transfer: BankTransfer, info: AccountInfo | None, limits: CardTradeThresholds) -> bool:
    """A transfer into an account opened within ``new_account_days`` from someone other than its holder:
    what the payer's side tells the account (the payee's opening as known at the transfer)."""
    return (
        info is not None
        and info.opened_within(transfer.event_time.timestamp(), limits.new_account_days)
        and transfer.payer_id_number != info.holder_id_number
    )


def _reasons(
    payers: set[str], info: AccountInfo, now: float, holder_flagged: bool, limits: CardTradeThresholds
) -> list[Reason]:
    """The payer count against the limit for the holder; a flagged holder is listed as a reason."""
    limit = limits.max_unrelated_payers_bulk_opener if holder_flagged else limits.max_unrelated_payers
    flag = [Reason(feature="holder_flagged_bulk_opener", value=1, threshold=1)] if holder_flagged else []
    return [
        Reason(feature=f"unrelated_payers_{limits.new_account_days}d", value=len(payers), threshold=limit),
        *flag,
        Reason(feature="account_age_days", value=round(info.age_days(now), 2), threshold=limits.new_account_days),
    ]


def _judge(
    tracker: Tracker, receipt: Receipt, flagged: Mapping[str, float], limits: CardTradeThresholds
) -> Alert | None:
    now, info = receipt.paid_at, receipt.opening
    holder_flagged = flagged.get(info.holder_id_number, float("inf")) <= now
    verdict = judge(
        tracker,
        _RECEIPTS,
        Seen(now, receipt.event_id, receipt.payer_id_number),
        lambda held, at: _reasons({s.detail for s in held.values()}, info, at, holder_flagged, limits),
        info.opened_at + limits.new_account_days * DAY,
    )
    if verdict is None:
        return None
    held, reasons = verdict
    return limit_alert(
        DETECTOR,
        Entity(kind="account", value=receipt.account),
        (datetime.fromtimestamp(info.opened_at, timezone.utc), now),
        reasons,
        [info.event_id] + [s.event_id for s in sorted(held.values())],
        [Audience(kind="bank_risk", id=info.bank), Audience(kind="police")],
        receipt.event_id,
    )


def detect(
    receipts: Sequence[Receipt],
    prior: Mapping[str, EntityState],
    flagged: Mapping[str, float],
    limits: CardTradeThresholds,
) -> WindowResult:
    """Fold a piece's receipts (in batch order) into per-account payers; alert on crossings.

    ``flagged`` maps holder ID numbers to when they were first flagged for bulk card opening."""
    tracked = trackers(
        {r.account for r in receipts}, prior, {_RECEIPTS: limits.new_account_days * DAY}, limits.max_tracked
    )
    alerts = [alert for r in receipts if (alert := _judge(tracked[r.account], r, flagged, limits)) is not None]
    return result_of(alerts, tracked)
