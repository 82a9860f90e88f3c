"""``antifraud users add | disable | enable | reset-password | list``: people's accounts for the web app.

Passwords are typed twice at a prompt, or read from standard input with ``--password-stdin`` (one line,
for provisioning scripts); never from an argument, where ``ps`` and the shell history would show them.
Every change is audited with ``--actor`` (default ``cli:<login name>``).
"""

import argparse
import getpass
import sys

from redis.asyncio import Redis

from antifraud.audit.service import AuditLog
from antifraud.cli_support import run_on_redis
from antifraud.clock import utcnow
from antifraud.config import audit_keys
from antifraud.web.accounts import AccountError, AccountStore
from antifraud.web.principal import Role


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise AccountError("the two passwords differ")
    return first


def _store(redis: Redis) -> AccountStore:
    return AccountStore(redis, AuditLog(redis, audit_keys()))


def _run(args: argparse.Namespace) -> int:
    async def command(redis: Redis) -> int:
        accounts = _store(redis)
        if args.action == "list":
            for account in await accounts.names():
                who = account.principal
                state = "active" if account.active else "disabled"
                print(f"{who.name}\t{who.role.value}\t{who.branch_id or '-'}\t{state}\tsince {account.created_at}")
            return 0
        if args.action == "add":
            await accounts.add(args.name, Role(args.role), args.branch, _password(args), actor=args.actor, now=utcnow())
            print(f"account {args.name} ({args.role}) added")
        elif args.action == "reset-password":
            await accounts.reset_password(args.name, _password(args), actor=args.actor)
            print(f"password of {args.name} reset")
        else:
            await accounts.set_active(args.name, args.action == "enable", actor=args.actor)
            print(f"account {args.name} {args.action}d")
        return 0

    return run_on_redis("antifraud users", command, refused=(AccountError,))


def add_command(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "users",
        help="manage people's accounts for the web app (name, password, role)",
        description="Accounts in Redis (REDIS_URL): a user name, an Argon2id-hashed password, a role and, for "
        "tellers, a branch. Every change is audited.",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    acting = argparse.ArgumentParser(add_help=False)
    acting.add_argument("--actor", default=f"cli:{getpass.getuser()}", help="who acts, for the audit trail")
    secret = argparse.ArgumentParser(add_help=False)
    secret.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add = actions.add_parser("add", parents=[acting, secret], help="add an account (asks for its password)")
    add.add_argument("name", help="the user name")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--branch", help="the teller's branch (required for tellers)")
    simple: list[tuple[str, str, list[argparse.ArgumentParser]]] = [
        ("disable", "disable an account: no sign-in, its sessions stop at once", [acting]),
        ("enable", "enable a disabled account again", [acting]),
        ("reset-password", "set a new password (asks for it)", [acting, secret]),
    ]
    for verb, text, parents in simple:
        action = actions.add_parser(verb, parents=parents, help=text)
        action.add_argument("name", help="the user name")
    actions.add_parser("list", help="every account: name, role, branch, active or disabled")
    parser.set_defaults(run=_run)
