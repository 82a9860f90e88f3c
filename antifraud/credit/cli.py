"""``antifraud blacklist list|show|add|object|decide|repair|expire``: the credit blacklist from a shell (REDIS_URL).

Changes go through the same audited, published moves as the HTTP API; the actor
in the audit trail is ``--actor`` (default ``cli:<login name>``). Identifiers are
masked in the output unless ``--show-ids`` is given.
"""

import argparse
import getpass
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, get_args

from redis.asyncio import Redis

from antifraud.audit.service import AuditLog
from antifraud.case.service import CaseService
from antifraud.cli_support import run_on_redis
from antifraud.clock import utcnow
from antifraud.config import Settings, audit_keys
from antifraud.credit.backing import unbacked
from antifraud.credit.models import (
    Amendment,
    Listing,
    ListingDraft,
    ListingNotFound,
    LookupKind,
    ObjectionDecision,
    ObjectionFiling,
    ObjectionNotFound,
    ReasonCode,
    RepairCondition,
    RepairRequest,
    lookup_value,
)
from antifraud.credit.service import CreditBlacklist
from antifraud.privacy import mask_account, mask_entity, mask_phone
from antifraud.thresholds import load_thresholds

_LOOKUPS: tuple[LookupKind, ...] = get_args(LookupKind)


def _masked(listing: Listing, show_ids: bool) -> dict[str, Any]:
    doc = listing.model_dump(mode="json")
    if not show_ids:
        doc["party"]["id"] = mask_entity(listing.party.kind, listing.party.id)
        doc["accounts"] = [mask_account(a) for a in listing.accounts]
        doc["phones"] = [mask_phone(p) for p in listing.phones]
    return doc


def _line(listing: Listing, show_ids: bool) -> str:
    party = listing.party.id if show_ids else mask_entity(listing.party.kind, listing.party.id)
    return (
        f"{listing.listing_id}\t{listing.state}\t{party}\t{listing.reason_code}\t"
        f"{listing.listed_at:%Y-%m-%d}\t{listing.expires_at:%Y-%m-%d}\t{listing.case_id}"
    )


