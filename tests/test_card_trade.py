"""Card trade as a pure function: a new account paid by unrelated people alerts; its holder,
an employer and relatives, old accounts and late receipts stay quiet; a flagged bulk opener's card
alerts at its first stranger's receipt; quiet periods, replay."""

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone

from antifraud.alerts.models import Audience
from antifraud.events.models import BankTransfer, CardOpening
from antifraud.events.types import make_id_number
from antifraud.thresholds import load_thresholds
from detectors.accounts import AccountInfo
from detectors.card_trade import DETECTOR, Receipt, detect, is_receipt
from detectors.window import EntityState, WindowResult
from tests.windowing import replay_checks, run_batches

LIMITS = load_thresholds().card_trade
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
HOLDER = make_id_number("320585", "19900101", 123)
CARD = "6222000011112222"
OLD = "6222000099990000"
OPENING = CardOpening(
    event_id="open-1",
    event_time=T0,
    bank="icbc",
    id_number=HOLDER,
    account=CARD,
    branch_id="icbc-br-1",
    channel="counter",
)


def info_of(opening: CardOpening) -> AccountInfo:
    return AccountInfo(
        opening.event_time.timestamp(), opening.id_number, opening.bank, opening.branch_id, opening.event_id
    )


ACCOUNTS = {CARD: info_of(OPENING)}


def person(n: int) -> str:
    return make_id_number("320585", "19700101", n)


def paid(n: int, days: float, payer_id: str, payee: str = CARD) -> BankTransfer:
    return BankTransfer(
        event_id=f"tx-{n:03d}",
        event_time=T0 + timedelta(days=days),
        channel="mobile",
        payer_account=f"6228{n:012d}",
        payer_name=f"payer {n}",
        payer_id_number=payer_id,
        payee_account=payee,
        payee_name="holder",
        amount_fen=1_500_000,
    )


def receipts_of(transfers: Sequence[BankTransfer], accounts: Mapping[str, AccountInfo]) -> list[Receipt]:
    """What the payers' side tells each new account (the transfer stage): its receipts, told at payment time."""
    return [
        Receipt(
            t.event_time.timestamp(), t.payee_account, t.event_time.timestamp(), t.event_id, t.payer_id_number, info
        )
        for t in transfers
        if (info := accounts.get(t.payee_account)) is not None and is_receipt(t, info, LIMITS)
    ]


def run(
    events: Sequence[BankTransfer],
    prior: Mapping[str, EntityState] | None = None,
    accounts: Mapping[str, AccountInfo] = ACCOUNTS,
    flagged: Mapping[str, float] | None = None,
) -> WindowResult:
    return detect(receipts_of(events, accounts), prior or {}, flagged or {}, LIMITS)


def test_new_card_paid_by_three_strangers_within_days_alerts_its_bank_and_police() -> None:
    transfers = [paid(i, 2 + i * 0.3, person(i)) for i in range(4)]
    result = run(transfers)
    assert len(result.alerts) == 1
    alert = result.alerts[0]
    assert alert.detector == DETECTOR and alert.entity.kind == "account" and alert.entity.value == CARD
    assert alert.window_start == T0 and alert.window_end == transfers[2].event_time
    assert {r.feature: (r.value, r.threshold) for r in alert.reasons} == {
        "unrelated_payers_30d": (3, 2),
        "account_age_days": (2.6, 30),
    }
    assert alert.evidence_event_ids == ["open-1"] + [t.event_id for t in transfers[:3]]
    assert set(alert.audience) == {Audience(kind="bank_risk", id="icbc"), Audience(kind="police")}


def test_holder_and_two_relatives_funding_a_new_card_stay_quiet() -> None:
    transfers = [
        paid(1, 0.1, HOLDER),
        paid(2, 1, HOLDER),
        paid(3, 2, person(1)),
        paid(4, 5, person(2)),
        paid(5, 9, person(1)),
        paid(6, 20, person(2)),
    ]
    assert run(transfers).alerts == []


