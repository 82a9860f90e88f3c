"""Follow-ups of a confirmed case: what confirming sets in motion outside the case, done by the worker.

Confirming writes the case, its deliveries and its follow-ups in one transaction
(:meth:`antifraud.case.service.CaseService.confirm`), so a crash after the
commit cannot leave a confirmed case whose number is not blocked or whose party
is not listed: the follow-ups wait in Redis until a worker performs them. Kinds,
by the case's entity (:func:`kinds_for`):

- ``blocklist``: a number goes on the block list; its next calls are intercepted;
- ``credit_listing``: the responsible person goes on the credit blacklist (the ID
  number of a bulk-opening case; the holder of an account, when the account
  registry knows who opened it);
- ``money_trail``: an account's money is followed (:func:`antifraud.holds.reports.report_fraud`)
  from its first alert to one hop period after its last: held transfers it made are
  frozen, stop-payment and freeze requests raised with the amounts at risk;
- ``inbound_holds``: ATM transfers still held on their way *into* the account are frozen:
  victims' money the 24-hour hold has kept from it (plan (一)1 items 6 and 10).

Keys: ``followup:{id}`` (hash, ``doc``: the :class:`FollowUp`, JSON), ``followups:due``
(sorted set of the pending ones by the epoch of their next attempt; a
:class:`~antifraud.state.lease_queue.LeaseQueue`), ``followups:case:{case_id}``.

Order per round of :meth:`FollowUpRunner.run_once`:

1. Claim the due follow-ups (:meth:`LeaseQueue.claim`), each for ``lease`` seconds, so no
   other worker takes it meanwhile and one that dies mid-way leaves it to the next.
2. Perform each. Every action is keyed by the case (the number's block-list entry, the
   listing by case and party, the report by account and window): doing it twice
   changes nothing more than doing it once.
3. Record the outcome: done, with its result, in an audited transaction on the case
   (the follow-up leaves the queue); pending again after a capped exponential backoff
   with jitter, with the attempt count and the error's class; or, when the error cannot
   pass on a retry (:data:`PERMANENT`: data a model refuses, a listing the case made
   differently), failed, audited, out of the queue until an analyst retries it
   (:meth:`FollowUpQueue.retry`). All of it is visible in the case's timeline.

A crash between 2 and 3 performs the follow-up again once the lease ends: applied once.
"""

import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from antifraud import blocklist
from antifraud.alerts.models import Alert
from antifraud.audit.models import Change
from antifraud.audit.service import AuditLog
from antifraud.case.models import Case, WorkRefused, audit_subject
from antifraud.case.work import CaseWork, LeasedRounds
from antifraud.cli_support import invalid_fields
from antifraud.clock import utcnow
from antifraud.credit import service as credit
from antifraud.credit.models import ListingExists
from antifraud.credit.service import CreditBlacklist
from antifraud.events.types import UtcTime
from antifraud.holds.models import IllegalTransition, stable_id
from antifraud.holds.reports import FraudReportRequest, report_fraud
from antifraud.holds.service import HoldLedger, UnknownHold
from antifraud.refusals import Unknown
from antifraud.state import keys as families
from antifraud.state.accounts import opening
from antifraud.state.lease_queue import LeaseQueue, RetryPolicy
from antifraud.state.money_trail import TransferIndex
from antifraud.thresholds import MoneyTrailThresholds, Thresholds

log = logging.getLogger(__name__)

FollowUpKind = Literal["blocklist", "credit_listing", "money_trail", "inbound_holds"]
FollowUpState = Literal["pending", "done", "failed"]
FOLLOWUP_QUEUE = LeaseQueue(due=families.FOLLOWUPS_DUE.key(), prefix=families.FOLLOWUP.prefix)
RETRY = RetryPolicy(max_attempts=10, backoff_s=5.0, backoff_max_s=600.0)
"""Ten attempts over about 40 minutes: Redis failing over, a listing racing an analyst's; beyond that the
follow-up waits for an analyst with the last error on record instead of being retried for ever."""
PERMANENT: tuple[type[Exception], ...] = (ValidationError, ListingExists)
"""Errors a retry cannot get past: the follow-up fails and waits for an analyst instead of retrying forever."""


