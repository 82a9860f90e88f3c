"""Following a victim's money: the pure trail on a known chain of accounts, then a fraud report on real Redis."""

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from redis.asyncio import Redis

from antifraud import outbox
from antifraud.audit.service import AuditLog
from antifraud.events.models import BankTransfer, FraudReport
from antifraud.holds.models import HOLD_RECORD, HoldEvent
from antifraud.holds.policy import hold_id_for
from antifraud.holds.reports import FraudReportRequest, FreezeRequest, report_fraud
from antifraud.holds.service import HoldLedger
from antifraud.state import keys
from antifraud.state.money_trail import TransferIndex
from antifraud.thresholds import MoneyTrailThresholds, load_thresholds
from detectors.money_trail import AccountAtRisk, Trail, Transfer, trace
from streams import topics
from tests.conftest import AUDIT_KEYS
from tests.stream_helpers import run_stream
from tests.trail_helpers import index_transfers

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
DAY = 24 * 3600.0
A, B, C, D, E, F, G, H, X = (f"62220000000000{n:02d}" for n in range(1, 10))
"""A is the victim; B, C, D a chain of mules; E, F, G, H further payees; X someone B paid before."""


def flow(event_id: str, payer: str, payee: str, yuan: int, minutes: float) -> Transfer:
    return Transfer(event_id, payer, payee, yuan * 100, T0.timestamp() + 60 * minutes)


# A -> B 1000 yuan; B splits it: 600 to C, 300 to E, then 500 to F of which only 100 can be A's;
# C passes 400 on to D, D 400 to G; E pays H 300 after the 24-hour hop window.
CHAIN = {
    A: [flow("a-b", A, B, 1000, 0)],
    B: [flow("b-x", B, X, 50, -5), flow("b-c", B, C, 600, 10), flow("b-e", B, E, 300, 20), flow("b-f", B, F, 500, 30)],
    C: [flow("c-d", C, D, 400, 60)],
    D: [flow("d-g", D, G, 400, 120)],
    E: [flow("e-h", E, H, 300, 30 * 60)],
    F: [],
    G: [],
    H: [],
}


