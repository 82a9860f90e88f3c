"""Who is calling: users from configuration, bearer tokens, signed session cookies, role checks.

Users come from ``ANTIFRAUD_USERS_FILE`` (TOML or JSON) or ``ANTIFRAUD_USERS``
(inline JSON): ``{"users": [{"name", "role", "branch_id", "token_sha256"}]}``.
Only the SHA-256 of each token is configured, so the file holds no secret a
reader could replay. API clients send ``Authorization: Bearer TOKEN``; the login
page trades a token for an HttpOnly, SameSite=Strict session cookie signed with
HMAC-SHA256 under ``ANTIFRAUD_SECRET_KEY``. The cookie carries the user's name
and expiry only: role and branch are looked up on every request, so a change in
the users file applies at the next start without waiting for sessions to expire.
"""

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
import tomllib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from fastapi import HTTPException, Request, status

from antifraud.config import ConfigError

SESSION_COOKIE = "antifraud_session"
SESSION_TTL_SECONDS = 8 * 3600
"""A working shift; the login page asks again after it."""
MIN_SECRET_KEY_BYTES = 32


class Role(StrEnum):
    TELLER = "teller"
    ANALYST = "analyst"
    CREDIT_OFFICER = "credit_officer"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user; ``branch_id`` scopes a teller to one branch's counters."""

    name: str
    role: Role
    branch_id: str | None = None


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UserDirectory:
    """The configured users, found by the hash of their token or by name."""

    def __init__(self, users: Iterable[tuple[Principal, str]]) -> None:
        self._by_hash: dict[str, Principal] = {}
        self._by_name: dict[str, Principal] = {}
        for principal, digest in users:
            if principal.name in self._by_name:
                raise ConfigError(f"users: the name {principal.name!r} appears twice")
            if digest in self._by_hash:
                raise ConfigError(f"users: {principal.name!r} has the same token as {self._by_hash[digest].name!r}")
            self._by_hash[digest] = principal
            self._by_name[principal.name] = principal

    def __len__(self) -> int:
        return len(self._by_name)

    def by_token(self, token: str) -> Principal | None:
        return self._by_hash.get(token_sha256(token))

    def by_name(self, name: str) -> Principal | None:
        return self._by_name.get(name)

    @classmethod
    def parse(cls, document: Mapping[str, object], source: str) -> "UserDirectory":
        """Validate a users document; every error names the source, the entry and the field."""
        entries = document.get("users")
        if not isinstance(entries, list) or not entries:
            raise ConfigError(f"{source}: expected a non-empty list 'users'")
        users: list[tuple[Principal, str]] = []
        for number, entry in enumerate(entries, 1):
            where = f"{source}: users[{number}]"
            if not isinstance(entry, dict):
                raise ConfigError(f"{where} is not a table/object")
            unknown = set(entry) - {"name", "role", "branch_id", "token_sha256"}
            if unknown:
                raise ConfigError(f"{where} has unknown fields {sorted(unknown)}")
            name, role, branch, digest = (entry.get(k) for k in ("name", "role", "branch_id", "token_sha256"))
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{where}: 'name' must be a non-empty string")
            if role not in set(Role):
                raise ConfigError(f"{where} ({name}): 'role' must be one of {[r.value for r in Role]}, not {role!r}")
            if branch is not None and (not isinstance(branch, str) or not branch):
                raise ConfigError(f"{where} ({name}): 'branch_id' must be a non-empty string")
            if role == Role.TELLER and branch is None:
                raise ConfigError(f"{where} ({name}): a teller needs a 'branch_id'")
            if not isinstance(digest, str) or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
                raise ConfigError(f"{where} ({name}): 'token_sha256' must be 64 lowercase hex digits")
            users.append((Principal(name=name, role=Role(role), branch_id=branch), digest))
        return cls(users)

    @classmethod
    def load(cls, path: Path) -> "UserDirectory":
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"ANTIFRAUD_USERS_FILE={str(path)!r} cannot be read: {exc.strerror}") from None
        try:
            document = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"ANTIFRAUD_USERS_FILE={str(path)!r} is not valid {path.suffix[1:] or 'JSON'}: {exc}"
            ) from None
        if not isinstance(document, dict):
            raise ConfigError(f"ANTIFRAUD_USERS_FILE={str(path)!r}: expected an object with 'users'")
        return cls.parse(document, str(path))


def development_env(branch_id: str) -> tuple[dict[str, str], dict[str, str]]:
    """For a local try-out: one user per role with fresh random tokens, and a random key.

    Returns the environment that configures them (``ANTIFRAUD_USERS``, ``ANTIFRAUD_SECRET_KEY``,
    so every server process reads the same) and the tokens by user name.
    """
    tokens = {role.value: secrets.token_urlsafe(24) for role in Role}
    users = [
        {
            "name": name,
            "role": name,
            "branch_id": branch_id if name == Role.TELLER else None,
            "token_sha256": token_sha256(token),
        }
        for name, token in tokens.items()
    ]
    env = {"ANTIFRAUD_USERS": json.dumps({"users": users}), "ANTIFRAUD_SECRET_KEY": secrets.token_urlsafe(32)}
    return env, tokens


