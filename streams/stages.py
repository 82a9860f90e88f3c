"""Detector stages: each binds a pure detector to its Redis state store.

``build_stages`` is the one place that says which detectors consume which event
kind; the worker (``streams/app.py``) and the offline runner
(``streams/offline.py``) both use it.
"""

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Literal

from redis.asyncio import Redis

from antifraud import blocklist
from antifraud.alerts.models import Alert
from antifraud.audit.service import AuditLog
from antifraud.clock import utcnow
from antifraud.events.models import BankTransfer, CallRecord, CardOpening, FraudReport
from antifraud.holds import policy
from antifraud.holds.models import Hold
from antifraud.holds.reports import report_fraud, request_from_event
from antifraud.holds.service import HoldLedger
from antifraud.state.accounts import AccountRegistry, BulkOpeners
from antifraud.state.fake_base_station import configured_registry
from antifraud.state.fraud_number import FraudNumberStore
from antifraud.state.interception import WarnedStore
from antifraud.state.money_trail import TransferIndex
from antifraud.state.transfer_risk import TransferRiskStore
from antifraud.state.window import WindowStore
from antifraud.thresholds import (
    CardTradeThresholds,
    FakeBaseStationThresholds,
    FraudNumberThresholds,
    HoldThresholds,
    InterceptionThresholds,
    MoneyTrailThresholds,
    PhishingSmsThresholds,
    Thresholds,
    TransferRiskThresholds,
)
from detectors import (
    card_opening,
    card_trade,
    fake_base_station,
    fraud_number,
    interception,
    phishing_sms,
    sim_registration,
    transfer_risk,
)
from detectors.window import EntityState, WindowResult
from streams import topics
from streams.batch import Outcome, Stage

log = logging.getLogger(__name__)


class FraudNumberStage:
    """The fraud-number score, then interception and victim tracing for listed and flagged callers.

    One stage because tracing needs the score's alerts and the calls it keeps,
    in the same batch: a listed number's next call is intercepted at once.
    """

    def __init__(
        self, store: FraudNumberStore, warned: WarnedStore, redis: Redis,
        limits: FraudNumberThresholds, interception_limits: InterceptionThresholds,
    ) -> None:
        self.store = store
        self.warned = warned
        self.redis = redis
        self.limits = limits
        self.interception_limits = interception_limits

    async def __call__(self, calls: Sequence[CallRecord]) -> Outcome:
        callers = {call.caller for call in calls}
        prior, listed = await asyncio.gather(self.store.load(callers), blocklist.lookup(self.redis, callers))
        result = fraud_number.detect(calls, prior, self.limits)
        window = self.limits.profile_window_seconds
        flags = {}
        for number, change in result.changes.items():
            until = change.alerted_until or (prior[number].alerted_until if number in prior else 0.0)
            if until and self.interception_limits.warn_on_alert:
                flags[number] = interception.Flag(until - window, until)
        acted = interception.acted_on(calls, listed, flags)
        warned = await self.warned.load(acted)
        after = {
            n: fraud_number.next_state(prior.get(n, fraud_number.NumberState()), result.changes[n], result.called_by.get(n, {}))
            for n in acted
        }
        traced = interception.intercept(calls, listed, flags, after, warned, self.interception_limits)
        decided = {d.call_event_id for d in traced.decisions}
        intercepted = [call for call in calls if call.event_id in decided]

        async def flush() -> None:
            await self.store.apply(prior, result)
            await self.warned.apply(traced.warnings, intercepted)

        extra = [(topics.INTERCEPTIONS, d.number.encode(), d.model_dump_json().encode()) for d in traced.decisions]
        extra += [(topics.VICTIM_WARNINGS, w.victim.encode(), w.model_dump_json().encode()) for w in traced.warnings]
        return Outcome(alerts=result.alerts, flush_state=flush, extra=extra)


