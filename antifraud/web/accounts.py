"""People's accounts: a user name and a password (hashed with Argon2id), a role, a branch for tellers.

Kept in Redis (``antifraud/state/keys.py`` WEB_ACCOUNT) and managed with ``antifraud users add | disable |
enable | reset-password | list``; every change is audited (``user.*``, never the password). The users file
(``ANTIFRAUD_USERS_FILE``) still names API clients by token; a person signs in on the login page with
name and password. A disabled account cannot sign in, and its open sessions stop working at their next
request: the account is read on every request, not remembered by the session. An external identity
provider would replace :meth:`AccountStore.verify` and keep the rest.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from antifraud.audit.models import Change
from antifraud.audit.service import AuditLog
from antifraud.state.keys import WEB_ACCOUNT, WEB_ACCOUNTS
from antifraud.state.replies import text, texts
from antifraud.web.principal import Principal, Role

MIN_PASSWORD_CHARS = 12
"""Long enough to resist guessing at the login throttle's pace; no composition rules (NIST SP 800-63B)."""

_HASHER = PasswordHasher()  # argon2-cffi's defaults: Argon2id, RFC 9106's low-memory profile


class AccountError(ValueError):
    """A refused account change (an unknown name, a name taken, a short password), in plain words."""


@dataclass(frozen=True)
class Account:
    principal: Principal
    active: bool
    created_at: str


Decide = Callable[[Account | None], tuple[dict[str, str], Change]]
"""The account as stored (None: no such account) -> the fields to write and the audited change; raises to refuse."""


class AccountStore:
    def __init__(self, redis: Redis, audit: AuditLog | None = None) -> None:
        self.redis = redis
        self.audit = audit
        """Required for changes (they are audited); reads and sign-ins need none."""

    async def get(self, name: str) -> Account | None:
        fields = await self.redis.hmget(WEB_ACCOUNT.key(name), ["role", "branch_id", "active", "created_at"])
        if fields[0] is None:
            return None
        role, branch, active, created = texts(fields)
        principal = Principal(name=name, role=Role(role), branch_id=branch or None)
        return Account(principal, active == "1", created)

    async def principal(self, name: str) -> Principal | None:
        """The active account's user, or None (unknown or disabled)."""
        account = await self.get(name)
        return account.principal if account is not None and account.active else None

    async def verify(self, name: str, password: str) -> Principal | None:
        """The user when ``password`` is the active account's; None otherwise (the same time either way: an
        unknown name is hashed against too, so timing does not tell which names exist)."""
        raw = await self.redis.hget(WEB_ACCOUNT.key(name), "password")
        stored = text(raw) if raw is not None else None
        try:
            _HASHER.verify(stored or _DUMMY, password)
        except (VerificationError, InvalidHashError):
            return None
        if stored is None:
            return None
        if _HASHER.check_needs_rehash(stored):
            await self.redis.hset(WEB_ACCOUNT.key(name), "password", _HASHER.hash(password))
        return await self.principal(name)

    async def names(self) -> list[Account]:
        accounts = [await self.get(n) for n in sorted(texts(await self.redis.smembers(WEB_ACCOUNTS.key())))]
        return [a for a in accounts if a is not None]

    async def add(
        self, name: str, role: Role, branch_id: str | None, password: str, *, actor: str, now: datetime
    ) -> None:
        if role is Role.TELLER and not branch_id:
            raise AccountError("a teller needs a branch (--branch)")
        _check_password(password)
        digest = _HASHER.hash(password)

        def change(before: Account | None) -> tuple[dict[str, str], Change]:
            if before is not None:
                raise AccountError(f"there is already an account {name!r}")
            fields = {
                "role": role.value,
                "branch_id": branch_id or "",
                "active": "1",
                "created_at": now.isoformat(),
                "password": digest,
            }
            return fields, Change(None, {"role": role.value, "branch_id": branch_id, "active": True})

        await self._change(name, "user.add", actor, change)

    async def set_active(self, name: str, active: bool, *, actor: str) -> None:
        def change(before: Account | None) -> tuple[dict[str, str], Change]:
            if before is None:
                raise AccountError(f"there is no account {name!r}")
            return {"active": "1" if active else "0"}, Change({"active": before.active}, {"active": active})

        await self._change(name, "user.enable" if active else "user.disable", actor, change)

    async def reset_password(self, name: str, password: str, *, actor: str) -> None:
        _check_password(password)
        digest = _HASHER.hash(password)

        def change(before: Account | None) -> tuple[dict[str, str], Change]:
            if before is None:
                raise AccountError(f"there is no account {name!r}")
            return {"password": digest}, Change(None, {"password": "reset"})

        await self._change(name, "user.reset_password", actor, change)

    async def _change(self, name: str, action: str, actor: str, decide_fields: Decide) -> None:
        """Read the account under WATCH, decide, then write it and its audit record in one MULTI."""
        if self.audit is None:
            raise RuntimeError("account changes are audited: give the store an audit log")
        key = WEB_ACCOUNT.key(name)

        async def decide(pipe: Pipeline) -> Change:
            before = await AccountStore(pipe).get(name)  # reads through the watching pipe
            fields, change = decide_fields(before)

            def write(tx: Pipeline) -> None:
                tx.hset(key, mapping=dict[Any, str](fields))  # redis-py types keys as bytes | str | ...
                tx.sadd(WEB_ACCOUNTS.key(), name)

            return Change(change.before, change.after, write)

        await self.audit.transact(actor=actor, action=action, subject=f"user:{name}", watch=[key], decide=decide)


_DUMMY = _HASHER.hash("a password no account has: hashed against for unknown names")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
