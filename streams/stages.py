"""Detector stages: each binds a pure detector to its state, and says what it concludes as data.

``build_stages`` is the one place that says which stage consumes which event kind and which timers
(messages) it runs; the worker (``streams/loop.py``) and ``antifraud detect`` (``streams/offline.py``)
both run what it builds through ``streams/pipeline.py``. A stage's own entities are those of the input
partitions it reads (a caller, an ID number, a payer account, a cell); what it tells other entities
goes as a fact or a timer the cross-entity delay later (``antifraud/state/store.py``):

====================  =========================  ================================================
stage                 reads (owns)               tells others
====================  =========================  ================================================
calls                 callers' windows           who called whom; whom listed numbers reached
sim_registration      ID numbers' SIMs
card_opening          ID numbers' cards          account openings; bulk openers
sms_links             (nothing)                  cells: an SMS with a link went through them
phishing_sms          senders' phishing texts
cells                 cells' windows
transfers             payers' outflows           payees: inflows, flags, a mule check, a receipt
card_trade            new accounts' payers       flags on accounts
holds                 held transfers, payees     payees: a held payment; hold owners: a freeze
fraud_reports         reports waiting to trace   hold owners: freezes
====================  =========================  ================================================
"""

import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from redis.asyncio import Redis

from antifraud import blocklist
from antifraud.alerts.models import Alert
from antifraud.audit.models import AuditEntry
from antifraud.events.models import BankTransfer, CallRecord, CardOpening, FraudReport, SmsRecord
from antifraud.holds import policy
from antifraud.holds.models import Hold, HoldEvent, IllegalTransition, PayeeFlag, creation, stable_id, transition
from antifraud.holds.reports import FraudReportRequest, FreezeRequest, report_id_for, request_from_event
from antifraud.holds.service import HoldLedger, audit_entry
from antifraud.state import keys
from antifraud.state.accounts import FlaggedCodec, OpenedCodec
from antifraud.state.baseline import configured_baseline, configured_scoring
from antifraud.state.fake_base_station import configured_registry
from antifraud.state.fraud_number import CalledByCodec, WarnedCodec, profile_codec
from antifraud.state.holds import PayeeSideCodec
from antifraud.state.money_trail import TrailCodec, TrailEntry
from antifraud.state.store import FactTable, OwnedStore, Staged, Store
from antifraud.state.transfer_risk import CallCodec, FlagCodec, InflowCodec, account_codec, blacklisted
from antifraud.state.window import WindowCodec
from antifraud.thresholds import Thresholds
from detectors import (
    card_opening,
    card_trade,
    fake_base_station,
    fraud_number,
    interception,
    money_trail,
    phishing_sms,
    sim_registration,
    transfer_risk,
)
from detectors.accounts import AccountInfo
from detectors.transfer_risk import Call, Flag, Flow, InflowCheck
from detectors.window import EntityState, WindowResult
from streams import topics
from streams.pipeline import Stage, StageResult
from streams.records import Input, Item, OutRecord, Timer

log = logging.getLogger(__name__)

TRANSFERS = topics.INPUT_TOPICS["bank_transfer"]
CELLS = topics.INPUT_TOPICS["cell_observation"]
REPORTS = topics.INPUT_TOPICS["fraud_report"]


def _timer(kind: str, topic: str, key: str, at: float, data: str, *origin: str) -> Timer:
    """A timer whose id follows from its kind, its entity and what set it (replays set the same one)."""
    return Timer(at, topic, key, kind, data, stable_id("timer", kind, key, *origin))


def _events(items: Sequence[Item]) -> list[Any]:
    return [i.event for i in items if isinstance(i, Input)]


def _of_kind(inputs: Sequence[Input], kind: str) -> list[Any]:
    return [i.event for i in inputs if i.kind == kind]


def _timers(items: Sequence[Item]) -> list[Timer]:
    return [i for i in items if isinstance(i, Timer)]


def _window_changes(store: OwnedStore[EntityState, Any], result: WindowResult) -> list[Staged]:
    return [store.stage(key, result.states[key], change) for key, change in result.changes.items()]


class _Flags:
    """An alert on an account: a fact other stages see (payee and payer flagged), and a message to the
    account's own payee side of the hold (a held payment to it is warned about)."""

    def __init__(self, table: FactTable[Flag], delay: float, quiet_seconds: float) -> None:
        self.table = table
        self.delay = delay
        self.quiet_seconds = quiet_seconds

    def raised(self, account: str, flag: Flag, result: StageResult) -> None:
        result.changes.append(self.table.add(account, flag.at, flag))
        payee_flag = PayeeFlag(
            alert_id=flag.alert_id,
            detector=flag.detector,
            score=flag.score,
            at=datetime.fromtimestamp(flag.at, timezone.utc),
        )
        result.timers.append(
            _timer("hold.flag", TRANSFERS, account, flag.at + self.delay, payee_flag.model_dump_json(), flag.alert_id)
        )

    def of(self, alert: Alert, at: float) -> Flag:
        return Flag(alert.alert_id, alert.detector, alert.score, at, at + self.quiet_seconds)


