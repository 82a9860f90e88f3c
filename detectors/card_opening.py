"""Bulk card opening: one ID number opening more bank cards than a person does.

Card dealers open cards at several banks within days on their own (or bought)
ID numbers and sell them as mule accounts (plan (一)1 items 2 and 8). Per ID
number the detector remembers every opening (keyed by event id) for
``history_days`` and judges each new one by: cards and distinct banks within
``burst_days``, cards within ``window_days`` and ``history_days``, and the most
counter (class-I) openings at one bank over the history (the PBOC one-account
rule). Crossing any limit raises one alert per episode listing every feature
with its value and threshold, for the banks' risk teams and the police; the ID
is then quiet for ``burst_days``.

Replay safety: the alert's window is anchored on the opening that crossed the
limit, so the same input gives the same ``alert_id``; openings are upserts
keyed by event id, and only openings up to the judged one count.

:func:`flagged` turns the alerts into flagged ID numbers for card trade: a
flagged dealer's cards are likely sold (PBOC 银发〔2016〕261号; Anti-Telecom and
Online Fraud Law, art. 31), so their first receipt from a stranger is enough.
"""

from collections import Counter
from collections.abc import Mapping, Sequence

from antifraud.alerts.models import Alert, Audience, Reason
from antifraud.events.models import CardOpening
from antifraud.thresholds import CardOpeningThresholds
from detectors.window import DAY, EntityState, Seen, Tracker, WindowResult, fold_id_histories, id_history_alert

DETECTOR = "card_opening"
_OPENINGS = "o"
_SEP = "\x1e"


def _detail(opening: CardOpening) -> str:
    """``"counter\\x1eicbc\\x1ebr-12"``: the channel, the bank, the branch."""
    return _SEP.join([opening.channel, opening.bank, opening.branch_id])


def _bank(seen: Seen) -> str:
    return seen.detail.split(_SEP)[1]


def _reasons(held: Mapping[str, Seen], now: float, limits: CardOpeningThresholds) -> list[Reason]:
    """Every feature of the ID's openings up to ``now``, with its threshold."""
    burst = [s for s in held.values() if s.at >= now - limits.burst_days * DAY]
    window = [s for s in held.values() if s.at >= now - limits.window_days * DAY]
    counter_per_bank = Counter(_bank(s) for s in held.values() if s.detail.startswith("counter" + _SEP))
    return [
        Reason(feature=f"cards_{limits.burst_days}d", value=len(burst), threshold=limits.max_cards_burst),
        Reason(
            feature=f"banks_{limits.burst_days}d",
            value=len({_bank(s) for s in burst}),
            threshold=limits.max_banks_burst,
        ),
        Reason(feature=f"cards_{limits.window_days}d", value=len(window), threshold=limits.max_cards_window),
        Reason(feature=f"cards_{limits.history_days}d", value=len(held), threshold=limits.max_cards_history),
        Reason(
            feature=f"counter_cards_one_bank_{limits.history_days}d",
            value=max(counter_per_bank.values(), default=0),
            threshold=limits.max_counter_cards_per_bank,
        ),
    ]


def _judge(tracker: Tracker, opening: CardOpening, limits: CardOpeningThresholds) -> Alert | None:
    return id_history_alert(
        DETECTOR,
        tracker,
        _OPENINGS,
        opening.id_number,
        Seen(opening.event_time.timestamp(), opening.event_id, _detail(opening)),
        lambda held, at: _reasons(held, at, limits),
        limits,
        lambda evidence: (
            [Audience(kind="police")]
            + [Audience(kind="bank_risk", id=bank) for bank in sorted({_bank(s) for s in evidence})]
        ),
    )


def flagged(alerts: Sequence[Alert]) -> dict[str, float]:
    """ID number -> epoch of its earliest bulk-opening alert (the opening that crossed a limit)."""
    first: dict[str, float] = {}
    for alert in alerts:
        at = alert.window_end.timestamp()
        first[alert.entity.value] = min(at, first.get(alert.entity.value, at))
    return first


def detect(
    openings: Sequence[CardOpening],
    prior: Mapping[str, EntityState],
    limits: CardOpeningThresholds,
) -> WindowResult:
    """Fold a batch of card openings (any order) into per-ID histories; alert on crossings."""
    return fold_id_histories(
        openings,
        prior,
        _OPENINGS,
        limits,
        limits.max_tracked,
        lambda tracker, opening: _judge(tracker, opening, limits),
    )
