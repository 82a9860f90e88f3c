"""Transfer risk and mule accounts (pure): each signal, the money trail, benign look-alikes.

The detector is run as the pipeline runs it (``streams/pipeline.py``): transfers in event-time order,
each account's own side carried along, and what one account's transfer tells another (an inflow, a flag,
a check for a mule) seen the cross-entity delay later."""

import heapq
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

from antifraud.events.models import BankTransfer
from antifraud.state.store import keyed
from antifraud.thresholds import TransferRiskThresholds, load_thresholds
from detectors.accounts import AccountInfo
from detectors.baseline import Baseline
from detectors.transfer_risk import (
    DETECTOR,
    MULE_DETECTOR,
    Account,
    AccountChange,
    Call,
    Flag,
    Flow,
    InflowCheck,
    TransferRiskResult,
    detect,
    payee_age_days,
    structuring_share,
)

LIMITS = load_thresholds().transfer_risk
DELAY = load_thresholds().stream.cross_entity_delay_seconds
T0 = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)  # 10:00 local
VICTIM, VICTIM_PHONE = "6222000000000001", "13900000001"
MULE, NEXT_HOP = "6222000000000666", "6222000000000777"
FRAUD_NUMBER = "17055550001"


@dataclass
class Facts:
    """What other entities' events said, each seen the delay after its time (the detector's ``View``)."""

    inflows_by: dict[str, list[Flow]] = field(default_factory=dict)
    flags_by: dict[str, list[Flag]] = field(default_factory=dict)
    reached_by: dict[str, list[Call]] = field(default_factory=dict)
    opened_by: dict[str, AccountInfo] = field(default_factory=dict)
    blacklist: frozenset[str] = frozenset()

    def inflows(self, account: str, at: float) -> Sequence[Flow]:
        return [f for f in self.inflows_by.get(account, ()) if f.at <= at - DELAY]

    def flags(self, account: str, at: float) -> Sequence[Flag]:
        return [f for f in self.flags_by.get(account, ()) if f.at <= at - DELAY]

    def reached(self, phone: str, at: float) -> Sequence[Call]:
        return [c for c in self.reached_by.get(phone, ()) if c.at <= at - DELAY]

    def opened(self, account: str, at: float) -> AccountInfo | None:
        info = self.opened_by.get(account)
        return info if info is not None and info.opened_at <= at - DELAY else None

    def blacklisted(self, account: str) -> bool:
        return account in self.blacklist


def transfer(
    event_id: str,
    minutes: float,
    payer: str,
    payee: str,
    yuan: int,
    *,
    channel: str = "mobile",
    payer_name: str = "王芳",
    payee_name: str = "李强",
    phone: str | None = None,
) -> BankTransfer:
    place = {"branch_id": "br-001"} if channel == "counter" else {"atm_id": "atm-9"} if channel == "atm" else {}
    return BankTransfer(
        event_id=event_id,
        event_time=T0 + timedelta(minutes=minutes),
        channel=channel,
        payer_account=payer,
        payer_name=payer_name,
        payer_id_number="320585198609013410",
        payee_account=payee,
        payee_name=payee_name,
        amount_fen=yuan * 100,
        payer_phone=phone,
        **place,
    )


def reached(minutes_before: float, longest_s: int, phone: str = VICTIM_PHONE) -> Facts:
    """The payer's phone was called by a flagged number ``minutes_before`` T0."""
    at = (T0 - timedelta(minutes=minutes_before)).timestamp()
    return Facts(reached_by={phone: [Call(FRAUD_NUMBER, at, longest_s, "call-1")]})