# -- telecom ---------------------------------------------------------------------------------------


class CallStage:
    """The fraud-number score, then interception and victim tracing for listed and flagged callers.

    One stage because tracing needs the score's alerts and the window it keeps, in the same piece:
    a flagged number's next call is intercepted at once."""

    name = "calls"
    kinds = frozenset({"call_record"})
    timer_kinds: frozenset[str] = frozenset()

    def __init__(self, redis: Redis, thresholds: Thresholds, reached: FactTable[Call], delay: float) -> None:
        limits = self.limits = thresholds.fraud_number
        self.population, self.model = configured_scoring(limits.baseline, limits.model)
        self.interception_limits = thresholds.interception
        ttl = 2 * limits.profile_window_seconds
        self.redis = redis
        self.profiles = OwnedStore(redis, profile_codec(limits))
        self.warned = OwnedStore(redis, WarnedCodec(ttl))
        self.called_by: FactTable[tuple[str, float]] = FactTable(
            redis,
            keys.CALLED_BY,
            CalledByCodec(),
            delay=delay,
            keep_seconds=ttl,
            margin_seconds=2 * delay,
            ttl_seconds=ttl,
            earliest=True,
        )
        self.reached = reached
        self.stores: Sequence[Store] = (self.profiles, self.warned, self.called_by, reached)
        self._listed: dict[str, blocklist.BlockEntry] = {}
        self._unlisted: set[str] = set()
        """Callers the batch looked up and found unlisted (the block list is read once a batch)."""

    def _near_gate(self, calls: Sequence[CallRecord]) -> set[str]:
        """The callers these calls may take past the distinct-callee gate: whose callbacks are needed."""
        count = Counter(c.caller for c in calls)
        gate = self.limits.min_distinct_callees
        return {n for n, k in count.items() if len(self.profiles.get(n)) + k >= gate}

    async def prefetch(self, inputs: Sequence[Input], timers: Sequence[Timer], bound: float) -> None:
        calls = _of_kind(inputs, "call_record")
        callers = {c.caller for c in calls}
        await self.profiles.ensure(callers)
        await self.called_by.ensure(self._near_gate(calls))
        self._listed = await blocklist.lookup(self.redis, callers)
        self._unlisted = callers - set(self._listed)

    async def run(self, items: Sequence[Item]) -> StageResult:
        calls: list[CallRecord] = _events(items)
        callers = {c.caller for c in calls}
        await self.profiles.ensure(callers)
        await self.called_by.ensure(self._near_gate(calls))
        missing = callers - set(self._listed) - self._unlisted
        if missing:
            listed = await blocklist.lookup(self.redis, missing)
            self._listed.update(listed)
            self._unlisted |= missing - set(listed)
        profiles = self.profiles.states(callers)

        def callbacks(number: str, at: float) -> dict[str, float]:
            return dict(self.called_by.visible(number, at))

        scored = fraud_number.detect(calls, profiles, callbacks, self.limits, self.population, self.model)
        result = StageResult(alerts=scored.alerts)
        result.changes += [self.profiles.stage(n, profiles[n], change) for n, change in scored.changes.items()]
        result.changes += [self.called_by.add(callee, at, (caller, at)) for callee, caller, at in scored.called_by]
        await self._trace(calls, profiles, result)
        return result

    async def _trace(
        self, calls: Sequence[CallRecord], profiles: dict[str, fraud_number.Profile], result: StageResult
    ) -> None:
        """Interception decisions for calls of listed or flagged numbers, warnings for whom they reached."""
        listed = {n: e for n, e in self._listed.items() if n in profiles}
        window = self.limits.profile_window_seconds
        flags = {
            n: interception.Flag(p.alerted_until - window, p.alerted_until)
            for n, p in profiles.items()
            if self.interception_limits.warn_on_alert and p.alerted_until > 0
        }
        acted = interception.acted_on(calls, listed, flags)
        if not acted:
            return
        await self.warned.ensure(acted)
        await self.called_by.ensure(acted)
        newest = {n: profiles[n].times[-1] for n in acted}
        traced = interception.intercept(
            calls,
            listed,
            flags,
            {n: profiles[n].window for n in acted},
            {n: dict(self.called_by.visible(n, newest[n])) for n in acted},
            self.warned.states(acted),
            self.interception_limits,
        )
        decided = {d.call_event_id for d in traced.decisions}
        by_number: dict[str, set[str]] = {}
        for warning in traced.warnings:
            by_number.setdefault(warning.number, set()).add(warning.victim)
            at = warning.last_call_at.timestamp()
            result.changes.append(
                self.reached.add(
                    warning.victim, at, Call(warning.number, at, warning.longest_call_s, warning.warning_id)
                )
            )
        for call in calls:
            if call.event_id in decided:
                at = call.event_time.timestamp()
                result.changes.append(
                    self.reached.add(call.callee, at, Call(call.caller, at, call.duration_s, call.event_id))
                )
        for number, victims in by_number.items():
            known = self.warned.get(number)
            result.changes.append(self.warned.stage(number, known | victims, frozenset(victims)))
        result.records += [OutRecord.of(topics.INTERCEPTIONS, d.number, d.model_dump_json()) for d in traced.decisions]
        result.records += [OutRecord.of(topics.VICTIM_WARNINGS, w.victim, w.model_dump_json()) for w in traced.warnings]