def test_payroll_into_a_new_salary_card_stays_quiet() -> None:
    """One employer paying monthly is one payer however often it pays."""
    employer = person(900)
    assert run([paid(i, 1 + 30 * i / 2, employer) for i in range(3)]).alerts == []


def test_payroll_and_relatives_paying_old_accounts_stay_quiet() -> None:
    """Accounts not opened lately (not in the registry) are never judged, however many pay them."""
    transfers = [paid(i, 1, person(i), payee=OLD) for i in range(80)]
    assert receipts_of(transfers, ACCOUNTS) == []
    assert run(transfers).alerts == []


def test_receipts_after_the_account_is_no_longer_new_do_not_count() -> None:
    transfers = [paid(1, 10, person(1)), paid(2, 20, person(2)), paid(3, 31, person(3)), paid(4, 32, person(4))]
    assert run(transfers).alerts == []


def test_receipts_before_the_opening_do_not_count() -> None:
    """A registry that knows an opening later than the receipt (a stale or odd record) is not evidence."""
    transfers = [paid(i, -1 - i * 0.1, person(i)) for i in range(4)]
    assert receipts_of(transfers, ACCOUNTS) == []


def test_one_alert_per_account_across_batches() -> None:
    batches = [[paid(i, 2 + i * 0.2, person(i))] for i in range(6)]
    alerts, state = run_batches(lambda events, prior: run(events, prior), batches)
    assert len(alerts) == 1
    assert state[CARD].alerted_until == T0.timestamp() + 30 * 86400


def test_replay_safe() -> None:
    replay_checks(lambda events, prior: run(events, prior), [paid(i, 2 + i * 0.3, person(i)) for i in range(5)])


FLAGGED = {HOLDER: (T0 + timedelta(days=1)).timestamp()}
"""The holder was flagged for bulk card opening a day after opening this card."""


def test_first_receipt_from_a_stranger_on_a_flagged_dealers_card_alerts() -> None:
    """A likely sold card is flagged before its first receipt is passed on."""
    transfers = [paid(1, 2, person(1)), paid(2, 2.01, person(2))]
    result = run(transfers, flagged=FLAGGED)
    assert len(result.alerts) == 1
    alert = result.alerts[0]
    assert alert.entity.value == CARD and alert.window_end == transfers[0].event_time
    assert {r.feature: (r.value, r.threshold) for r in alert.reasons} == {
        "unrelated_payers_30d": (1, 0),
        "holder_flagged_bulk_opener": (1, 1),
        "account_age_days": (2.0, 30),
    }
    assert alert.evidence_event_ids == ["open-1", "tx-001"]


def test_first_receipt_on_an_unflagged_holders_card_stays_quiet() -> None:
    """The two_cards look-alike (two cards, never flagged) and anyone else's flag leave the limit at its default."""
    second = CardOpening(
        event_id="open-2",
        event_time=T0 + timedelta(days=3),
        bank="ccb",
        id_number=HOLDER,
        account=OLD,
        branch_id="ccb-br-1",
        channel="counter",
    )
    two_cards = {CARD: info_of(OPENING), OLD: info_of(second)}
    transfers = [paid(1, 4, person(1)), paid(2, 5, person(2), payee=OLD), paid(3, 6, person(3))]
    assert run(transfers, accounts=two_cards).alerts == []
    assert run(transfers, accounts=two_cards, flagged={person(1): T0.timestamp()}).alerts == []


def test_flag_after_the_receipt_or_the_holders_own_receipt_does_not_alert() -> None:
    assert run([paid(1, 0.5, person(1))], flagged=FLAGGED).alerts == []
    assert run([paid(1, 2, HOLDER)], flagged=FLAGGED).alerts == []


def test_replay_safe_for_a_flagged_dealers_card() -> None:
    replay_checks(
        lambda events, prior: run(events, prior, flagged=FLAGGED), [paid(i, 2 + i * 0.01, person(i)) for i in range(4)]
    )