def run(
    transfers: Sequence[BankTransfer],
    facts: Facts | None = None,
    accounts: dict[str, Account] | None = None,
    population: Baseline | None = None,
    limits: TransferRiskThresholds = LIMITS,
) -> TransferRiskResult:
    """The transfers one at a time in event-time order, with their inflow checks delivered the delay later;
    the facts each run adds become visible to the next (the pipeline's pieces, one item each). ``accounts``
    (the own sides, advanced in place) carry over from an earlier run; ``population``: the accounts'
    baseline."""
    view = replace(facts) if facts is not None else Facts()
    view.inflows_by = {k: list(v) for k, v in view.inflows_by.items()}
    view.flags_by = {k: list(v) for k, v in view.flags_by.items()}
    accounts = {} if accounts is None else accounts
    queue: list[tuple[float, int, int, BankTransfer | InflowCheck]] = [
        (t.event_time.timestamp(), 1, n, t) for n, t in enumerate(transfers)
    ]
    heapq.heapify(queue)
    done = TransferRiskResult()
    seq = len(transfers)
    while queue:
        _, _, _, item = heapq.heappop(queue)
        name = item.account if isinstance(item, InflowCheck) else item.payer_account
        result = detect([item], {name: accounts.setdefault(name, Account())}, view, limits, population)
        done.alerts += result.alerts
        done.flags += result.flags
        done.inflows += result.inflows
        for account, change in result.changes.items():
            done.changes.setdefault(account, AccountChange()).added += change.added
        for account, flow in result.inflows:
            view.inflows_by.setdefault(account, []).append(flow)
        for account, flag in result.flags:
            view.flags_by.setdefault(account, []).append(flag)
        for check in result.checks:
            seq += 1
            heapq.heappush(queue, (check.at + DELAY, 0, seq, replace(check, at=check.at + DELAY)))
    return done


def test_a_long_call_from_a_flagged_number_then_a_transfer_to_a_new_payee_warns_the_counter() -> None:
    paid = transfer("t1", 40, VICTIM, MULE, 5_000, channel="counter", phone=VICTIM_PHONE)
    result = run([paid], reached(minutes_before=10, longest_s=25 * 60))
    [alert] = result.alerts
    assert (alert.detector, alert.entity.kind, alert.entity.value) == (DETECTOR, "account", MULE)
    assert alert.severity == "critical"
    assert {(a.kind, a.id) for a in alert.audience} == {("branch", "br-001"), ("bank_risk", None), ("police", None)}
    reasons = {r.feature: (r.value, r.threshold) for r in alert.reasons}
    assert reasons["call_before_hours_max"] == (round(50 / 60, 2), 3)
    assert reasons["flagged_call_minutes"] == (25.0, 5)
    assert reasons["new_payee"] == (1.0, 1)
    assert reasons["amount_no_history"] == (5.0, 2)  # nothing to compare: against min_amount_fen
    assert alert.evidence_event_ids == ["t1"]
    assert alert.transfer is not None  # whom the counter's warning is about: the customer at the desk
    assert (alert.transfer.payer_name, alert.transfer.payer_account, alert.transfer.amount_fen) == (
        paid.payer_name,
        VICTIM,
        paid.amount_fen,
    )
    assert (alert.transfer.channel, alert.transfer.branch_id, alert.transfer.at) == (
        "counter",
        "br-001",
        paid.event_time,
    )
    # The payee is flagged: the victim's own account is never the alert's entity.
    assert [(account, flag.until > paid.event_time.timestamp()) for account, flag in result.flags] == [(MULE, True)]


def test_an_atm_transfer_names_the_atm() -> None:
    paid = transfer("t1", 30, VICTIM, MULE, 5_000, channel="atm", phone=VICTIM_PHONE)
    [alert] = run([paid], reached(minutes_before=5, longest_s=600)).alerts
    assert ("atm", "atm-9") in {(a.kind, a.id) for a in alert.audience}
    assert alert.transfer is not None and alert.transfer.atm_id == "atm-9"


def test_a_stranger_hung_up_on_or_a_call_long_ago_does_not_make_a_payment_suspect() -> None:
    paid = transfer("t1", 30, VICTIM, MULE, 5_000, channel="counter", phone=VICTIM_PHONE)
    assert run([paid], reached(minutes_before=5, longest_s=12)).alerts == []
    assert run([paid], reached(minutes_before=8 * 60, longest_s=1800)).alerts == []
    # Without the payer's phone there is nothing to join on.
    assert run([transfer("t2", 30, VICTIM, MULE, 5_000)], reached(5, 1800)).alerts == []


def test_a_payment_of_the_usual_size_after_a_flagged_call_stays_quiet() -> None:
    """A victim's errands (or a victim paying a friend after the fraud) are not the fraud payment."""
    history = [transfer("h1", -60 * 24, VICTIM, "6222000000000100", 4_000, phone=VICTIM_PHONE)]
    errand = transfer("t1", 30, VICTIM, "6222000000000300", 3_000, channel="counter", phone=VICTIM_PHONE)
    assert run([*history, errand], reached(minutes_before=5, longest_s=1800)).alerts == []