class WindowStage:
    """A windowed detector over its own entities' events (SIM registrations, phishing SMS)."""

    timer_kinds: frozenset[str] = frozenset()

    def __init__(self, name: str, kind: str, store: OwnedStore[EntityState, Any], entity: str, detect: Any) -> None:
        self.name = name
        self.kinds = frozenset({kind})
        self.store = store
        self.entity = entity
        self.detect = detect
        self.stores: Sequence[Store] = (store,)

    async def prefetch(self, inputs: Sequence[Input], timers: Sequence[Timer], bound: float) -> None:
        await self.store.ensure(getattr(i.event, self.entity) for i in inputs if i.kind in self.kinds)

    async def run(self, items: Sequence[Item]) -> StageResult:
        events = _events(items)
        entities = {getattr(e, self.entity) for e in events}
        await self.store.ensure(entities)
        result: WindowResult = self.detect(events, self.store.states(entities))
        return StageResult(alerts=result.alerts, changes=_window_changes(self.store, result))


class CardOpeningStage(WindowStage):
    """Bulk card opening per ID number; each opening is also a fact of the account registry, and an ID
    that is alerted on a fact that its holder is a bulk opener (card trade reads both)."""

    def __init__(
        self, redis: Redis, thresholds: Thresholds, opened: FactTable[AccountInfo], bulk_openers: FactTable[float]
    ) -> None:
        limits = thresholds.card_opening
        super().__init__(
            "card_opening",
            "card_opening",
            OwnedStore(redis, WindowCodec(keys.WINDOWS_CARD, ttl_seconds=limits.history_days * 86400)),
            "id_number",
            lambda events, prior: card_opening.detect(events, prior, limits),
        )
        self.opened = opened
        self.bulk_openers = bulk_openers
        self.stores = (self.store, opened, bulk_openers)

    async def run(self, items: Sequence[Item]) -> StageResult:
        result = await super().run(items)
        openings: list[CardOpening] = _events(items)
        for o in openings:
            at = o.event_time.timestamp()
            result.changes.append(
                self.opened.add(o.account, at, AccountInfo(at, o.id_number, o.bank, o.branch_id, o.event_id))
            )
        for id_number, at in card_opening.flagged(result.alerts).items():
            result.changes.append(self.bulk_openers.add(id_number, at, at))
        return result


class SmsLinkStage:
    """An SMS with a link tells its cell (the fake-base-station detector counts them per cell)."""

    name = "sms_links"
    kinds = frozenset({"sms_record"})
    timer_kinds: frozenset[str] = frozenset()
    stores: Sequence[Store] = ()

    def __init__(self, delay: float) -> None:
        self.delay = delay

    async def prefetch(self, inputs: Sequence[Input], timers: Sequence[Timer], bound: float) -> None:
        return None

    async def run(self, items: Sequence[Item]) -> StageResult:
        result = StageResult()
        for item in items:
            sms: SmsRecord = item.event  # type: ignore[union-attr]
            if fake_base_station.carries_link(sms):
                at = sms.event_time.timestamp()
                data = orjson.dumps([sms.sender, sms.event_id, at]).decode()
                result.timers.append(_timer("fbs.sms", CELLS, sms.cell_id, at + self.delay, data, sms.event_id))
        return result


class CellStage:
    """Fake base stations: a cell's anomalous observations and the link SMS sent through it."""

    name = "cells"
    kinds = frozenset({"cell_observation"})
    timer_kinds = frozenset({"fbs.sms"})

    def __init__(self, redis: Redis, thresholds: Thresholds) -> None:
        self.limits = thresholds.fake_base_station
        self.registry = configured_registry(self.limits)
        self.store = OwnedStore(redis, WindowCodec(keys.WINDOWS_CELL, ttl_seconds=2 * self.limits.window_seconds))
        self.stores: Sequence[Store] = (self.store,)

    def _items(self, items: Sequence[Item]) -> list[fake_base_station.Item]:
        out: list[fake_base_station.Item] = []
        for item in items:
            if isinstance(item, Timer):
                sender, event_id, sent_at = orjson.loads(item.data)
                out.append(fake_base_station.SmsSighting(item.at, item.key, sender, event_id, sent_at))
            else:
                out.append(item.event)
        return out

    async def prefetch(self, inputs: Sequence[Input], timers: Sequence[Timer], bound: float) -> None:
        observed = [i for i in inputs if i.kind == "cell_observation"]
        kept = fake_base_station.relevant(self._items([*observed, *timers]), self.registry, self.limits)
        told = {sms.cell_id for sms in _of_kind(inputs, "sms_record") if fake_base_station.carries_link(sms)}
        await self.store.ensure({i.cell_id for i in kept} | told)

    async def run(self, items: Sequence[Item]) -> StageResult:
        kept = fake_base_station.relevant(self._items(items), self.registry, self.limits)
        cells = {i.cell_id for i in kept}
        await self.store.ensure(cells)
        result = fake_base_station.detect(kept, self.store.states(cells), self.registry, self.limits)
        return StageResult(alerts=result.alerts, changes=_window_changes(self.store, result))