class WindowStage:
    """A windowed detector (see ``detectors.window``) with its per-entity store."""

    def __init__(
        self,
        store: WindowStore,
        entities: Callable[[Sequence[Any]], set[str]],
        detect: Callable[[Sequence[Any], Mapping[str, EntityState]], WindowResult],
    ) -> None:
        self.store = store
        self.entities = entities
        self.detect = detect

    async def __call__(self, events: Sequence[Any]) -> Outcome:
        prior = await self.store.load(self.entities(events))
        result = self.detect(events, prior)
        return Outcome(alerts=result.alerts, flush_state=lambda: self.store.apply(result.changes))


def _id_history_stage(
    redis: Redis, prefix: str, history_days: int,
    detect: Callable[[Sequence[Any], Mapping[str, EntityState]], WindowResult],
) -> WindowStage:
    """Per-ID-number histories (SIM registrations, card openings) remembered for ``history_days``."""
    return WindowStage(
        WindowStore(redis, prefix=prefix, ttl_seconds=history_days * 86400),
        lambda events: {e.id_number for e in events},
        detect,
    )


def _fake_base_station_stage(redis: Redis, limits: FakeBaseStationThresholds) -> WindowStage:
    """One stage object for both cell observations and SMS: they fill the same per-cell state."""
    registry = configured_registry(limits)
    return WindowStage(
        WindowStore(redis, prefix="fbs:", ttl_seconds=2 * limits.window_seconds),
        lambda events: {e.cell_id for e in fake_base_station.relevant(events, registry, limits)},
        lambda events, prior: fake_base_station.detect(events, prior, registry, limits),
    )


def _phishing_stage(redis: Redis, limits: PhishingSmsThresholds) -> WindowStage:
    judge = phishing_sms.DomainJudge(limits)
    return WindowStage(
        WindowStore(redis, prefix="phish:", ttl_seconds=2 * limits.window_seconds),
        lambda texts: {t.sender for t in texts if t.link_domains and judge.phishing_link(t)},
        lambda texts, prior: phishing_sms.detect(texts, prior, judge, limits),
    )


class CardOpeningStage:
    """Bulk card opening per ID number; the flush also remembers the flagged IDs for card trade."""

    def __init__(self, histories: WindowStage, openers: BulkOpeners) -> None:
        self.histories = histories
        self.openers = openers

    async def __call__(self, openings: Sequence[CardOpening]) -> Outcome:
        outcome = await self.histories(openings)
        flagged = card_opening.flagged(outcome.alerts)

        async def flush() -> None:
            await outcome.flush_state()
            await self.openers.flag(flagged)

        return replace(outcome, flush_state=flush)


class AccountRegistryStage:
    """Records the batch's card openings in the account registry, after the alerts like any state."""

    def __init__(self, registry: AccountRegistry) -> None:
        self.registry = registry

    async def __call__(self, openings: Sequence[CardOpening]) -> Outcome:
        return Outcome(flush_state=lambda: self.registry.record(openings))


class CardTradeStage:
    """Card trade on transfers: the registry says which payees are new, their store keeps the payers,
    and the flagged bulk openers say which holders' cards are likely sold.

    Two round trips only when the batch pays a newly opened account (rare; its payers and its holder's
    flag are then read concurrently), else one.
    """

    def __init__(self, store: WindowStore, registry: AccountRegistry, openers: BulkOpeners,
                 limits: CardTradeThresholds) -> None:
        self.store = store
        self.registry = registry
        self.openers = openers
        self.limits = limits

    async def __call__(self, transfers: Sequence[BankTransfer]) -> Outcome:
        accounts = await self.registry.opened({t.payee_account for t in transfers})
        receipts = card_trade.relevant(transfers, accounts, self.limits)
        prior, flagged = await asyncio.gather(
            self.store.load({t.payee_account for t in receipts}),
            self.openers.flagged({accounts[t.payee_account].holder_id_number for t in receipts}),
        ) if receipts else ({}, {})
        result = card_trade.detect(receipts, accounts, prior, flagged, self.limits)
        return Outcome(alerts=result.alerts, flush_state=lambda: self.store.apply(result.changes))


