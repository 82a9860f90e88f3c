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

Replay safety: the alert's window starts at the account's opening, so an
account has one ``alert_id``; receipts are upserts keyed by event id and only
receipts up to the judged one count.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

from antifraud.alerts.models import Alert, Audience, Entity, Reason
from antifraud.events.models import BankTransfer
from antifraud.state.accounts import AccountInfo
from antifraud.thresholds import CardTradeThresholds
from detectors.window import DAY, EntityState, Seen, Tracker, WindowResult, changes_of, judge, limit_alert, trackers

DETECTOR = "card_trade"
_RECEIPTS = "r"


def relevant(transfers: Sequence[BankTransfer], accounts: Mapping[str, AccountInfo],
             limits: CardTradeThresholds) -> list[BankTransfer]:
    """Receipts of newly opened accounts from someone other than the holder: what the detector judges."""
    return [
        t for t in transfers
        if (info := accounts.get(t.payee_account)) is not None
        and info.opened_within(t.event_time.timestamp(), limits.new_account_days)
        and t.payer_id_number != info.holder_id_number
    ]


def _reasons(payers: set[str], info: AccountInfo, now: float, holder_flagged: bool,
             limits: CardTradeThresholds) -> list[Reason]:
    """The payer count against the limit for the holder; a flagged holder is listed as a reason."""
    limit = limits.max_unrelated_payers_bulk_opener if holder_flagged else limits.max_unrelated_payers
    flag = [Reason(feature="holder_flagged_bulk_opener", value=1, threshold=1)] if holder_flagged else []
    return [
        Reason(feature=f"unrelated_payers_{limits.new_account_days}d", value=len(payers), threshold=limit),
        *flag,
        Reason(feature="account_age_days", value=round(info.age_days(now), 2), threshold=limits.new_account_days),
    ]


def _judge(tracker: Tracker, transfer: BankTransfer, info: AccountInfo, flagged: Mapping[str, float],
           limits: CardTradeThresholds) -> Alert | None:
    now = transfer.event_time.timestamp()
    holder_flagged = flagged.get(info.holder_id_number, float("inf")) <= now
    verdict = judge(tracker, _RECEIPTS, Seen(now, transfer.event_id, transfer.payer_id_number),
                    lambda held, at: _reasons({s.detail for s in held.values()}, info, at, holder_flagged, limits),
                    info.opened_at + limits.new_account_days * DAY)
    if verdict is None:
        return None
    held, reasons = verdict
    return limit_alert(
        DETECTOR, Entity(kind="account", value=transfer.payee_account),
        (datetime.fromtimestamp(info.opened_at, timezone.utc), now), reasons,
        [info.event_id] + [s.event_id for s in sorted(held.values())],
        [Audience(kind="bank_risk", id=info.bank), Audience(kind="police")],
    )


def detect(
    transfers: Sequence[BankTransfer],
    accounts: Mapping[str, AccountInfo],
    prior: Mapping[str, EntityState],
    flagged: Mapping[str, float],
    limits: CardTradeThresholds,
) -> WindowResult:
    """Fold the batch's receipts of new accounts (any order) into per-account payers; alert on crossings.

    ``flagged`` maps holder ID numbers to when they were flagged for bulk card opening."""
    receipts = relevant(transfers, accounts, limits)
    tracked = trackers({t.payee_account for t in receipts}, prior,
                       {_RECEIPTS: limits.new_account_days * DAY}, limits.max_tracked)
    alerts = [
        alert
        for transfer in sorted(receipts, key=lambda t: (t.event_time, t.event_id))
        if (alert := _judge(tracked[transfer.payee_account], transfer, accounts[transfer.payee_account],
                            flagged, limits)) is not None
    ]
    return WindowResult(alerts=alerts, changes=changes_of(tracked))