# -- banking ---------------------------------------------------------------------------------------


class _TransferView:
    """What the transfer detector may know at a time: facts the cross-entity delay old, the blacklist."""

    def __init__(self, stage: "TransferStage") -> None:
        self.stage = stage

    def inflows(self, account: str, at: float) -> Sequence[Flow]:
        return self.stage.inflows.visible(account, at)

    def flags(self, account: str, at: float) -> Sequence[Flag]:
        return self.stage.flags.table.visible(account, at)

    def reached(self, phone: str, at: float) -> Sequence[Call]:
        return self.stage.reached.visible(phone, at)

    def opened(self, account: str, at: float) -> AccountInfo | None:
        known = self.stage.opened.visible(account, at)
        return known[-1] if known else None

    def blacklisted(self, account: str) -> bool:
        return account in self.stage.blacklist


class TransferStage:
    """Suspicious transfers and mule accounts on the payer's side; the payer's transfers also go into
    the money-trail index, tell their payee of the inflow (a fact, and a mule check), and tell a newly
    opened payee of a receipt (card trade)."""

    name = "transfers"
    kinds = frozenset({"bank_transfer"})
    timer_kinds = frozenset({"transfer.inflow"})

    def __init__(self, redis: Redis, thresholds: Thresholds, facts: "BankingFacts", delay: float) -> None:
        self.limits = thresholds.transfer_risk
        self.card_trade_limits = thresholds.card_trade
        self.redis = redis
        self.delay = delay
        self.accounts = OwnedStore(redis, account_codec(self.limits))
        configured = configured_baseline(self.limits.baseline, "accounts")
        self.population = None if configured is None else configured[0]
        self.inflows = facts.inflows
        self.flags = facts.flags
        self.reached = facts.reached
        self.opened = facts.opened
        self.trail = facts.trail
        self.blacklist: set[str] = set()
        """The blacklisted accounts among those looked up in this batch (:attr:`looked_up`)."""
        self.looked_up: set[str] = set()
        self.view = _TransferView(self)
        self.stores: Sequence[Store] = (
            self.accounts,
            self.inflows,
            facts.flags.table,
            facts.reached,
            facts.opened,
            facts.trail,
        )

    async def _ensure(self, transfers: Sequence[BankTransfer], checked: Iterable[str]) -> None:
        payers = {t.payer_account for t in transfers}
        payees = {t.payee_account for t in transfers}
        checked = set(checked)
        await self.accounts.ensure(payers | checked)
        await self.inflows.ensure(payers | payees | checked)
        await self.flags.table.ensure(payers | payees | checked)
        await self.reached.ensure({t.payer_phone for t in transfers if t.payer_phone})
        await self.opened.ensure(payees)

    async def prefetch(self, inputs: Sequence[Input], timers: Sequence[Timer], bound: float) -> None:
        transfers = _of_kind(inputs, "bank_transfer")
        await self._ensure(transfers, {t.key for t in timers} | {t.payee_account for t in transfers})
        self.blacklist.clear()
        self.looked_up.clear()
        await self._look_up({t.payee_account for t in transfers})

    async def _look_up(self, payees: set[str]) -> None:
        """Which of ``payees`` are on the credit blacklist (read once a batch)."""
        missing = payees - self.looked_up
        if missing:
            self.blacklist |= await blacklisted(self.redis, missing)
            self.looked_up |= missing

    async def run(self, items: Sequence[Item]) -> StageResult:
        transfers: list[BankTransfer] = _events(items)
        checks = [InflowCheck(t.at, t.key, t.data) for t in _timers(items)]
        await self._ensure(transfers, {c.account for c in checks})
        await self._look_up({t.payee_account for t in transfers})
        named = {t.payer_account for t in transfers} | {c.account for c in checks}
        accounts = self.accounts.states(named)
        ordered: list[BankTransfer | InflowCheck] = [
            item.event if isinstance(item, Input) else InflowCheck(item.at, item.key, item.data) for item in items
        ]
        scored = transfer_risk.detect(ordered, accounts, self.view, self.limits, self.population)
        result = StageResult(alerts=scored.alerts)
        result.changes += [self.accounts.stage(a, accounts[a], change) for a, change in scored.changes.items()]
        result.changes += [self.inflows.add(payee, flow.at, flow) for payee, flow in scored.inflows]
        for account, flag in scored.flags:
            self.flags.raised(account, flag, result)
        result.timers += [
            _timer("transfer.inflow", TRANSFERS, c.account, c.at + self.delay, c.event_id, c.event_id)
            for c in scored.checks
        ]
        for t in transfers:
            self._tell_others(t, result)
        return result

    def _tell_others(self, transfer: BankTransfer, result: StageResult) -> None:
        at = transfer.event_time.timestamp()
        entry = TrailEntry(
            money_trail.Transfer(
                transfer.event_id, transfer.payer_account, transfer.payee_account, transfer.amount_fen, at
            ),
            policy.needs_hold(transfer),
        )
        result.changes.append(self.trail.add(transfer.payer_account, at, entry))
        info = self.view.opened(transfer.payee_account, at)
        if info is not None and card_trade.is_receipt(transfer, info, self.card_trade_limits):
            data = orjson.dumps(
                [
                    at,
                    transfer.event_id,
                    transfer.payer_id_number,
                    info.opened_at,
                    info.holder_id_number,
                    info.bank,
                    info.branch_id,
                    info.event_id,
                ]
            ).decode()
            result.timers.append(
                _timer(
                    "card_trade.receipt", TRANSFERS, transfer.payee_account, at + self.delay, data, transfer.event_id
                )
            )


