"""``antifraud holds``: list and show ATM transfer holds, revoke, freeze, release or return one, trace a fraud report.

Every move names the person making it (``--actor``) and why (``--reason``); the
move, its audit record and its event for the holds topic are written together.
Accounts are masked unless ``--show-accounts`` is given. Exit codes: 0 done,
1 refused (unknown hold, a move the hold's state does not allow), 2 bad input or
Redis unavailable.
"""

import argparse
import re

from pydantic import ValidationError
from redis.asyncio import Redis

from antifraud.audit.service import AuditLog
from antifraud.cli_support import run_on_redis
from antifraud.clock import utcnow
from antifraud.config import Settings, audit_keys
from antifraud.holds.models import HOLD_ID_PATTERN, HUMAN_MOVES, MOVE_HELP, Hold, IllegalTransition
from antifraud.holds.reports import FraudReportRequest, FraudReportResult, report_fraud
from antifraud.holds.service import STATES, HoldLedger, UnknownHold
from antifraud.privacy import mask_account
from antifraud.state.money_trail import TransferIndex
from antifraud.thresholds import load_thresholds

_CLI_FIELDS = {"start": "--from", "end": "--to", "victim_account": "--victim", "reason": "--reason"}


def _hold_id(raw: str) -> str:
    if not re.fullmatch(HOLD_ID_PATTERN, raw):
        raise argparse.ArgumentTypeError("not a hold id (32 lowercase hex digits, as `antifraud holds list` prints)")
    return raw


def _nonblank(raw: str) -> str:
    if not raw.strip():
        raise argparse.ArgumentTypeError("must not be blank")
    return raw.strip()


def _positive(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a positive whole number")
    return int(raw)


def _yuan(fen: int) -> str:
    return f"{fen / 100:,.2f}"


def _line(hold: Hold, show: bool) -> str:
    account = (lambda a: a) if show else mask_account
    return (
        f"{hold.hold_id}  {hold.state:<8}  {account(hold.payer_account)} -> {account(hold.payee_account)}  "
        f"{_yuan(hold.amount_fen):>12} CNY  atm {hold.atm_id}  at {hold.created_at:%Y-%m-%d %H:%M}Z  "
        f"due {hold.due_at:%Y-%m-%d %H:%M}Z"
    )


def _print_report(result: FraudReportResult, show: bool) -> None:
    account = (lambda a: a) if show else mask_account
    print(
        f"report {result.report_id}: {len(result.accounts)} account(s) reached, "
        f"{len(result.frozen_holds)} hold(s) frozen, {len(result.requests)} request(s) raised"
    )
    for line in result.accounts:
        print(
            f"  hop {line.hop}  {account(line.account)}  received {_yuan(line.received_fen)}  "
            f"passed on {_yuan(line.passed_on_fen)}  at risk {_yuan(line.retained_fen)} CNY"
        )
    for request in result.requests:
        held = f" hold {request.hold_id}" if request.hold_id else ""
        print(f"  {request.kind:<12} {account(request.account)}  {_yuan(request.amount_fen)} CNY{held}")
    for refusal in result.refused:
        print(f"  refused: {refusal}")
    if result.indexed_from is not None:
        print(
            f"  note: transfers before {result.indexed_from.isoformat()} were no longer indexed; "
            "the trail may miss money moved earlier"
        )


def _report_request(args: argparse.Namespace) -> FraudReportRequest:
    try:
        return FraudReportRequest.model_validate(
            {"victim_account": args.victim, "start": args.start, "end": args.end, "reason": args.reason}
        )
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        field = _CLI_FIELDS.get(str(first["loc"][0]), "arguments") if first["loc"] else "--from/--to"
        raise ValueError(f"{field}: {first['msg']}") from None


async def _command(args: argparse.Namespace, redis: Redis) -> int:
    thresholds = load_thresholds(Settings.from_env().thresholds_path)
    ledger = HoldLedger.configured(redis, thresholds.holds)
    now = utcnow()
    if args.action == "list":
        for hold in await ledger.in_state(args.state, limit=args.limit):
            print(_line(hold, args.show_accounts))
    elif args.action == "show":
        shown = await ledger.get(args.hold_id)
        if shown is None:
            raise UnknownHold(args.hold_id)
        print(_line(shown, args.show_accounts))
        for record in await AuditLog(redis, audit_keys()).about(f"hold:{args.hold_id}"):
            print(f"  {record.at:%Y-%m-%d %H:%M:%S}Z  {record.actor}  {record.action}  {record.after}")
    elif args.action == "report":
        request = _report_request(args)
        result = await report_fraud(
            ledger,
            TransferIndex.configured(redis, thresholds.holds.trail),
            AuditLog(redis, audit_keys()),
            request,
            by=f"cli:{args.actor}",
            limits=thresholds.holds.trail,
            now=now,
        )
        _print_report(result, args.show_accounts)
    else:
        to, actor = HUMAN_MOVES[args.action]
        event = await ledger.move(
            AuditLog(redis, audit_keys()),
            args.hold_id,
            to,
            actor=actor,
            by=f"cli:{args.actor}",
            reason=args.reason,
            at=now,
        )
        print(f"hold {event.hold_id}: {event.from_state} -> {event.to_state}")
    return 0


def _run(args: argparse.Namespace) -> int:
    return run_on_redis(
        f"antifraud holds {args.action}", lambda redis: _command(args, redis), refused=(UnknownHold, IllegalTransition)
    )


def add_command(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "holds",
        help="ATM transfer holds: list, show, revoke, freeze, release, return; trace a fraud report (REDIS_URL)",
        description="The 24-hour hold on ATM transfers to another name, in Redis (REDIS_URL). Moves are "
        "audited and go on the holds topic through the outbox (the worker publishes them).",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    list_p = actions.add_parser("list", help="holds in one state, soonest due first")
    list_p.add_argument("--state", choices=STATES, default="held", help="default held")
    list_p.add_argument("--limit", type=_positive, default=100, help="at most this many (default 100)")
    show_p = actions.add_parser("show", help="one hold and its audit history")
    show_p.add_argument("hold_id", type=_hold_id)
    for p in (list_p, show_p):
        p.add_argument("--show-accounts", action="store_true", help="print account numbers unmasked")
    for verb, text in MOVE_HELP.items():
        move = actions.add_parser(verb, help=text)
        move.add_argument("hold_id", type=_hold_id)
        move.add_argument(
            "--actor", type=_nonblank, required=True, help="who makes the move (recorded in the audit log)"
        )
        move.add_argument(
            "--reason", type=_nonblank, required=True, help="why: the sender's request, the order's reference"
        )
    report = actions.add_parser(
        "report",
        help="trace a fraud report: freeze held transfers, follow the money, raise stop-payment and freeze requests",
    )
    report.add_argument("--victim", required=True, help="the victim's account number")
    report.add_argument("--from", dest="start", required=True, help="start of the fraud window, ISO 8601 with zone")
    report.add_argument("--to", dest="end", required=True, help="end of the fraud window, ISO 8601 with zone")
    report.add_argument(
        "--actor", type=_nonblank, required=True, help="who files the report (recorded in the audit log)"
    )
    report.add_argument("--reason", required=True, help="the report or case reference")
    report.add_argument("--show-accounts", action="store_true", help="print account numbers unmasked")
    parser.set_defaults(run=_run)
