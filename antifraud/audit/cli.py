"""``antifraud audit verify|show``: check the hash chain, read the trail."""

import argparse
import sys

from redis.asyncio import Redis

from antifraud.audit.service import AuditLog, iter_lines
from antifraud.cli_support import run_on_redis


async def _verify(redis: Redis) -> int:
    verdict = await AuditLog(redis).verify()
    if verdict.ok:
        print(f"audit chain intact: {verdict.checked} records")
        return 0
    print(f"audit chain BROKEN at record {verdict.broken_at}: {verdict.reason} "
          f"({verdict.checked} records before it are intact)", file=sys.stderr)
    return 1


async def _show(redis: Redis, subject: str | None, last: int) -> int:
    if last < 1:
        raise ValueError("--last must be at least 1")
    log = AuditLog(redis)
    records = (await log.about(subject))[-last:] if subject else await log.records(-last, -1)
    for line in iter_lines(records):
        print(line)
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.action == "verify":
        return run_on_redis("antifraud audit verify", _verify)
    return run_on_redis("antifraud audit show", lambda redis: _show(redis, args.subject, args.last))


def add_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "audit",
        help="verify the audit trail's hash chain, or show its records",
        description="The audit trail of hold, case and blacklist actions (REDIS_URL).",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("verify", help="check every record's hash and link; name the first broken one (exit 1)")
    show = actions.add_parser("show", help="print the last records, or those about one subject")
    show.add_argument("--subject", help="e.g. hold:<id>, case:<id>, listing:<id>")
    show.add_argument("--last", type=int, default=20, help="how many records (default 20)")
    parser.set_defaults(run=_run)