class CardTradeStage:
    """Card trade: a new account's receipts from people other than its holder, told by their payers."""

    name = "card_trade"
    kinds: frozenset[str] = frozenset()
    timer_kinds = frozenset({"card_trade.receipt"})

    def __init__(self, redis: Redis, thresholds: Thresholds, facts: "BankingFacts") -> None:
        self.limits = thresholds.card_trade
        self.store = OwnedStore(
            redis, WindowCodec(keys.WINDOWS_CARD_TRADE, ttl_seconds=2 * self.limits.new_account_days * 86400)
        )
        self.bulk_openers = facts.bulk_openers
        self.flags = facts.flags
        self.stores: Sequence[Store] = (self.store, facts.bulk_openers, facts.flags.table)

    @staticmethod
    def _receipt(timer: Timer) -> card_trade.Receipt:
        paid_at, event_id, payer, opened_at, holder, bank, branch, opening = orjson.loads(timer.data)
        return card_trade.Receipt(
            timer.at, timer.key, paid_at, event_id, payer, AccountInfo(opened_at, holder, bank, branch, opening)
        )

    async def prefetch(self, inputs: Sequence[Input], timers: Sequence[Timer], bound: float) -> None:
        receipts = [self._receipt(t) for t in timers]
        payees = {t.payee_account for t in _of_kind(inputs, "bank_transfer")}
        await self.store.ensure({r.account for r in receipts} | payees)
        await self.bulk_openers.ensure(r.opening.holder_id_number for r in receipts)

    async def run(self, items: Sequence[Item]) -> StageResult:
        receipts = [self._receipt(t) for t in _timers(items)]
        accounts = {r.account for r in receipts}
        await self.store.ensure(accounts)
        holders = {r.opening.holder_id_number for r in receipts}
        await self.bulk_openers.ensure(holders)
        flagged = {h: known[0] for h in holders if (known := self.bulk_openers.visible(h, max(r.at for r in receipts)))}
        detected = card_trade.detect(receipts, self.store.states(accounts), flagged, self.limits)
        result = StageResult(alerts=detected.alerts, changes=_window_changes(self.store, detected))
        told = {r.event_id: r.at for r in receipts}  # an alert is raised when its receipt is told
        for alert in detected.alerts:
            self.flags.raised(alert.entity.value, self.flags.of(alert, told[alert.trigger]), result)
        return result


class BankingFacts:
    """The fact tables the banking stages share (one writer stage each, read by several)."""

    def __init__(self, redis: Redis, thresholds: Thresholds, delay: float) -> None:
        risk = thresholds.transfer_risk
        margin = 2 * delay
        history = risk.history_days * 86400
        profile = 2 * thresholds.fraud_number.profile_window_seconds
        self.inflows = FactTable(
            redis,
            keys.INFLOWS,
            InflowCodec(),
            delay=delay,
            keep_seconds=max(risk.fan_in_window_seconds, risk.pass_on_window_seconds),  # fan-in; mules over days
            margin_seconds=margin,
            ttl_seconds=history,
        )
        self.flags = _Flags(
            FactTable(
                redis,
                keys.FLAGS,
                FlagCodec(),
                delay=delay,
                keep_seconds=risk.quiet_seconds,
                margin_seconds=margin,
                ttl_seconds=risk.quiet_seconds + history,
            ),
            delay,
            risk.quiet_seconds,
        )
        self.reached = FactTable(
            redis,
            keys.REACHED,
            CallCodec(),
            delay=delay,
            keep_seconds=max(risk.call_window_seconds, profile),
            margin_seconds=margin,
            ttl_seconds=max(risk.call_window_seconds, profile),
        )
        horizon = thresholds.account_registry.horizon_days * 86400
        self.opened = FactTable(
            redis,
            keys.OPENED,
            OpenedCodec(),
            delay=delay,
            keep_seconds=horizon,
            margin_seconds=margin,
            ttl_seconds=horizon,
        )
        openers = thresholds.card_opening.history_days * 86400
        self.bulk_openers = FactTable(
            redis,
            keys.BULK_OPENERS,
            FlaggedCodec(),
            delay=delay,
            keep_seconds=openers,
            margin_seconds=margin,
            ttl_seconds=openers,
            earliest=True,
        )
        trail = thresholds.holds.trail.index_hours * 3600
        self.trail = FactTable(
            redis,
            keys.TRAIL,
            TrailCodec(),
            delay=delay,
            keep_seconds=trail,
            margin_seconds=margin,
            ttl_seconds=int(trail),
        )