def _case_key(case_id: str) -> str:
    return families.FOLLOWUPS_OF_CASE.key(case_id)


class FollowUp(BaseModel):
    """One thing a confirmation of a case set in motion, and how doing it went."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    followup_id: str
    case_id: str
    case_version: int
    """The version the confirmation produced: confirming again after a reopening is a new follow-up."""
    kind: FollowUpKind
    state: FollowUpState = "pending"
    created_at: UtcTime
    created_by: str
    attempts: int = 0
    """Attempts since the follow-up was created or last retried by an analyst."""
    retries: int = 0
    """Times an analyst sent a failed follow-up back to pending."""
    next_attempt_at: UtcTime | None = None
    last_error: str | None = None
    """Why the last attempt failed (:func:`error_text`): the error's class, never personal data."""
    done_at: UtcTime | None = None
    result: dict[str, Any] = {}


def kinds_for(case: Case) -> list[FollowUpKind]:
    """What confirming ``case`` sets in motion, by its entity (pure; see the module docstring)."""
    kind = case.entity.kind
    kinds: list[FollowUpKind] = []
    if kind == "phone":
        kinds.append("blocklist")
    if kind in ("id_number", "account"):
        kinds.append("credit_listing")
    if kind == "account":
        kinds += ["money_trail", "inbound_holds"]
    return kinds


def planned(case: Case, *, actor: str, now: datetime) -> list[FollowUp]:
    """The follow-ups of the confirmed ``case``, due at once; their ids follow from (case, version, kind)."""
    return [
        FollowUp(
            followup_id=stable_id("followup", case.case_id, str(case.version), kind),
            case_id=case.case_id,
            case_version=case.version,
            kind=kind,
            created_at=now,
            created_by=actor,
            next_attempt_at=now,
        )
        for kind in kinds_for(case)
    ]


def done(followup: FollowUp, result: Mapping[str, Any], *, now: datetime) -> FollowUp:
    return followup.model_copy(
        update={
            "state": "done",
            "attempts": followup.attempts + 1,
            "done_at": now,
            "next_attempt_at": None,
            "last_error": None,
            "result": dict(result),
        }
    )


def error_text(error: Exception) -> str:
    """What a follow-up keeps of an error: its class and, for a validation error, the fields and rules
    broken. Never the message: pydantic's and others' echo the values (an ID number, an account)."""
    if isinstance(error, ValidationError):
        return f"{type(error).__name__}: {invalid_fields(error)}"[:300]
    return type(error).__name__


def failed(followup: FollowUp, error: Exception, *, now: datetime, jitter: float) -> FollowUp:
    """After a failed attempt: pending again after :data:`RETRY`'s backoff, or failed (waiting for an
    analyst, who may retry it) when ``error`` is :data:`PERMANENT` or the attempts are spent."""
    attempts = followup.attempts + 1
    next_at = RETRY.next_attempt(attempts, permanent=isinstance(error, PERMANENT), now=now, jitter=jitter)
    return followup.model_copy(
        update={
            "state": "failed" if next_at is None else "pending",
            "attempts": attempts,
            "last_error": error_text(error),
            "next_attempt_at": next_at,
        }
    )


class FollowUpNotFound(Unknown, LookupError):
    def __init__(self, followup_id: str) -> None:
        super().__init__("followup_unknown", f"no follow-up {followup_id}", followup=followup_id)
        self.followup_id = followup_id


def retried(followup: FollowUp, *, now: datetime) -> FollowUp:
    """An analyst sends a failed follow-up back to pending, due at once, with a fresh count of attempts."""
    if followup.state != "failed":
        raise WorkRefused("follow-up", followup.followup_id, followup.state, "retry")
    return followup.model_copy(
        update={"state": "pending", "attempts": 0, "retries": followup.retries + 1, "next_attempt_at": now}
    )