def test_a_relatives_call_then_a_large_transfer_to_them_stays_quiet() -> None:
    """The relative's number is on no list and scored no fraud: a new payee and a large sum are not enough."""
    history = [
        transfer(f"h{i}", -60 * 24 * i, VICTIM, "6222000000000100", 300, phone=VICTIM_PHONE) for i in range(1, 6)
    ]
    help_ = transfer("help", 30, VICTIM, "6222000000000200", 20_000, channel="counter", phone=VICTIM_PHONE)
    result = run([*history, help_])
    assert result.alerts == []


def test_payroll_an_employer_paying_many_people_stays_quiet() -> None:
    wages = [
        transfer(
            f"w{i}",
            i * 0.1,
            "6222000000009000",
            f"62220000001{i:05d}",
            6_500,
            channel="online",
            payer_name="太仓华泰精密机械有限公司",
            payee_name=f"员工{i}",
        )
        for i in range(80)
    ]
    assert run(wages).alerts == []


def opened(days_before: float, holder_id_number: str = "110101199001011234") -> AccountInfo:
    """The payee MULE as the account registry knows it: opened ``days_before`` T0 by ``holder_id_number``."""
    return AccountInfo((T0 - timedelta(days=days_before)).timestamp(), holder_id_number, "ICBC", "br-100", "open-1")


def test_a_transfer_to_a_newly_opened_account_scores_its_age() -> None:
    paid = transfer("t1", 40, VICTIM, MULE, 5_000, channel="counter", phone=VICTIM_PHONE)
    called = reached(minutes_before=10, longest_s=25 * 60)
    [plain] = run([paid], called).alerts
    [new] = run([paid], replace(called, opened_by={MULE: opened(days_before=2)})).alerts
    reasons = {r.feature: (r.value, r.threshold) for r in new.reasons}
    assert reasons["payee_account_age_days_max"] == (round(2 + 40 / 1440, 2), 30)
    assert new.score == round(plain.score + LIMITS.payee_account_age_days_max.weight, 4)


def test_a_transfer_to_a_two_year_old_or_unknown_account_does_not() -> None:
    paid = transfer("t1", 40, VICTIM, MULE, 5_000, channel="counter", phone=VICTIM_PHONE)
    called = reached(minutes_before=10, longest_s=25 * 60)
    [plain] = run([paid], called).alerts
    [old] = run([paid], replace(called, opened_by={MULE: opened(days_before=730)})).alerts
    assert old == plain  # unknown to the registry (opened before the stream began) is old too
    assert "payee_account_age_days_max" not in {r.feature for r in old.reasons}


def test_paying_a_new_account_of_ones_own_stays_quiet() -> None:
    """A relative helps the payer move savings to the card the payer just opened in the payer's own name."""
    history = [
        transfer(f"h{i}", -60 * 24 * i, VICTIM, "6222000000000100", 300, phone=VICTIM_PHONE) for i in range(1, 6)
    ]
    own = transfer("own", 30, VICTIM, MULE, 20_000, channel="counter", payee_name="王芳", phone=VICTIM_PHONE)
    ctx = Facts(opened_by={MULE: opened(days_before=2)})
    assert run([*history, own], ctx).alerts == []
    assert payee_age_days(own, ctx) is None  # same name
    holder = Facts(opened_by={MULE: opened(days_before=2, holder_id_number=own.payer_id_number)})
    assert payee_age_days(own.model_copy(update={"payee_name": "王 芳"}), holder) is None  # the payer is the holder
    assert payee_age_days(own.model_copy(update={"payee_name": "李强"}), ctx) == round(2 + 30 / 1440, 2)


def test_a_blacklisted_payee_alerts_alone() -> None:
    paid = transfer("t1", 0, VICTIM, MULE, 1, phone=VICTIM_PHONE)
    [alert] = run([paid], Facts(blacklist=frozenset({MULE}))).alerts
    assert {r.feature for r in alert.reasons} >= {"blacklisted_payee"}
    assert run([paid]).alerts == []


def test_structuring_share_is_against_the_channels_reporting_limits() -> None:
    assert structuring_share(4_800_000, "atm", LIMITS) == 0.96  # 48,000 yuan cash: under 50,000
    assert structuring_share(5_000_000, "atm", LIMITS) == 0.0  # at the limit: reported, not structured
    assert structuring_share(48_000_000, "mobile", LIMITS) == 0.96  # an individual's 480,000 yuan transfer
    assert structuring_share(4_800_000, "mobile", LIMITS) < LIMITS.structuring_share.threshold