class SessionSigner:
    """Signs and checks session cookies: ``base64(json{name, exp}).hmac``."""

    def __init__(self, secret_key: bytes, ttl_seconds: int) -> None:
        self._key = secret_key
        self.ttl_seconds = ttl_seconds

    def _mac(self, payload: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._key, payload, hashlib.sha256).digest()).decode().rstrip("=")

    def sign(self, name: str, now: float) -> str:
        payload = base64.urlsafe_b64encode(json.dumps({"n": name, "e": int(now) + self.ttl_seconds}).encode())
        return f"{payload.decode()}.{self._mac(payload)}"

    def verify(self, cookie: str, now: float) -> str | None:
        """The user's name if the cookie is ours and unexpired, else None."""
        payload, _, mac = cookie.partition(".")
        if not mac or not hmac.compare_digest(mac, self._mac(payload.encode())):
            return None
        try:
            claims = json.loads(base64.urlsafe_b64decode(payload))
        except ValueError:
            return None
        if not isinstance(claims, dict) or not isinstance(claims.get("n"), str) or not isinstance(claims.get("e"), int):
            return None
        return claims["n"] if claims["e"] > now else None


@dataclass(frozen=True)
class Authenticator:
    """What the app needs to authenticate a request; lives on ``app.state.auth``."""

    users: UserDirectory
    sessions: SessionSigner

    @classmethod
    def from_env(cls) -> "Authenticator":
        """Users from ``ANTIFRAUD_USERS_FILE`` or ``ANTIFRAUD_USERS``, key from ``ANTIFRAUD_SECRET_KEY``; both required."""
        key = os.environ.get("ANTIFRAUD_SECRET_KEY") or ""
        if len(key.encode()) < MIN_SECRET_KEY_BYTES:
            raise ConfigError(
                f"ANTIFRAUD_SECRET_KEY must be set to at least {MIN_SECRET_KEY_BYTES} bytes "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`), or run with --dev-users"
            )
        path, inline = os.environ.get("ANTIFRAUD_USERS_FILE"), os.environ.get("ANTIFRAUD_USERS")
        if path:
            users = UserDirectory.load(Path(path))
        elif inline:
            try:
                document = json.loads(inline)
            except ValueError as exc:
                raise ConfigError(f"ANTIFRAUD_USERS is not valid JSON: {exc}") from None
            if not isinstance(document, dict):
                raise ConfigError("ANTIFRAUD_USERS: expected an object with 'users'")
            users = UserDirectory.parse(document, "ANTIFRAUD_USERS")
        else:
            raise ConfigError(
                "set ANTIFRAUD_USERS_FILE (or ANTIFRAUD_USERS) to the users allowed in, or run with --dev-users"
            )
        return cls(users, SessionSigner(key.encode(), SESSION_TTL_SECONDS))

    def principal(self, bearer: str | None, cookie: str | None) -> Principal | None:
        if bearer:
            return self.users.by_token(bearer)
        if cookie:
            name = self.sessions.verify(cookie, time.time())
            return self.users.by_name(name) if name else None
        return None


def authenticate(request: Request) -> Principal:
    """The caller, or 401 when no valid token or session came with the request.

    Reads the header and cookie itself rather than through FastAPI's security
    classes: one plain function per request keeps the check endpoint's budget
    (the OpenAPI document declares both schemes, see ``antifraud.web.app``).
    """
    auth: Authenticator = request.app.state.auth
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "the Authorization header must be 'Bearer TOKEN'",
                headers={"WWW-Authenticate": "Bearer"},
            )
    cookie = request.cookies.get(SESSION_COOKIE)
    principal = auth.principal(token if header is not None else None, cookie)
    if principal is None:
        detail = "invalid bearer token" if header else "invalid or expired session" if cookie else "not authenticated"
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})
    return principal


async def current_principal(request: Request) -> Principal:
    """A dependency yielding the caller, whatever their role."""
    return authenticate(request)


def require(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency yielding the caller if their role is one of ``roles`` (admin always passes), else 403."""
    allowed = frozenset(roles) | {Role.ADMIN}

    async def dependency(request: Request) -> Principal:
        principal = authenticate(request)
        if principal.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"role {principal.role.value} may not do this (needs {names})"
            )
        return principal

    return dependency


def ensure_branch(principal: Principal, branch_id: str) -> None:
    """Refuse (403) a teller asking about a branch other than their own; other roles see every branch."""
    if principal.role is Role.TELLER and principal.branch_id != branch_id:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"a teller of branch {principal.branch_id} may not see branch {branch_id}"
        )
