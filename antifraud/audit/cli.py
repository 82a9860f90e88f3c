"""``antifraud audit verify|show``: check the hash chain, read the trail."""

import argparse
import asyncio
import sys

from redis.asyncio import Redis

from antifraud.audit.service import AuditLog, iter_lines
from antifraud.config import Settings


async def _verify(redis_url: str) -> int:
    async with Redis.from_url(redis_url) as redis:
        verdict = await AuditLog(redis).verify()
    if verdict.ok:
        print(f"audit chain intact: {verdict.checked} records")
        return 0
    print(f"audit chain BROKEN at record {verdict.broken_at}: {verdict.reason} "
          f"({verdict.checked} records before it are intact)", file=sys.stderr)
    return 1


async def _show(redis_url: str, subject: str | None, last: int) -> int:
    if last < 1:
        print("antifraud audit show: --last must be at least 1", file=sys.stderr)
        return 2
    async with Redis.from_url(redis_url) as redis:
        log = AuditLog(redis)
        records = (await log.about(subject))[-last:] if subject else await log.records(-last, -1)
    for line in iter_lines(records):
        print(line)
    return 0


def _run(args: argparse.Namespace) -> int:
    redis_url = Settings.from_env().redis_url
    if args.action == "verify":
        return asyncio.run(_verify(redis_url))
    return asyncio.run(_show(redis_url, args.subject, args.last))


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