def test_structuring_with_unusual_habits_alerts_without_a_call() -> None:
    history = [
        transfer(f"h{i}", -60 * 24 * i, VICTIM, "6222000000000100", 3_000, phone=VICTIM_PHONE) for i in range(1, 6)
    ]
    late_cash = transfer("cash", 13 * 60, VICTIM, MULE, 48_500, channel="atm", phone=VICTIM_PHONE)  # 23:00 local
    [alert] = run([*history, late_cash]).alerts
    assert {"structuring_share", "new_payee", "amount_multiple", "hour_habit_max", "channel_habit_max"} <= {
        r.feature for r in alert.reasons
    }


def _mule_day() -> list[BankTransfer]:
    """Three unrelated payers pay the mule; each receipt moves on within minutes, the last to a next hop."""
    payers = ["6222000000000011", "6222000000000012", "6222000000000013"]
    flows = []
    for i, payer in enumerate(payers):
        flows.append(transfer(f"in{i}", 60 * i, payer, MULE, 30_000, payer_name=f"付款人{i}", payee_name="赵六"))
        flows.append(
            transfer(f"out{i}", 60 * i + 5, MULE, f"{NEXT_HOP}{i}", 29_500, payer_name="赵六", payee_name="钱七")
        )
    return flows


def test_fan_in_and_pass_through_flag_the_mule_and_its_next_hop() -> None:
    result = run(_mule_day())
    mule = [a for a in result.alerts if a.detector == MULE_DETECTOR]
    assert [a.entity.value for a in mule] == [MULE]
    reasons = {r.feature: r.value for r in mule[0].reasons}
    assert reasons["fan_in_payers"] == 3 and reasons["pass_through_share"] >= 0.98
    assert mule[0].window_end == T0 + timedelta(minutes=125)  # at the third receipt's pass-on
    hops = [a for a in result.alerts if a.detector == DETECTOR]
    assert [a.entity.value for a in hops] == [f"{NEXT_HOP}2"]
    assert {r.feature for r in hops[0].reasons} >= {"payer_flagged", "new_payee"}


def test_moving_money_between_ones_own_cards_is_no_pass_through() -> None:
    """A person with two cards moves each receipt to their other card at once."""
    flows = []
    for i in range(3):
        flows.append(
            transfer(f"in{i}", 60 * i, f"62220000000001{i}", MULE, 30_000, payer_name=f"付款人{i}", payee_name="赵六")
        )
        flows.append(transfer(f"out{i}", 60 * i + 5, MULE, NEXT_HOP, 29_500, payer_name="赵六", payee_name="赵六"))
    assert run(flows).alerts == []


def test_two_transfers_to_one_payee_in_the_same_second_are_two_alerts() -> None:
    """Each is its own incident, with its own id: the case gets both (the second was dropped when the id
    hashed the window start)."""
    first = transfer("v1", 40, VICTIM, MULE, 5_000, channel="counter", phone=VICTIM_PHONE)
    second = transfer("v2", 40, "6222000000000002", MULE, 5_000, channel="counter", phone="13900000002")
    facts = reached(minutes_before=10, longest_s=25 * 60)
    facts.reached_by["13900000002"] = [Call(FRAUD_NUMBER, facts.reached_by[VICTIM_PHONE][0].at, 1500, "call-2")]
    alerts = [a for a in run([first, second], facts).alerts if a.detector == DETECTOR]
    assert [a.trigger for a in alerts] == ["v1", "v2"]
    assert len({a.alert_id for a in alerts}) == 2 and alerts[0].window_start == alerts[1].window_start


def test_a_replay_on_the_accounts_it_left_raises_nothing_and_changes_nothing() -> None:
    """A batch read again after its checkpoint (a crash before the offsets moved): every transfer is
    already among its payer's outflows, so nothing is scored, told or changed again."""
    batch = [*_mule_day(), transfer("v", 200, VICTIM, MULE, 5_000, channel="counter", phone=VICTIM_PHONE)]
    facts = reached(minutes_before=-150, longest_s=1200)
    accounts: dict[str, Account] = {}
    first = run(batch, facts, accounts)
    assert {(a.detector, a.entity.value) for a in first.alerts} == {
        (MULE_DETECTOR, MULE),
        (DETECTOR, f"{NEXT_HOP}2"),
        (DETECTOR, MULE),
    }
    assert len(first.inflows) == len(batch)
    kept = deepcopy(accounts)
    again = run(batch, replace(facts, flags_by=keyed(first.flags), inflows_by=keyed(first.inflows)), accounts)
    assert (again.alerts, again.flags, again.inflows, again.changes) == ([], [], [], {})
    assert accounts == kept