def trail_request(case: Case, limits: MoneyTrailThresholds) -> FraudReportRequest:
    """The trace of an account case: what the account paid out from its first alert to one hop period after
    its last (money it collected in the window leaves within a hop period). Pure."""
    return FraudReportRequest(
        victim_account=case.entity.value,
        start=case.first_seen,
        end=case.last_seen + timedelta(hours=limits.hop_hours),
        reason=f"case {case.case_id[:12]} confirmed: {case.decision_reason or 'fraud'}"[:500],
    )


class FollowUpQueue(CaseWork[FollowUp]):
    """The follow-ups in Redis (keys in the module docstring); failures and retries as :class:`CaseWork`'s."""

    def __init__(self, redis: Redis, audit: AuditLog) -> None:
        super().__init__(
            redis,
            audit,
            queue=FOLLOWUP_QUEUE,
            kind="followup",
            load=FollowUp.model_validate_json,
            not_found=FollowUpNotFound,
            index=_case_key,
            retried=retried,
            audited=("followup_id", "kind", "state", "attempts", "last_error"),
        )

    async def for_case(self, case_id: str) -> list[FollowUp]:
        """A case's follow-ups, oldest first."""
        return sorted(await self.of_case(case_id), key=lambda f: (f.created_at, f.kind))

    async def claim(self, now: datetime, *, limit: int, lease_s: float) -> list[FollowUp]:
        """Step 1: take up to ``limit`` due follow-ups for ``lease_s`` seconds."""
        claimed = await FOLLOWUP_QUEUE.claim(self.redis, now, limit=limit, lease_s=lease_s)
        return [FollowUp.model_validate_json(item[0]) for item in claimed]

    async def record_done(self, followup: FollowUp) -> None:
        """Step 3 after success: the follow-up done, with its audit record on the case (once)."""

        async def decide(pipe: Pipeline) -> Change:
            return Change(
                before={"followup_id": followup.followup_id, "kind": followup.kind, "state": "pending"},
                after={
                    "followup_id": followup.followup_id,
                    "kind": followup.kind,
                    "state": "done",
                    "attempts": followup.attempts,
                },
                write=lambda tx: self.store(tx, followup),
                event_id=f"followup-done:{followup.followup_id}",
            )

        await self.audit.transact(
            actor="system",
            action=f"followup.{followup.kind}",
            subject=audit_subject(followup.case_id),
            watch=[FOLLOWUP_QUEUE.key(followup.followup_id)],
            decide=decide,
        )


class CaseReader(Protocol):
    async def get(self, case_id: str) -> Case: ...
    async def alerts(self, case_id: str) -> list[Alert]: ...


Perform = Callable[[Case, Sequence[Alert], FollowUp], Awaitable[dict[str, Any]]]
"""Does one follow-up (idempotently) and returns what it did, for the case's timeline."""


class FollowUpRunner(LeasedRounds[FollowUp]):
    """Steps 1-3 of the module docstring, one round per :meth:`run_once`, one follow-up after another."""

    def __init__(
        self,
        queue: FollowUpQueue,
        cases: CaseReader,
        perform: Mapping[FollowUpKind, Perform],
        *,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
        batch: int = 20,
        lease_s: float = 120.0,
    ) -> None:
        super().__init__(clock=clock, rng=rng, batch=batch, lease_s=lease_s)
        self.queue = queue
        self.cases = cases
        self.perform = perform

    async def _claim(self, now: datetime, *, limit: int, lease_s: float) -> list[FollowUp]:
        return await self.queue.claim(now, limit=limit, lease_s=lease_s)

    async def _attempt(self, followup: FollowUp) -> None:
        try:
            case = await self.cases.get(followup.case_id)
            result = await self.perform[followup.kind](case, await self.cases.alerts(case.case_id), followup)
        except Exception as error:  # noqa: BLE001 - recorded on the follow-up: retried, or failed (PERMANENT)
            after = failed(followup, error, now=self.clock(), jitter=self.rng.random())
            await self.queue.record_failure(after)
            log.warning(
                "follow-up %s of case %s failed (attempt %d): %s; %s",
                followup.kind,
                followup.case_id[:12],
                after.attempts,
                after.last_error,
                "waits for an analyst" if after.state == "failed" else f"next at {after.next_attempt_at}",
            )
            return
        await self.queue.record_done(done(followup, result, now=self.clock()))