# -- holds -----------------------------------------------------------------------------------------


class HoldMoves:
    """The hold moves a batch decides (a store: queued into the checkpoint's transaction), and the holds
    it knows: read from the ledger for its timers, or made by it."""

    def __init__(self, ledger: HoldLedger) -> None:
        self.ledger = ledger
        self.book: dict[str, Hold] = {}
        self._created: list[Hold] = []
        self._released: list[Hold] = []
        self._frozen: list[Hold] = []
        self._latest = -math.inf

    def apply(self, change: Any) -> None:
        kind, hold = change
        self.book[hold.hold_id] = hold
        {"created": self._created, "released": self._released, "frozen": self._frozen}[kind].append(hold)
        self._latest = max(self._latest, hold.created_at.timestamp())

    def queue(self, pipe: Any) -> None:
        if self._created or self._released or self._frozen:
            self.ledger.queue_moves(
                pipe, self._created, self._released, self._frozen, datetime.fromtimestamp(self._latest, timezone.utc)
            )

    def committed(self) -> None:
        self.discard()

    def forget(self) -> None:
        self.discard()

    def discard(self) -> None:
        self.book.clear()
        self._created.clear()
        self._released.clear()
        self._frozen.clear()
        self._latest = -math.inf


class HoldStage:
    """The 24-hour ATM hold: a hold for each ATM transfer to another name, released when due unless
    frozen; and each payee's side, where a held payment and a flag on the payee meet.

    Per batch: the ledger's clock is raised to the batch's bound and the holds its timers move are read,
    in one script, before anything is produced (a person's revoke or freeze of a hold due by then is
    refused from that moment), and the moves are written at the checkpoint, each only while the hold is
    still held."""

    name = "holds"
    kinds = frozenset({"bank_transfer"})
    timer_kinds = frozenset({"hold.release", "hold.freeze", "hold.held", "hold.flag"})

    def __init__(self, redis: Redis, thresholds: Thresholds, delay: float) -> None:
        limits = thresholds.holds
        self.period = timedelta(hours=limits.period_hours)
        self.flag_horizon = timedelta(hours=limits.payee_flag_hours)
        self.delay = delay
        self.ledger = HoldLedger.configured(redis, limits)
        self.moves = HoldMoves(self.ledger)
        self.sides = OwnedStore(redis, PayeeSideCodec(int(2 * limits.period_hours * 3600)))
        self.stores: Sequence[Store] = (self.moves, self.sides)

    @staticmethod
    def _hold_of(timer: Timer) -> str | None:
        if timer.kind == "hold.release":
            return timer.data
        if timer.kind == "hold.freeze":
            return str(orjson.loads(timer.data)[0])
        return None

    async def _read(self, bound: float, hold_ids: Iterable[str], *, advance: bool = False) -> None:
        """Read the holds not known yet; with ``advance``, raise the ledger's clock to ``bound`` too."""
        missing = [i for i in hold_ids if i not in self.moves.book]
        if missing or advance:
            _, found = await self.ledger.advance(datetime.fromtimestamp(bound, timezone.utc), missing)
            self.moves.book.update(found)

    async def prefetch(self, inputs: Sequence[Input], timers: Sequence[Timer], bound: float) -> None:
        self._bound = bound
        await self._read(bound, [i for t in timers if (i := self._hold_of(t)) is not None], advance=True)
        transfers = _of_kind(inputs, "bank_transfer")
        told = {t.payee_account for t in transfers} | {t.payer_account for t in transfers}  # held or flagged
        await self.sides.ensure(told | {t.key for t in timers if t.kind in ("hold.held", "hold.flag")})

    async def run(self, items: Sequence[Item]) -> StageResult:
        await self._read(self._bound, [i for t in _timers(items) if (i := self._hold_of(t)) is not None])
        await self.sides.ensure(t.key for t in _timers(items) if t.kind in ("hold.held", "hold.flag"))
        result = StageResult()
        sides: dict[str, policy.PayeeSide] = {}  # changed in this run: a second message to a payee builds on the first
        for item in items:
            if isinstance(item, Input):
                self._transfer(item.event, result)
            elif item.kind == "hold.release":
                self._release(item, result)
            elif item.kind == "hold.freeze":
                self._freeze(item, result)
            else:
                self._payee(item, sides, result)
        return result

    def _moved(self, kind: str, event: HoldEvent, result: StageResult) -> None:
        result.changes.append(Staged(self.moves, (kind, event.hold)))
        result.records.append(OutRecord.of(topics.HOLDS, event.hold.payer_account, event.model_dump_json()))
        result.audit.append(audit_entry(event))

    def _transfer(self, transfer: BankTransfer, result: StageResult) -> None:
        if not policy.needs_hold(transfer):
            return
        hold = policy.hold_for(transfer, self.period)
        if hold.hold_id in self.moves.book:
            return  # the same transfer twice in the input
        self._moved("created", creation(hold), result)
        at = transfer.event_time.timestamp()
        result.timers.append(
            _timer("hold.release", TRANSFERS, hold.payer_account, hold.due_at.timestamp(), hold.hold_id, hold.hold_id)
        )
        result.timers.append(
            _timer("hold.held", TRANSFERS, hold.payee_account, at + self.delay, hold.model_dump_json(), hold.hold_id)
        )

    def _release(self, timer: Timer, result: StageResult) -> None:
        hold = self.moves.book.get(timer.data)
        if hold is not None and hold.state == "held":
            self._moved("released", policy.release(hold), result)

    def _freeze(self, timer: Timer, result: StageResult) -> None:
        hold_id, report_id, by, reason, hop = orjson.loads(timer.data)
        hold = self.moves.book.get(hold_id)
        if hold is None or hold.state != "held" or hold.due_at.timestamp() <= timer.at:
            log.info("a report's freeze of a hold came too late: it had been released or moved")
            return
        now = datetime.fromtimestamp(timer.at, timezone.utc)
        try:
            event = transition(hold, "frozen", at=now, actor="police", reason=reason, by=by)
        except IllegalTransition:
            return
        self._moved("frozen", event, result)
        request = FreezeRequest(
            request_id=stable_id("freeze-request", report_id, "stop_payment", hold.payee_account, hold_id),
            report_id=report_id,
            kind="stop_payment",
            account=hold.payee_account,
            amount_fen=hold.amount_fen,
            hop=hop,
            hold_id=hold_id,
            evidence_event_ids=[hold.transfer_event_id],
            requested_at=now,
            requested_by=by,
            reason=reason,
        )
        result.records.append(OutRecord.of(topics.FREEZE_REQUESTS, request.account, request.model_dump_json()))

    def _payee(self, timer: Timer, sides: dict[str, policy.PayeeSide], result: StageResult) -> None:
        side = sides[timer.key] if timer.key in sides else self.sides.get(timer.key)
        now = datetime.fromtimestamp(timer.at, timezone.utc)
        if timer.kind == "hold.held":
            change = policy.on_held(side, Hold.model_validate_json(timer.data), now, self.flag_horizon)
        else:
            change = policy.on_flag(side, PayeeFlag.model_validate_json(timer.data), now, self.flag_horizon)
        sides[timer.key] = change.side
        result.changes.append(self.sides.stage(timer.key, change.side, change.side))
        for warning in change.warnings:
            result.records.append(OutRecord.of(topics.HOLDS, warning.hold.payer_account, warning.model_dump_json()))
            result.alerts.append(policy.warning_alert(warning))
            result.audit.append(audit_entry(warning))