def at_risk(trail_accounts: dict[str, AccountAtRisk]) -> dict[str, tuple[int, int, int, int]]:
    """account -> (hop, received, passed on, retained) in yuan."""
    return {
        a: (r.hop, r.received_fen // 100, r.passed_on_fen // 100, r.retained_fen // 100)
        for a, r in trail_accounts.items()
    }


def chain_trace(max_hops: int, hop_seconds: float = DAY, stopped: frozenset[str] = frozenset()) -> Trail:
    outflows = {account: flows for account, flows in CHAIN.items() if account != A}
    return trace(CHAIN[A], outflows, max_hops=max_hops, hop_seconds=hop_seconds, stopped=stopped)


def test_amounts_at_risk_on_a_known_chain_with_splits() -> None:
    trail = chain_trace(max_hops=4)
    assert at_risk(trail.accounts) == {
        B: (1, 1000, 1000, 0),
        C: (2, 600, 400, 200),
        E: (2, 300, 0, 300),
        F: (2, 100, 0, 100),
        D: (3, 400, 400, 0),
        G: (4, 400, 0, 400),
    }
    assert list(trail.accounts) == [B, C, E, F, D, G], "nearest hop first"
    assert [(t.transfer.event_id, t.tainted_fen // 100, t.hop) for t in trail.transfers] == [
        ("a-b", 1000, 1),
        ("b-c", 600, 2),
        ("b-e", 300, 2),
        ("b-f", 100, 2),
        ("c-d", 400, 3),
        ("d-g", 400, 4),
    ]
    assert sum(r.retained_fen for r in trail.accounts.values()) == 1000 * 100, "the victim's money is all accounted for"
    assert trail.accounts[F].evidence == ("b-f",)
    assert trail.unexplored == frozenset()


def test_the_hop_limit_stops_the_trail_and_the_money_stays_where_it_stopped() -> None:
    trail = chain_trace(max_hops=3)
    assert at_risk(trail.accounts)[D] == (3, 400, 0, 400)
    assert G not in trail.accounts
    assert at_risk(chain_trace(max_hops=1).accounts) == {B: (1, 1000, 0, 1000)}


def test_an_outflow_after_the_hop_window_or_before_the_inflow_carries_nothing() -> None:
    trail = chain_trace(max_hops=4)
    assert H not in trail.accounts and X not in trail.accounts
    # With a 15-minute window B's transfer to F (30 minutes after the inflow) is no longer the victim's money.
    short = chain_trace(max_hops=4, hop_seconds=15 * 60)
    assert at_risk(short.accounts)[B] == (1, 1000, 600, 400)
    assert F not in short.accounts and E not in short.accounts
    assert D not in short.accounts, "C paid D 50 minutes after its inflow"


def test_a_stopped_transfer_keeps_its_money_with_the_bank() -> None:
    trail = chain_trace(max_hops=4, stopped=frozenset({"b-c"}))
    assert C not in trail.accounts and D not in trail.accounts
    stopped = [t for t in trail.transfers if t.stopped]
    assert [(t.transfer.event_id, t.tainted_fen // 100) for t in stopped] == [("b-c", 600)]
    assert at_risk(trail.accounts)[B] == (1, 1000, 1000, 0)
    assert sum(r.retained_fen for r in trail.accounts.values()) + 600 * 100 == 1000 * 100


def test_accounts_not_yet_looked_at_are_named_and_fan_in_takes_the_nearest_hop() -> None:
    assert trace(CHAIN[A], {}, max_hops=3, hop_seconds=DAY).unexplored == {B}
    # B also pays D directly after it passed the victim's money on: that carries none of it.
    outflows = {**CHAIN, B: [*CHAIN[B], flow("b-d", B, D, 100, 40)]}
    del outflows[A]
    trail = trace(CHAIN[A], outflows, max_hops=4, hop_seconds=DAY)
    assert at_risk(trail.accounts)[D] == (3, 400, 400, 0), "B had no tainted money left for D"
    # Before, it does: D is then 2 hops away, receives two lots, and passes the older one on first.
    rich = {**outflows, B: [flow("b-d", B, D, 100, 5), *CHAIN[B]]}
    trail = trace(CHAIN[A], rich, max_hops=4, hop_seconds=DAY)
    assert at_risk(trail.accounts)[D] == (2, 500, 400, 100)
    assert F not in trail.accounts, "the 100 B paid D first leaves nothing for F"
    assert [(t.transfer.event_id, t.tainted_fen // 100, t.hop) for t in trail.transfers if t.transfer.payer == D] == [
        ("d-g", 400, 3)
    ]


# -- a fraud report on real Redis ----------------------------------------------------------------

VICTIM_ID = "11010519491231002X"
LIMITS = load_thresholds().holds
TRAIL = MoneyTrailThresholds(max_hops=3, hop_hours=24, index_hours=72)


def transfer(event_id: str, payer: str, payee: str, yuan: int, minutes: float, channel: str = "online") -> BankTransfer:
    return BankTransfer(
        event_id=event_id,
        event_time=T0 + timedelta(minutes=minutes),
        channel=channel,
        payer_account=payer,
        payer_name=f"户{payer[-2:]}",
        payer_id_number=VICTIM_ID,
        payee_account=payee,
        payee_name=f"户{payee[-2:]}",
        amount_fen=yuan * 100,
        atm_id="atm-7" if channel == "atm" else None,
    )


B2 = "6222000000000010"
# The victim pays B 1000 online and B2 200 at an ATM (still held); B passes 600 to C, 300 to E at an ATM
# (held too), 500 to F; C pays D 400. An unrelated transfer (X to B) is not the victim's.
STREAM = [
    transfer("b-x", B, X, 50, -5),
    transfer("a-b", A, B, 1000, 0),
    transfer("a-b2", A, B2, 200, 5, "atm"),
    transfer("b-c", B, C, 600, 10),
    transfer("x-b", X, B, 70, 12),
    transfer("b-e", B, E, 300, 20, "atm"),
    transfer("b-f", B, F, 500, 30),
    transfer("c-d", C, D, 400, 60),
]


async def _outbox_records(client: Redis, topic: str) -> list[bytes]:
    return [fields[b"value"] for _, fields in await client.xrange(outbox.STREAM) if fields[b"topic"] == topic.encode()]


def test_a_fraud_report_freezes_held_transfers_and_requests_the_amounts_at_risk(redis_url: str) -> None:
    request = FraudReportRequest(
        victim_account=A,
        start=T0 - timedelta(minutes=1),
        end=T0 + timedelta(minutes=10),
        reason="110 report 2026-0302-17",
    )
    now = T0 + timedelta(hours=2)

    async def go() -> None:
        client = Redis.from_url(redis_url)
        try:
            ledger, index, audit = (
                HoldLedger.configured(client, LIMITS),
                TransferIndex.configured(client, TRAIL),
                AuditLog(client, AUDIT_KEYS),
            )
            await run_stream(client, STREAM)  # as the worker runs them: holds made, transfers indexed
            result = await report_fraud(ledger, index, audit, request, by="analyst:wang", limits=TRAIL, now=now)

            assert sorted(result.frozen_holds) == sorted([hold_id_for("a-b2"), hold_id_for("b-e")])
            assert {(r.kind, r.account, r.amount_fen // 100, r.hop, r.hold_id) for r in result.requests} == {
                ("stop_payment", B2, 200, 1, hold_id_for("a-b2")),
                ("stop_payment", E, 300, 2, hold_id_for("b-e")),
                ("freeze", C, 200, 2, None),
                ("freeze", F, 100, 2, None),
                ("freeze", D, 400, 3, None),
            }
            assert sum(r.amount_fen for r in result.requests) == 1200 * 100, "all the victim's 1200 yuan"
            assert {a.account: a.retained_fen // 100 for a in result.accounts} == {B: 0, C: 200, F: 100, D: 400}
            for hold_id in result.frozen_holds:
                hold = await ledger.get(hold_id)
                assert hold is not None and hold.state == "frozen"

            queued = [
                FreezeRequest.model_validate_json(v) for v in await _outbox_records(client, topics.FREEZE_REQUESTS)
            ]
            assert {r.request_id for r in queued} == {r.request_id for r in result.requests}
            moves = [HOLD_RECORD.validate_json(v) for v in await _outbox_records(client, topics.HOLDS)]
            assert {(m.hold_id, m.to_state, m.actor) for m in moves if isinstance(m, HoldEvent)} == {
                (hold_id_for("a-b2"), "frozen", "police"),
                (hold_id_for("b-e"), "frozen", "police"),
            }
            assert [r.action for r in await audit.about(f"report:{result.report_id}")] == ["holds.report"]

            again = await report_fraud(ledger, index, audit, request, by="analyst:wang", limits=TRAIL, now=now)
            assert again.frozen_holds == [] and again.refused == []
            assert {r.request_id for r in again.requests} == {r.request_id for r in result.requests}
            assert len(await _outbox_records(client, topics.FREEZE_REQUESTS)) == len(queued), "not queued twice"
            assert len(await audit.about(f"report:{result.report_id}")) == 1
            assert result.indexed_from is None, "the whole window was still indexed"
            older = request.model_copy(update={"start": T0 - timedelta(days=5)})
            late = await report_fraud(ledger, index, audit, older, by="analyst:wang", limits=TRAIL, now=now)
            newest = max(t.event_time for t in STREAM)
            assert late.indexed_from == newest - timedelta(hours=TRAIL.index_hours), "the caller is told"
        finally:
            await client.aclose()

    asyncio.run(go())


def test_the_index_keeps_outflows_by_event_time_and_trims_old_ones(redis_url: str) -> None:
    async def go() -> None:
        client = Redis.from_url(redis_url)
        try:
            index = TransferIndex(client, index_seconds=3600)
            await index_transfers(client, [transfer("old", B, C, 10, 0), transfer("new", B, D, 20, 30)])
            await index_transfers(client, [transfer("new", B, D, 20, 30)])
            found = await index.outflows([B, C], T0 - timedelta(hours=1), T0 + timedelta(hours=1))
            assert [(t.event_id, t.payee, t.amount_fen) for t in found[B]] == [("old", C, 1000), ("new", D, 2000)]
            assert found[C] == []
            later = TRAIL.index_hours * 60 + 10  # minutes: past the index (and its margin) after "old"
            await index_transfers(client, [transfer("later", B, E, 30, later)])
            found = await index.outflows([B], T0 - timedelta(hours=1), T0 + timedelta(minutes=later + 1))
            assert [t.event_id for t in found[B]] == ["new", "later"], "older than the index before B's newest: trimmed"
            assert 0 < await client.ttl(keys.TRAIL.key(B)) <= TRAIL.index_hours * 3600
        finally:
            await client.aclose()

    asyncio.run(go())


@pytest.mark.parametrize(("start", "end"), [(T0, T0), (T0, T0 - timedelta(seconds=1))])
def test_a_report_window_must_end_after_it_starts(start: datetime, end: datetime) -> None:
    with pytest.raises(ValueError, match="end must be after start"):
        FraudReportRequest(victim_account=A, start=start, end=end, reason="r")


def test_a_fraud_report_read_before_the_transfer_it_covers_still_freezes_its_hold(redis_url: str) -> None:
    """The report comes in (and is processed, in a batch of its own) a minute after the fraud; the victim's
    ATM transfer within the report's window comes nine minutes later: the report stays open for its window,
    so the transfer is traced and its hold frozen all the same."""
    report = FraudReport(
        event_id="fr-early",
        event_time=T0 + timedelta(minutes=1),
        victim_id_number="11010519491231002X",
        fraud_time=T0,
        source="110",
        victim_account=A,
    )
    paid = transfer("a-late", A, B, 800, 10, channel="atm")

    async def go() -> None:
        client = Redis.from_url(redis_url)
        try:
            ledger = HoldLedger.configured(client, LIMITS)
            await run_stream(client, [report], until=(T0 + timedelta(minutes=5)).timestamp())
            assert await ledger.get(hold_id_for("a-late")) is None, "not paid yet"
            sink = await run_stream(client, [paid], until=(T0 + timedelta(hours=2)).timestamp())
            hold = await ledger.get(hold_id_for("a-late"))
            assert hold is not None and hold.state == "frozen"
            [request] = [
                FreezeRequest.model_validate_json(v)
                for v in sink.on(topics.FREEZE_REQUESTS)
                if FreezeRequest.model_validate_json(v).kind == "stop_payment"
            ]
            assert (request.account, request.amount_fen, request.hold_id) == (B, 80_000, hold_id_for("a-late"))
        finally:
            await client.aclose()

    asyncio.run(go())


def test_a_fraud_report_on_the_stream_traces_the_money_as_it_stood_when_its_window_closed(redis_url: str) -> None:
    """The fraud-report stage follows the victim's money over the index the transfer stage wrote, once the
    report's window (the fraud time give or take the margin) has closed: C's payment to D an hour after
    the fraud has not happened then, so C still holds what it received."""
    report = FraudReport(
        event_id="fr-1",
        event_time=T0 + timedelta(minutes=15),
        victim_id_number=VICTIM_ID,
        fraud_time=T0,
        source="110",
        victim_account=A,
    )

    async def go() -> None:
        client = Redis.from_url(redis_url)
        try:
            ledger = HoldLedger.configured(client, LIMITS)
            sink = await run_stream(client, [*STREAM, report], until=(T0 + timedelta(hours=2)).timestamp())
            requests = [FreezeRequest.model_validate_json(v) for v in sink.on(topics.FREEZE_REQUESTS)]
            assert {(r.kind, r.account, r.amount_fen // 100, r.hop, r.hold_id) for r in requests} == {
                ("stop_payment", B2, 200, 1, hold_id_for("a-b2")),
                ("stop_payment", E, 300, 2, hold_id_for("b-e")),
                ("freeze", C, 600, 2, None),
                ("freeze", F, 100, 2, None),
            }
            assert sum(r.amount_fen for r in requests) == 1200 * 100, "all the victim's 1200 yuan"
            for event_id in ("a-b2", "b-e"):
                hold = await ledger.get(hold_id_for(event_id))
                assert hold is not None and hold.state == "frozen"
            # Read again (a replay), the report raises the same requests, with the same ids.
            again = await run_stream(client, [report], until=(T0 + timedelta(hours=3)).timestamp())
            replayed = [FreezeRequest.model_validate_json(v) for v in again.on(topics.FREEZE_REQUESTS)]
            assert {r.request_id for r in replayed} == {r.request_id for r in requests if r.kind == "freeze"}
        finally:
            await client.aclose()

    asyncio.run(go())