def credit_listing(blacklist: CreditBlacklist, redis: Redis) -> Perform:
    """The credit blacklist listing of a confirmed case's responsible person: the ID number of a
    bulk-opening case, the holder of a case's account when the account registry knows who opened it."""

    async def list_party(case: Case, alerts: Sequence[Alert], followup: FollowUp) -> dict[str, Any]:
        accounts: tuple[str, ...] = ()
        if case.entity.kind == "id_number":
            party = case.entity.value
        else:
            info = await opening(redis, case.entity.value)
            if info is None:
                return {"listed": False, "why": "the account registry does not know who opened the account"}
            party, accounts = info.holder_id_number, (case.entity.value,)
        listing = await credit.list_from_case(
            blacklist,
            party_id=party,
            kind="id_number",
            reason=case.decision_reason or "case confirmed",
            evidence=[a.alert_id for a in alerts][:100],
            case_id=case.case_id,
            actor=followup.created_by,
            accounts=accounts,
        )
        return {"listed": True, "listing_id": listing.listing_id}

    return list_party


def performers(
    redis: Redis, audit: AuditLog, thresholds: Thresholds, clock: Callable[[], datetime] = utcnow
) -> dict[FollowUpKind, Perform]:
    """The worker's follow-ups over its Redis (the edges of the module docstring's step 2)."""
    ledger = HoldLedger.configured(redis, thresholds.holds)
    index = TransferIndex.configured(redis, thresholds.holds.trail)
    limits = thresholds.holds.trail

    async def block(case: Case, alerts: Sequence[Alert], followup: FollowUp) -> dict[str, Any]:
        entry = await blocklist.list_from_case(
            redis, case.entity.value, case.case_id, f"case confirmed: {case.decision_reason or 'fraud'}"[:500]
        )
        return {"action": entry.action}

    async def trace(case: Case, alerts: Sequence[Alert], followup: FollowUp) -> dict[str, Any]:
        result = await report_fraud(
            ledger, index, audit, trail_request(case, limits), by=followup.created_by, limits=limits, now=clock()
        )
        return result.model_dump(mode="json")

    async def freeze_inbound(case: Case, alerts: Sequence[Alert], followup: FollowUp) -> dict[str, Any]:
        """Each hold still held paying the account, frozen by the confirmation; one its release may be under
        way is refused, one gone meanwhile skipped. The result names every hold paying the account that is
        frozen, so an attempt after a failed one reports the whole work."""
        refused = []
        why = f"case {case.case_id[:12]} confirmed: {case.decision_reason or 'fraud'}"[:500]
        inbound = [h for h in await ledger.of_accounts([case.entity.value]) if h.payee_account == case.entity.value]
        for hold in (h for h in inbound if h.state == "held"):
            try:
                await ledger.move(
                    audit, hold.hold_id, "frozen", actor="police", by=followup.created_by, reason=why, at=clock()
                )
            except IllegalTransition as refusal:
                refused.append(str(refusal))
            except UnknownHold:
                continue  # expired from the ledger between the listing and the move
        now = await ledger.states([h.hold_id for h in inbound])
        return {"frozen_holds": [h for h, hold in now.items() if hold.state == "frozen"], "refused": refused}

    return {
        "blocklist": block,
        "credit_listing": credit_listing(CreditBlacklist(redis, audit, thresholds.credit_blacklist), redis),
        "money_trail": trace,
        "inbound_holds": freeze_inbound,
    }