# -- fraud reports ---------------------------------------------------------------------------------


class FraudReportStage:
    """A fraud report naming the victim's account is traced once its window has closed: the money
    followed from the victim's transfers in the window (``detectors/money_trail.py``), freeze requests
    raised for the accounts still holding it, and the held transfers that carried it frozen (a message
    to each hold's owner, which also asks the bank to stop the payment).

    Tracing waits until the window's end (or the report, if later) plus the cross-entity delay, so a
    transfer the report covers is traced whichever arrives first; the report's id follows from its
    request, so a replayed report traces and freezes once."""

    name = "fraud_reports"
    kinds = frozenset({"fraud_report"})
    timer_kinds = frozenset({"report.trace"})

    def __init__(self, thresholds: Thresholds, facts: BankingFacts, delay: float) -> None:
        self.limits = thresholds.holds.trail
        self.period = thresholds.holds.period_hours * 3600
        self.margin = timedelta(minutes=self.limits.report_margin_minutes)
        self.delay = delay
        self.trail = facts.trail
        self.stores: Sequence[Store] = (facts.trail,)

    async def prefetch(self, inputs: Sequence[Input], timers: Sequence[Timer], bound: float) -> None:
        return None

    async def run(self, items: Sequence[Item]) -> StageResult:
        result = StageResult()
        for item in items:
            if isinstance(item, Input):
                self._schedule(item.event, result)
            else:
                await self._trace(item, result)
        return result

    def _schedule(self, report: FraudReport, result: StageResult) -> None:
        request = request_from_event(report, self.margin)
        if request is None:
            return
        at = max(report.event_time, request.end).timestamp() + self.delay
        data = orjson.dumps([request.model_dump(mode="json"), f"fraud-report:{report.source}"]).decode()
        result.timers.append(_timer("report.trace", REPORTS, report.victim_id_number, at, data, report.event_id))

    async def _follow(self, request: FraudReportRequest, now: float) -> tuple[money_trail.Trail, set[str]]:
        """The trail as the facts show it at ``now``, and the event ids of the held transfers in it."""
        hop = self.limits.hop_hours * 3600
        start, end = request.start.timestamp(), request.end.timestamp()
        until = end + self.limits.max_hops * hop
        await self.trail.ensure([request.victim_account])
        held: set[str] = set()

        def outflows(account: str, lo: float, hi: float) -> list[money_trail.Transfer]:
            entries = [e for e in self.trail.visible(account, now) if lo <= e.transfer.at <= hi]
            held.update(e.transfer.event_id for e in entries if e.held and e.transfer.at + self.period > now)
            return [e.transfer for e in entries]

        victim = outflows(request.victim_account, start, end)
        known: dict[str, list[money_trail.Transfer]] = {}
        while True:
            trail = money_trail.trace(
                victim, known, max_hops=self.limits.max_hops, hop_seconds=hop, stopped=frozenset(held)
            )
            if not trail.unexplored:
                return trail, held
            await self.trail.ensure(trail.unexplored)
            known.update({a: outflows(a, start, until) for a in trail.unexplored})

    async def _trace(self, timer: Timer, result: StageResult) -> None:
        raw, by = orjson.loads(timer.data)
        request = FraudReportRequest.model_validate(raw)
        report_id = report_id_for(request)
        trail, held = await self._follow(request, timer.at)
        now = datetime.fromtimestamp(timer.at, timezone.utc)
        why = f"fraud report {report_id[:12]}: {request.reason}"
        freezes = []
        for item in trail.transfers:
            if item.transfer.event_id in held and item.stopped:
                hold_id = policy.hold_id_for(item.transfer.event_id)
                freezes.append(hold_id)
                data = orjson.dumps([hold_id, report_id, by, why, item.hop]).decode()
                result.timers.append(
                    _timer(
                        "hold.freeze", TRANSFERS, item.transfer.payer, timer.at + self.delay, data, report_id, hold_id
                    )
                )
        requests = [
            FreezeRequest(
                request_id=stable_id("freeze-request", report_id, "freeze", a.account, ""),
                report_id=report_id,
                kind="freeze",
                account=a.account,
                amount_fen=a.retained_fen,
                hop=a.hop,
                evidence_event_ids=list(a.evidence),
                requested_at=now,
                requested_by=by,
                reason=why,
            )
            for a in trail.accounts.values()
            if a.retained_fen > 0
        ]
        result.records += [OutRecord.of(topics.FREEZE_REQUESTS, r.account, r.model_dump_json()) for r in requests]
        result.audit.append(
            AuditEntry(
                by,
                "holds.report",
                f"report:{report_id}",
                after={
                    "victim_account": request.victim_account,
                    "start": request.start.isoformat(),
                    "end": request.end.isoformat(),
                    "freezing_holds": freezes,
                    "requests": [
                        {"kind": r.kind, "account": r.account, "amount_fen": r.amount_fen, "hop": r.hop}
                        for r in requests
                    ],
                },
                event_id=stable_id("fraud-report-trace", report_id),
                at=now,
            )
        )


