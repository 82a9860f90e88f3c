"""A fraud report traced: the victim's held transfers frozen, the money followed, stop-payment and freeze
requests raised (plan (一)1 item 6; issue item 4).

:func:`report_fraud` is what the CLI (``antifraud holds report``), the HTTP API
(``POST /api/holds/reports``), a confirmed account case (a follow-up of
``antifraud/case/followups.py``) and a fraud report event naming the victim's
account (:func:`request_from_event`, run by the worker's fraud-report stage) call.
The trail itself is pure (``detectors/money_trail.py``, where the apportioning
rule is stated); the index of outgoing transfers it reads is
``antifraud/state/money_trail.py``. :class:`TrailView` is the trail as the
console draws it and a police case package carries it.
"""

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError
from redis.asyncio.client import Pipeline

from antifraud import outbox, topics
from antifraud.audit.models import Change
from antifraud.audit.service import AuditLog
from antifraud.events.models import FraudReport
from antifraud.events.types import AccountNo, Fen, Reason, UtcTime
from antifraud.holds.models import Hold, IllegalTransition, stable_id
from antifraud.holds.policy import hold_id_for
from antifraud.holds.service import HoldLedger
from antifraud.state.money_trail import TransferIndex
from antifraud.thresholds import MoneyTrailThresholds
from detectors.money_trail import Trail, Transfer, trace

STOPPED_STATES = frozenset({"frozen", "revoked", "returned"})
"""Hold states whose funds never reached the payee (a held hold not yet due counts too)."""


class FraudReportRequest(BaseModel):
    """A victim's account and the window in which they paid the fraudsters (its end after its start)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    victim_account: AccountNo
    start: UtcTime
    end: UtcTime
    reason: Reason

    @model_validator(mode="after")
    def _window_ordered(self) -> "FraudReportRequest":
        if self.end <= self.start:
            raise PydanticCustomError("end_before_start", "end must be after start")
        return self


class FreezeRequest(BaseModel):
    """Ask the account's bank to act: ``stop_payment`` of a held transfer (the hold is frozen in the ledger),
    or ``freeze`` the amount at risk in an account the money reached."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    request_id: str
    report_id: str
    kind: Literal["stop_payment", "freeze"]
    account: AccountNo
    amount_fen: Fen
    hop: Annotated[int, Field(ge=1)]
    hold_id: str | None = None
    evidence_event_ids: list[str]
    requested_at: UtcTime
    requested_by: str
    reason: str


class AccountLine(BaseModel):
    """An account the money reached: at how many hops, what it received, passed on and still holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    account: AccountNo
    hop: int
    received_fen: int
    passed_on_fen: int
    retained_fen: int
    """The amount at risk: tainted money still in the account."""


class TrailEdge(BaseModel):
    """A transfer that carried the money, and how much of it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    event_id: str
    payer: str
    payee: str
    at: float
    """Epoch seconds of event time."""
    amount_fen: int
    tainted_fen: int
    hop: int
    stopped: bool
    """The transfer's hold kept the money from the payee (held, frozen, revoked or returned)."""


class TrailView(BaseModel):
    """Where an account's money went: the accounts it reached (the start account first, hop 0) and the
    transfers that carried it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    account: AccountNo
    since: UtcTime
    until: UtcTime
    nodes: list[AccountLine]
    edges: list[TrailEdge]


def lines_of(trail: Trail) -> list[AccountLine]:
    return [
        AccountLine(
            account=a.account,
            hop=a.hop,
            received_fen=a.received_fen,
            passed_on_fen=a.passed_on_fen,
            retained_fen=a.retained_fen,
        )
        for a in trail.accounts.values()
    ]


def view_of(account: str, since: datetime, until: datetime, trail: Trail) -> TrailView:
    """The trail as nodes (the start account first, hop 0) and edges (pure)."""
    start = AccountLine(
        account=account,
        hop=0,
        received_fen=0,
        passed_on_fen=sum(t.tainted_fen for t in trail.transfers if t.hop == 1),
        retained_fen=0,
    )
    edges = [
        TrailEdge(
            event_id=t.transfer.event_id,
            payer=t.transfer.payer,
            payee=t.transfer.payee,
            at=t.transfer.at,
            amount_fen=t.transfer.amount_fen,
            tainted_fen=t.tainted_fen,
            hop=t.hop,
            stopped=t.stopped,
        )
        for t in trail.transfers
    ]
    return TrailView(
        account=account,
        since=since,
        until=until,
        nodes=[start, *(line for line in lines_of(trail) if line.account != account)],
        edges=edges,
    )


class FraudReportResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    report_id: str
    victim_account: AccountNo
    start: UtcTime
    end: UtcTime
    accounts: list[AccountLine]
    frozen_holds: list[str]
    """Holds this report froze."""
    refused: list[str]
    """Freezes the ledger refused (the hold moved meanwhile), with the reason."""
    requests: list[FreezeRequest]
    indexed_from: UtcTime | None = None
    """Set when the window starts before what the index still held: it keeps ``index_hours`` before the
    stream's newest transfer, so money moved before this time may be missing from the trail."""


def report_id_for(request: FraudReportRequest) -> str:
    return stable_id("fraud-report", request.victim_account, request.start.isoformat(), request.end.isoformat())


def request_from_event(report: FraudReport, margin: timedelta) -> FraudReportRequest | None:
    """The trace a fraud report event asks for: the victim's transfers within ``margin`` of the reported
    fraud time; None when the report does not name the victim's account (nothing to follow from). Pure."""
    if report.victim_account is None:
        return None
    return FraudReportRequest(
        victim_account=report.victim_account,
        start=report.fraud_time - margin,
        end=report.fraud_time + max(margin, timedelta(seconds=1)),
        reason=f"{report.source} report {report.event_id[:64]}",
    )


