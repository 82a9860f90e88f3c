"""The block list: numbers confirmed as fraud, held in Redis, applied to new calls.

Plan (一)1 item 5: block and trace numbers used in fraud. An entry says what to
do with a new call from the number (``block`` it, or ``warn`` the callee) and
why. Entries come from an analyst (``antifraud blocklist add``), a file of
confirmed numbers (``import``), or a confirmed case (:func:`list_from_case`).
All entries live in one hash, ``blocklist``, number -> entry JSON; the call
stage looks up a batch's callers with one ``HMGET``.
"""

import argparse
import csv
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError
from redis.asyncio import Redis

from antifraud.cli_support import BAD_INPUT, fail, invalid_fields, run_on_redis
from antifraud.clock import utcnow
from antifraud.events.types import Msisdn
from antifraud.interceptions import Action, BlockEntry
from antifraud.privacy import mask_phone

KEY = "blocklist"

_NUMBER = TypeAdapter(Msisdn)


def valid_number(raw: str) -> str:
    """The number if it is one (digits, optional leading '+'), else ValueError with the rule."""
    try:
        return _NUMBER.validate_python(raw.strip())
    except ValidationError:
        raise ValueError("not a phone number (3-15 digits, optional leading '+')") from None


async def add(redis: Redis, entries: Iterable[BlockEntry]) -> None:
    """List (or re-list) numbers in one round trip; the latest entry for a number wins."""
    mapping: dict[Any, str] = {e.number: e.model_dump_json() for e in entries}
    if mapping:
        await redis.hset(KEY, mapping=mapping)


async def remove(redis: Redis, number: str) -> bool:
    """Unlist a number (a wrong entry corrected); False if it was not listed."""
    return bool(await redis.hdel(KEY, number))


async def entries(redis: Redis) -> list[BlockEntry]:
    raw = await redis.hgetall(KEY)
    return sorted((BlockEntry.model_validate_json(v) for v in raw.values()), key=lambda e: e.number)


async def lookup(redis: Redis, numbers: Iterable[str]) -> dict[str, BlockEntry]:
    """The listed ones among ``numbers``, in one ``HMGET``."""
    numbers = list(numbers)
    if not numbers:
        return {}
    rows = await redis.hmget(KEY, numbers)
    return {n: BlockEntry.model_validate_json(raw) for n, raw in zip(numbers, rows) if raw is not None}


async def list_from_case(redis: Redis, number: str, case_id: str, reason: str, action: Action = "block") -> BlockEntry:
    """List a number confirmed as fraud by a case; the case module calls this on confirmation."""
    entry = BlockEntry(number=number, action=action, reason=reason, source=f"case:{case_id}", listed_at=utcnow())
    await add(redis, [entry])
    return entry


class BadImportFile(ValueError):
    """An import file with bad lines; nothing was imported. ``errors`` are (line number, message)."""

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        super().__init__(f"{len(errors)} bad line(s)")
        self.errors = errors


def parse_import(text: str, source: str, now: datetime) -> list[BlockEntry]:
    """CSV lines ``number,action,reason`` (action and reason optional; ``#`` starts a comment).

    Every line is checked before anything is listed: one bad line rejects the file.
    """
    parsed: list[BlockEntry] = []
    errors: list[tuple[int, str]] = []
    for line_no, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) > 3:
            errors.append((line_no, f"expected number,action,reason; got {len(row)} fields"))
            continue
        number, action, reason = (*row, "", "")[:3]
        action = action.strip() or "block"
        try:
            parsed.append(
                BlockEntry.model_validate(
                    {
                        "number": valid_number(number),
                        "action": action,
                        "reason": reason.strip() or f"imported from {source}",
                        "source": source,
                        "listed_at": now,
                    }
                )
            )
        except ValidationError as exc:
            errors.append((line_no, invalid_fields(exc)))
        except ValueError as exc:
            errors.append((line_no, str(exc)))
    if errors:
        raise BadImportFile(errors)
    return parsed


_PROG = "antifraud blocklist"


async def _command(args: argparse.Namespace, redis: Redis) -> int:
    now = utcnow()
    if args.action == "add":
        entry = BlockEntry(
            number=valid_number(args.number), action=args.on_call, reason=args.reason, source=args.source, listed_at=now
        )
        await add(redis, [entry])
        print(f"listed {mask_phone(entry.number)} ({entry.action})")
    elif args.action == "remove":
        removed = await remove(redis, valid_number(args.number))
        print(f"{'removed' if removed else 'not listed:'} {mask_phone(args.number.strip())}")
        return 0 if removed else 1
    elif args.action == "list":
        for entry in await entries(redis):
            number = entry.number if args.show_numbers else mask_phone(entry.number)
            print(f"{number}\t{entry.action}\t{entry.listed_at.isoformat()}\t{entry.source}\t{entry.reason}")
    else:
        path: Path = args.file
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(_PROG, f"cannot read {path}: {exc}")
            return BAD_INPUT
        try:
            parsed = parse_import(text, f"import:{path.name}", now)
        except BadImportFile as bad:
            for line_no, message in bad.errors:
                fail(_PROG, f"{path}:{line_no}: {message}")
            fail(_PROG, f"nothing imported ({len(bad.errors)} bad lines)")
            return BAD_INPUT
        await add(redis, parsed)
        print(f"listed {len(parsed)} numbers from {path}")
    return 0


def _run(args: argparse.Namespace) -> int:
    return run_on_redis(_PROG, lambda redis: _command(args, redis))


def add_command(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "blocklist",
        help="list, unlist and show numbers confirmed as fraud (REDIS_URL)",
        description="Manage the block list in Redis (REDIS_URL): new calls from a listed number are "
        "intercepted (blocked or warned) and the subscribers it reached are warned.",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    add_p = actions.add_parser("add", help="list a number")
    add_p.add_argument("number")
    add_p.add_argument("--reason", required=True, help="why it is listed (case, report, analyst)")
    add_p.add_argument("--on-call", choices=["block", "warn"], default="block", help="what to do with its calls")
    add_p.add_argument("--source", default="analyst", help="who listed it (default analyst)")
    remove_p = actions.add_parser("remove", help="unlist a number (exit 1 if it was not listed)")
    remove_p.add_argument("number")
    list_p = actions.add_parser("list", help="show the listed numbers (masked unless --show-numbers)")
    list_p.add_argument("--show-numbers", action="store_true", help="print numbers unmasked")
    import_p = actions.add_parser("import", help="list every number of a CSV file: number[,block|warn[,reason]]")
    import_p.add_argument("file", type=Path)
    parser.set_defaults(run=_run)