class TransferRiskStage:
    """Suspicious transfers and mule accounts: account states, blacklist and calls to payers in one read,
    the payees' openings from the account registry in another (concurrent)."""

    def __init__(self, store: TransferRiskStore, registry: AccountRegistry, limits: TransferRiskThresholds) -> None:
        self.store = store
        self.registry = registry
        self.limits = limits

    async def __call__(self, transfers: Sequence[BankTransfer]) -> Outcome:
        payees = {t.payee_account for t in transfers}
        (prior, context), opened = await asyncio.gather(
            self.store.load(
                {t.payer_account for t in transfers} | payees, payees,
                {t.payer_phone for t in transfers if t.payer_phone},
            ),
            self.registry.opened(payees),
        )
        result = transfer_risk.detect(transfers, prior, replace(context, opened=opened), self.limits)
        payers = {t.payer_account for t in transfers}
        return Outcome(alerts=result.alerts, flush_state=lambda: self.store.apply(result.states, payers))


class HoldStage:
    """The 24-hour ATM hold: creates holds for ATM transfers to other names, warns about held holds whose
    payee was flagged, releases due ones by the ledger's clock.

    Order within a batch (steps of ``streams.batch``), and within a tick (:meth:`tick`):

    1. Read the ledger (one script): raise the watermark to the batch's newest
       event time (a tick: to the wall clock, when the ledger follows it), read
       which of the batch's holds exist, the held holds due by the watermark and
       the pending payee warnings. Raising the watermark first is what lets a
       human move refuse a hold whose release may be planned.
    2. Plan purely: new holds and their creation events; payee warnings; releases
       at ``due_at``, each with an id fixed by (hold, held, released).
    3. Produce the events to ``antifraud.holds`` and the warnings' alerts, and
       wait for the broker's acks.
    4. Flush (one script): create the holds, settle the warnings, release each
       planned hold only if it is still held.

    A crash before 4 replays to the same plan and the same ids, since the ledger
    did not move; after 4, the holds exist and are released, so the replay
    plans nothing. A hold is released at most once: the script refuses a hold
    that is no longer held, and the refusals are counted and logged. The tick,
    a batch and other workers may plan the same release concurrently: the topic
    may then carry a release twice, with the same transition id (consumers drop
    repeats by id), while the ledger and the audit trail record it once.
    """

    def __init__(self, ledger: HoldLedger, limits: HoldThresholds, clock: Literal["event", "wall"] = "event") -> None:
        self.ledger = ledger
        self.period = timedelta(hours=limits.period_hours)
        self.clock = clock
        self.lag = timedelta(seconds=limits.wall_clock_lag_seconds)
        self.max_ahead = timedelta(minutes=limits.max_event_time_ahead_minutes)

    async def __call__(self, transfers: Sequence[BankTransfer]) -> Outcome:
        holds = [policy.hold_for(t, self.period) for t in transfers if policy.needs_hold(t)]
        view = await self.ledger.load([h.hold_id for h in holds], self._newest(transfers))
        return self._outcome(holds, view)

    def _newest(self, transfers: Sequence[BankTransfer]) -> datetime:
        """The batch's newest event time, but no further ahead of the wall clock than the limit allows."""
        newest = max(t.event_time for t in transfers)
        limit = utcnow() + self.max_ahead
        if newest > limit:
            log.warning("transfer event time %s is ahead of the wall clock; the hold watermark stops at %s",
                        newest.isoformat(), limit.isoformat())
            return limit
        return newest

    async def tick(self, now: datetime) -> Outcome:
        """Between batches: with the wall clock, release what is due by ``now`` less the lag (a quiet night
        still releases on time); with either clock, send pending payee warnings and the releases one batch
        left over (more were due than ``max_releases_per_batch``)."""
        view = await self.ledger.load([], now - self.lag if self.clock == "wall" else None)
        return self._outcome([], view)

    def _outcome(self, holds: Sequence[Hold], view: policy.LedgerView) -> Outcome:
        plan = policy.plan_batch(holds, view)

        async def flush() -> None:
            refused = await self.ledger.apply(plan, view.watermark)
            if refused:
                # Expected now and then: the tick and a batch (or two workers) may plan the same release;
                # the script lets one through, and the repeated record carries the same transition id.
                log.info("%d hold release(s) refused: already moved by another worker, the tick or an earlier try",
                         refused)

        extra = [(topics.HOLDS, e.hold.payer_account.encode(), e.model_dump_json().encode()) for e in plan.events]
        return Outcome(alerts=plan.alerts, flush_state=flush, extra=extra)