def _stopped(holds: Mapping[str, Hold], watermark: datetime | None) -> frozenset[str]:
    """Transfer event ids whose funds are still with the bank: held and not yet due, or frozen, revoked, returned."""
    return frozenset(
        hold.transfer_event_id
        for hold in holds.values()
        if hold.state in STOPPED_STATES or (hold.state == "held" and (watermark is None or hold.due_at > watermark))
    )


async def follow(
    ledger: HoldLedger,
    index: TransferIndex,
    request: FraudReportRequest,
    limits: MoneyTrailThresholds,
) -> tuple[Trail, dict[str, Hold]]:
    """The trail from the victim's transfers in the window, and the holds of the transfers seen (reads only).

    Hop by hop: the outflows of the accounts the money reached but not yet looked at, and the holds of
    those transfers, are read (two round trips), and the trail recomputed, until no account is left.
    """
    hop = timedelta(hours=limits.hop_hours)
    victim = request.victim_account
    victim_transfers = (await index.outflows([victim], request.start, request.end))[victim]
    watermark = await ledger.watermark()
    holds = await ledger.states(hold_id_for(t.event_id) for t in victim_transfers)
    outflows: dict[str, list[Transfer]] = {}
    while True:
        trail = trace(
            victim_transfers,
            outflows,
            max_hops=limits.max_hops,
            hop_seconds=hop.total_seconds(),
            stopped=_stopped(holds, watermark),
        )
        if not trail.unexplored:
            return trail, holds
        fetched = await index.outflows(trail.unexplored, request.start, request.end + limits.max_hops * hop)
        outflows.update(fetched)
        holds.update(await ledger.states(hold_id_for(t.event_id) for flows in fetched.values() for t in flows))


async def report_fraud(
    ledger: HoldLedger,
    index: TransferIndex,
    audit: AuditLog,
    request: FraudReportRequest,
    *,
    by: str,
    limits: MoneyTrailThresholds,
    now: datetime,
) -> FraudReportResult:
    """Trace a fraud report and act on it. Safe to run again: the same report gets the same ids.

    1. Follow the money (:func:`follow`; reads only).
    2. Freeze every tainted transfer's hold that is still held (the victim's own, and any further
       along), each in its own audited transaction with its event on the holds topic; a hold that
       moved meanwhile is reported as refused.
    3. One audited transaction queues the requests on ``antifraud.freeze-requests`` (outbox): a stop
       payment per frozen hold of a tainted transfer, a freeze per account still holding tainted money.
    A crash between 2 and 3 leaves frozen holds; running the report again finds them frozen and
    raises the same requests with the same ids.
    """
    report_id = report_id_for(request)
    trail, holds = await follow(ledger, index, request, limits)
    why = f"fraud report {report_id[:12]}: {request.reason}"
    frozen, refused = [], []
    for item in trail.transfers:
        hold = holds.get(hold_id_for(item.transfer.event_id))
        if hold is not None and hold.state == "held" and item.stopped:
            try:
                await ledger.move(audit, hold.hold_id, "frozen", actor="police", by=by, reason=why, at=now)
                frozen.append(hold.hold_id)
            except IllegalTransition as refusal:
                refused.append(str(refusal))
    now_frozen = set(frozen) | {h.hold_id for h in holds.values() if h.state == "frozen"}

    def request_of(
        kind: Literal["stop_payment", "freeze"],
        account: str,
        amount: int,
        hop: int,
        evidence: list[str],
        hold_id: str | None = None,
    ) -> FreezeRequest:
        return FreezeRequest(
            request_id=stable_id("freeze-request", report_id, kind, account, hold_id or ""),
            report_id=report_id,
            kind=kind,
            account=account,
            amount_fen=amount,
            hop=hop,
            hold_id=hold_id,
            evidence_event_ids=evidence,
            requested_at=now,
            requested_by=by,
            reason=why,
        )

    requests = [
        request_of(
            "stop_payment",
            item.transfer.payee,
            item.tainted_fen,
            item.hop,
            [item.transfer.event_id],
            hold_id_for(item.transfer.event_id),
        )
        for item in trail.transfers
        if hold_id_for(item.transfer.event_id) in now_frozen
    ] + [
        request_of("freeze", a.account, a.retained_fen, a.hop, list(a.evidence))
        for a in trail.accounts.values()
        if a.retained_fen > 0
    ]
    lines = lines_of(trail)

    async def decide(pipe: Pipeline) -> Change:
        def write(tx: Pipeline) -> None:
            for r in requests:
                outbox.queue(tx, topics.FREEZE_REQUESTS, r.account, r.model_dump_json())

        amounts = sorted(f"{r.request_id}:{r.amount_fen}" for r in requests)
        return Change(
            before=None,
            after={
                "victim_account": request.victim_account,
                "start": request.start.isoformat(),
                "end": request.end.isoformat(),
                "frozen_holds": frozen,
                "requests": [
                    {"kind": r.kind, "account": r.account, "amount_fen": r.amount_fen, "hop": r.hop} for r in requests
                ],
            },
            write=write,
            event_id=stable_id("fraud-report-requests", report_id, *amounts),
        )

    await audit.transact(actor=by, action="holds.report", subject=f"report:{report_id}", watch=[], decide=decide)
    watermark = await ledger.watermark()
    horizon = watermark - timedelta(hours=limits.index_hours) if watermark is not None else None
    return FraudReportResult(
        report_id=report_id,
        victim_account=request.victim_account,
        start=request.start,
        end=request.end,
        accounts=lines,
        frozen_holds=frozen,
        refused=refused,
        requests=requests,
        indexed_from=horizon if horizon is not None and request.start < horizon else None,
    )