def _time(raw: str) -> datetime:
    """An ISO 8601 time with a timezone (argparse type)."""
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {raw!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a timezone, e.g. {raw}+08:00")
    return value


async def _command(args: argparse.Namespace, redis: Redis) -> int:
    settings = Settings.from_env()
    limits = load_thresholds(settings.thresholds_path).credit_blacklist
    blacklist = CreditBlacklist(redis, AuditLog(redis, audit_keys()), limits)
    now = utcnow()
    actor = args.actor if "actor" in args else ""
    if args.action == "list":
        given = [(k, getattr(args, k)) for k in _LOOKUPS if getattr(args, k) is not None]
        if len(given) > 1:
            raise ValueError("give at most one of --id-number, --credit-code, --account, --phone")
        if given:
            kind, raw = given[0]
            listings = await blacklist.find(kind, lookup_value(kind, raw), now=now, include_ended=args.all)
        else:
            listings = [x for x in await blacklist.latest(args.last, now=now) if args.all or x.in_force]
        for listing in listings:
            print(_line(listing, args.show_ids))
        return 0
    if args.action == "show":
        listing = await blacklist.get(args.listing_id, now=now)
        print(json.dumps(_masked(listing, args.show_ids), ensure_ascii=False, indent=2))
        return 0
    if args.action == "reindex":
        print(f"{await blacklist.index_objected()} listings with an objection pending are on the worklist")
        return 0
    if args.action == "expire":
        total = 0
        while expired := await blacklist.expire_due(now, settings.blacklist_sweep_batch):
            total += len(expired)
        print(f"expired {total} listings due by {now.isoformat()}")
        return 0
    if args.action == "add":
        draft = ListingDraft.model_validate(
            {
                "party": {"kind": args.kind, "id": args.party_id},
                "case_id": args.case_id,
                "reason_code": args.reason_code,
                "reason": args.reason,
                "evidence": args.evidence,
                "accounts": args.account,
                "phones": args.phone,
                "expires_at": args.expires,
            }
        )
        why = await unbacked(CaseService(redis, blacklist.audit), draft)
        if why is not None:
            raise ValueError(
                f"{why.why}: a listing no confirmed case of the party backs needs a second officer's approval"
            )
        listing, created = await blacklist.add(draft, actor=actor, now=now)
        print(f"{'listed' if created else 'already listed'}: {_line(listing, args.show_ids)}")
    elif args.action == "object":
        filing = ObjectionFiling(party_id=args.party_id, grounds=args.grounds, evidence=tuple(args.evidence))
        listing = await blacklist.object(args.listing_id, filing, actor=actor, now=now)
        print(f"objection {listing.objections[-1].objection_id} filed: {_line(listing, args.show_ids)}")
    elif args.action == "decide":
        amend = Amendment.model_validate_json(args.amend) if args.amend else None
        decision = ObjectionDecision(decision=args.decision, note=args.note, amend=amend)
        listing = await blacklist.decide(args.listing_id, args.objection_id, decision, actor=actor, now=now)
        print(
            f"objection {args.objection_id} {listing.objections[args.objection_id - 1].state}: "
            f"{_line(listing, args.show_ids)}"
        )
    else:
        request = RepairRequest(conditions=tuple(args.condition), evidence=tuple(args.evidence), note=args.note)
        listing = await blacklist.repair(args.listing_id, request, actor=actor, now=now)
        print(f"repaired: {_line(listing, args.show_ids)}")
    return 0


def _run(args: argparse.Namespace) -> int:
    return run_on_redis(
        "antifraud blacklist", lambda redis: _command(args, redis), refused=(ListingNotFound, ObjectionNotFound)
    )


def _repeated(
    parser: argparse.ArgumentParser,
    flag: str,
    help_text: str,
    *,
    required: bool = False,
    choices: Sequence[str] | None = None,
) -> None:
    parser.add_argument(flag, action="append", default=[], required=required, choices=choices, help=help_text)


def add_command(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "blacklist",
        help="the credit blacklist: list, show, add, object, decide, repair, expire, reindex (REDIS_URL)",
        description="The credit blacklist in Redis (REDIS_URL): parties of confirmed cases with reason, "
        "evidence and period; objections, corrections, credit repair and expiry, each audited and "
        "published on antifraud.credit-blacklist.",
    )
    parser.set_defaults(run=_run)
    actions = parser.add_subparsers(dest="action", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--show-ids", action="store_true", help="print ID numbers, accounts and phones unmasked")
    acting = argparse.ArgumentParser(add_help=False)
    acting.add_argument("--actor", default=f"cli:{getpass.getuser()}", help="who acts, for the audit trail")

    list_p = actions.add_parser(
        "list", parents=[common], help="listings in force, newest first, or those naming one key"
    )
    for kind in _LOOKUPS:
        list_p.add_argument(f"--{kind.replace('_', '-')}", dest=kind, help=f"only listings naming this {kind}")
    list_p.add_argument("--all", action="store_true", help="include removed, repaired and expired listings")
    list_p.add_argument("--last", type=int, default=50, help="how many of the newest listings (default 50)")

    show = actions.add_parser("show", parents=[common], help="one listing with its objections (JSON)")
    show.add_argument("listing_id")

    add = actions.add_parser("add", parents=[common, acting], help="list a party from a confirmed case")
    add.add_argument("party_id", help="the ID number or unified social credit code")
    add.add_argument("--kind", choices=["id_number", "credit_code"], default="id_number", help="default id_number")
    add.add_argument("--case-id", required=True)
    add.add_argument("--reason-code", required=True, choices=get_args(ReasonCode))
    add.add_argument("--reason", required=True, help="why, in words")
    _repeated(add, "--evidence", "an evidence reference (repeat; at least one)", required=True)
    _repeated(add, "--account", "an account of the party to blacklist (repeat)")
    _repeated(add, "--phone", "a phone number of the party (repeat)")
    add.add_argument("--expires", type=_time, help="ISO 8601 time; default: the reason code's period")

    obj = actions.add_parser("object", parents=[common, acting], help="file the listed party's objection")
    obj.add_argument("listing_id")
    obj.add_argument("--party-id", required=True, help="the ID on the document the party presented")
    obj.add_argument("--grounds", required=True)
    _repeated(obj, "--evidence", "a reference to what the party brought (repeat)")

    decide = actions.add_parser("decide", parents=[common, acting], help="decide the pending objection")
    decide.add_argument("listing_id")
    decide.add_argument("objection_id", type=int)
    decide.add_argument("decision", choices=["uphold", "correct"])
    decide.add_argument("--note", required=True, help="the reasons of the decision")
    decide.add_argument(
        "--amend",
        help="with correct: JSON of the fields to change, e.g. '{\"accounts\": []}'; "
        "without it a correction removes the listing",
    )

    repair = actions.add_parser("repair", parents=[common, acting], help="end a listing on credit repair")
    repair.add_argument("listing_id")
    _repeated(repair, "--condition", "a condition met (repeat)", required=True, choices=get_args(RepairCondition))
    _repeated(repair, "--evidence", "a reference showing it (repeat; at least one)", required=True)
    repair.add_argument("--note", required=True)

    actions.add_parser("expire", help="expire every listing whose period ran out (the worker also sweeps)")
    actions.add_parser(
        "reindex", help="put the listings with an objection pending on the officers' worklist (after an upgrade)"
    )
