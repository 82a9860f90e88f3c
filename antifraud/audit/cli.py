"""``antifraud audit verify|show|archive``: check the hash chain, read the trail, archive its oldest records."""

import argparse
import sys
from collections import deque
from datetime import date, datetime, time, timezone
from pathlib import Path

from redis.asyncio import Redis

from antifraud.audit.archive import ArchiveRefused, archive
from antifraud.audit.models import Anchor
from antifraud.audit.segments import SegmentError, archived_records
from antifraud.audit.service import AuditLog, iter_lines
from antifraud.cli_support import BAD_INPUT, fail, run_on_redis
from antifraud.clock import utcnow
from antifraud.config import Settings, audit_keys
from antifraud.topics import AUDIT_ANCHORS


def published_anchors(bootstrap: str, timeout_s: float = 10.0) -> list[Anchor]:
    """Every anchor on ``antifraud.audit-anchors`` (read from the start until nothing more comes)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=int(timeout_s * 1000)
    )
    try:
        partitions = [TopicPartition(AUDIT_ANCHORS, p) for p in consumer.partitions_for_topic(AUDIT_ANCHORS) or ()]
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        return [Anchor.model_validate_json(record.value) for record in consumer]
    finally:
        consumer.close()


async def _verify(redis: Redis, archive_dir: Path | None, anchors: list[Anchor]) -> int:
    verdict = await AuditLog(redis, audit_keys()).verify(archive_dir, anchors=anchors)
    if not verdict.ok:
        print(
            f"audit chain BROKEN at record {verdict.broken_at}: {verdict.reason} "
            f"({verdict.checked} records before it are intact)",
            file=sys.stderr,
        )
        return 1
    if archive_dir is not None:
        scope = f" ({verdict.archived} archived in {archive_dir}, {verdict.checked - verdict.archived} live)"
    elif verdict.first:
        scope = f" from record {verdict.first} (the ones before it are archived: add --archive DIR to check them too)"
    else:
        scope = ""
    checked = f"; {len(anchors)} published anchors hold" if anchors else ""
    print(f"audit chain intact: {verdict.checked} records{scope}{checked}")
    return 0


async def _show(redis: Redis, subject: str | None, last: int, archive_dir: Path | None) -> int:
    log = AuditLog(redis, audit_keys())
    records = (await log.about(subject))[-last:] if subject else await log.records(-last, -1)
    first, _ = await log.base()
    if len(records) < last and first:
        if archive_dir is not None:
            live_from = records[0].seq if records else first  # a run may trim between the two reads: no repeats
            older = deque(
                (r for r in archived_records(archive_dir, first, subject) if r.seq < live_from),
                maxlen=last - len(records),
            )
            records = [*older, *records]
        else:
            where = ", ".join(dict.fromkeys(str(Path(a["file"]).parent) for a in await log.archives())) or "segments"
            whose = f"those about {subject}" if subject else "they"
            print(
                f"records before {first} are archived in {where}; {whose} are not shown: "
                "add --archive DIR to read them",
                file=sys.stderr,
            )
    for line in iter_lines(records):
        print(line)
    return 0


async def _archive(redis: Redis, before: datetime, directory: Path) -> int:
    result = await archive(redis, audit_keys(), before, directory)
    for path in result.removed:
        print(f"removed {path}: left by a run that stopped before trimming it")
    if result.finished is not None:
        print(
            f"finished trimming records {result.finished.first}..{result.finished.last} "
            f"archived in {result.finished.path} by an earlier run"
        )
    if result.written is None:
        print(
            f"nothing to archive: the live log's first record (seq {result.base}) is not older than "
            f"{before.isoformat()}"
        )
    else:
        print(
            f"archived records {result.written.first}..{result.written.last} to {result.written.path}; "
            f"the live log starts at record {result.base}"
        )
    return 0


def _directory(flag: str, raw: str) -> Path:
    path = Path(raw)
    if not path.is_dir():
        raise ValueError(f"{flag}: {raw} is not a directory")
    return path


def _cutoff(raw: str) -> datetime:
    """``--before``: a date (its midnight, UTC) or an ISO 8601 time with a timezone, not in the future."""
    try:
        value = (
            datetime.combine(date.fromisoformat(raw), time(), timezone.utc)
            if len(raw) == 10
            else datetime.fromisoformat(raw)
        )
    except ValueError:
        raise ValueError("--before: not a date (YYYY-MM-DD) nor an ISO 8601 time") from None
    if value.tzinfo is None:
        raise ValueError("--before: give the time's timezone, e.g. +08:00")
    if value > utcnow():
        raise ValueError("--before: the date is in the future")
    return value


def _run(args: argparse.Namespace) -> int:
    """Arguments are checked before Redis is reached: a bad one is one line naming it, exit 2."""
    prog = f"antifraud audit {args.action}"
    try:
        archive_dir = _directory("--archive", args.archive) if getattr(args, "archive", None) else None
        if args.action == "archive":
            before, directory = _cutoff(args.before), _directory("--to", args.to)
        elif args.action == "show" and args.last < 1:
            raise ValueError("--last: must be at least 1")
    except ValueError as exc:
        fail(prog, str(exc))
        return BAD_INPUT
    if args.action == "verify":
        anchors = published_anchors(Settings.from_env().kafka_bootstrap) if args.anchors else []
        return run_on_redis(prog, lambda redis: _verify(redis, archive_dir, anchors))
    if args.action == "show":
        return run_on_redis(
            prog, lambda redis: _show(redis, args.subject, args.last, archive_dir), refused=(SegmentError,)
        )
    return run_on_redis(prog, lambda redis: _archive(redis, before, directory), refused=(ArchiveRefused, OSError))


def add_command(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "audit",
        help="verify the audit trail's hash chain, show its records, archive the oldest",
        description="The audit trail of hold, case and blacklist actions (REDIS_URL).",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    verify = actions.add_parser("verify", help="check every record's hash and link; name the first broken one (exit 1)")
    verify.add_argument("--archive", metavar="DIR", help="also the archive segments in DIR, as one chain with Redis")
    verify.add_argument(
        "--anchors",
        action="store_true",
        help="also check the heads the worker published to antifraud.audit-anchors (KAFKA_BOOTSTRAP)",
    )
    show = actions.add_parser("show", help="print the last records, or those about one subject")
    show.add_argument("--subject", help="e.g. hold:<id>, case:<id>, listing:<id>")
    show.add_argument("--last", type=int, default=20, help="how many records (default 20)")
    show.add_argument("--archive", metavar="DIR", help="read archived records from the segments in DIR too")
    arch = actions.add_parser(
        "archive",
        help="move the records older than a date out of Redis into a segment file (exit 1: refused)",
        description="Write the oldest live records, up to the first not older than DATE, to a gzip JSON-lines "
        "segment in DIR, check it, then trim them from Redis. One run at a time; a run that stopped "
        "is completed by the next one.",
    )
    arch.add_argument(
        "--before",
        required=True,
        metavar="DATE",
        help="cut-off: YYYY-MM-DD (midnight UTC) or an ISO 8601 time with a timezone",
    )
    arch.add_argument("--to", required=True, metavar="DIR", help="existing directory for the segment files")
    parser.set_defaults(run=_run)