async def flag_payees(ledger: HoldLedger, alerts: Sequence[Alert]) -> None:
    """Alerts from the alerts topic in: accounts they flag are remembered and the held holds paying them
    queued for a warning (sent by the next hold batch or tick)."""
    await ledger.flag(policy.payee_flags(alerts))


class MoneyTrailStage:
    """Records every transfer in the per-account index of outgoing transfers, for tracing on a fraud report."""

    def __init__(self, index: TransferIndex) -> None:
        self.index = index

    async def __call__(self, transfers: Sequence[BankTransfer]) -> Outcome:
        return Outcome(flush_state=lambda: self.index.record(transfers))


class FraudReportStage:
    """Fraud reports naming the victim's account: each traced and acted on like ``antifraud holds report``
    (the victim's held transfers frozen, the money followed, freeze requests raised).

    Which reports to trace and over which window is pure (:func:`request_from_event`); the trace acts
    in the flush (step 4 of ``streams.batch``), as of the report's event time. A replayed report gets
    the same report id, so its holds are not frozen twice nor its requests queued twice.
    """

    def __init__(self, ledger: HoldLedger, index: TransferIndex, audit: AuditLog, limits: MoneyTrailThresholds) -> None:
        self.ledger = ledger
        self.index = index
        self.audit = audit
        self.limits = limits
        self.margin = timedelta(minutes=limits.report_margin_minutes)

    async def __call__(self, reports: Sequence[FraudReport]) -> Outcome:
        traced = [(r, q) for r in reports if (q := request_from_event(r, self.margin)) is not None]

        async def flush() -> None:
            for report, request in traced:
                await report_fraud(self.ledger, self.index, self.audit, request, by=f"fraud-report:{report.source}",
                                   limits=self.limits, now=report.event_time)

        return Outcome(flush_state=flush)


def build_stages(redis: Redis, thresholds: Thresholds) -> dict[str, list[Stage]]:
    """Event kind -> the detector stages that consume it, in the order they run."""
    scoring = thresholds.fraud_number
    cells = _fake_base_station_stage(redis, thresholds.fake_base_station)
    accounts = AccountRegistry(redis, horizon_days=thresholds.account_registry.horizon_days)
    sims, cards, trade = thresholds.sim_registration, thresholds.card_opening, thresholds.card_trade
    openers = BulkOpeners(redis, ttl_days=cards.history_days)
    return {
        "call_record": [
            FraudNumberStage(
                FraudNumberStore(redis, profile_window_seconds=scoring.profile_window_seconds),
                WarnedStore(redis, ttl_seconds=2 * scoring.profile_window_seconds),
                redis, scoring, thresholds.interception,
            ),
        ],
        "sim_registration": [_id_history_stage(redis, "simreg:", sims.history_days,
                                               lambda events, prior: sim_registration.detect(events, prior, sims))],
        "cell_observation": [cells],
        "sms_record": [cells, _phishing_stage(redis, thresholds.phishing_sms)],
        "card_opening": [
            CardOpeningStage(_id_history_stage(redis, "cardopen:", cards.history_days,
                                               lambda events, prior: card_opening.detect(events, prior, cards)),
                             openers),
            AccountRegistryStage(accounts),
        ],
        "bank_transfer": [
            CardTradeStage(WindowStore(redis, prefix="cardtrade:", ttl_seconds=2 * trade.new_account_days * 86400),
                           accounts, openers, trade),
            TransferRiskStage(TransferRiskStore.configured(redis, thresholds.transfer_risk), accounts,
                              thresholds.transfer_risk),
            HoldStage(HoldLedger.configured(redis, thresholds.holds), thresholds.holds),
            MoneyTrailStage(TransferIndex.configured(redis, thresholds.holds.trail)),
        ],
        "fraud_report": [
            FraudReportStage(HoldLedger.configured(redis, thresholds.holds),
                             TransferIndex.configured(redis, thresholds.holds.trail), AuditLog(redis),
                             thresholds.holds.trail),
        ],
    }