# -- all of them -----------------------------------------------------------------------------------


def build_stages(redis: Redis, thresholds: Thresholds) -> list[Stage]:
    """Every stage, in the order their output is produced (any order gives the same results)."""
    delay = thresholds.stream.cross_entity_delay_seconds
    facts = BankingFacts(redis, thresholds, delay)
    sims = thresholds.sim_registration
    phishing = thresholds.phishing_sms
    judge = phishing_sms.DomainJudge(phishing)
    stages: list[Stage] = [
        CallStage(redis, thresholds, facts.reached, delay),
        WindowStage(
            "sim_registration",
            "sim_registration",
            OwnedStore(redis, WindowCodec(keys.WINDOWS_SIM, ttl_seconds=sims.history_days * 86400)),
            "id_number",
            lambda events, prior: sim_registration.detect(events, prior, sims),
        ),
        CardOpeningStage(redis, thresholds, facts.opened, facts.bulk_openers),
        SmsLinkStage(delay),
        WindowStage(
            "phishing_sms",
            "sms_record",
            OwnedStore(redis, WindowCodec(keys.WINDOWS_PHISHING, ttl_seconds=2 * phishing.window_seconds)),
            "sender",
            lambda texts, prior: phishing_sms.detect(texts, prior, judge, phishing),
        ),
        CellStage(redis, thresholds),
        TransferStage(redis, thresholds, facts, delay),
        CardTradeStage(redis, thresholds, facts),
        HoldStage(redis, thresholds, delay),
        FraudReportStage(thresholds, facts, delay),
    ]
    return stages
