"""Who is calling: users from configuration, bearer tokens, server-side sessions, role checks, CSRF.

People have accounts (``antifraud/web/accounts.py``: a name and an Argon2id-hashed
password, managed with ``antifraud users``). API clients are named in
``ANTIFRAUD_USERS_FILE`` (TOML or JSON) or ``ANTIFRAUD_USERS`` (inline JSON):
``{"users": [{"name", "role", "branch_id", "token_sha256"}]}``; only the SHA-256 of
each token is configured, so the file holds no secret a reader could replay. API
clients send ``Authorization: Bearer TOKEN``; the login page trades a name and
password (or a client's token) for an HttpOnly, SameSite=Strict cookie naming a session kept
in Redis (``antifraud/web/sessions.py``: ended at logout, after the idle or the
absolute timeout). Role and branch are looked up on every request, so a change in
the users file applies at the next start without waiting for sessions to end.

A cookie is sent by the browser whoever made the page, so a state-changing request
(anything but GET, HEAD, OPTIONS) that comes with the cookie must also come from the
app's own pages: the browser's ``Sec-Fetch-Site`` must say same-origin, the ``Origin``
must be the app's own host and port (SameSite does not tell ports apart: Grafana on
another port of the same host is "same site"), and ``X-CSRF-Token`` must carry the
session's own token, which only the app's pages can read (from ``/api/me``). A bearer
token is no ambient credential: requests with one need none of this.
"""

import hashlib
import hmac
import json
import secrets
import tomllib
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import Request

from antifraud.config import ConfigError, Settings
from antifraud.refusals import Forbidden, Unauthenticated
from antifraud.web.accounts import AccountStore
from antifraud.web.principal import Principal, Role
from antifraud.web.sessions import LoginThrottle, Session, SessionStore

SESSION_COOKIE = "antifraud_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MIN_SECRET_KEY_BYTES = 32


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

    def principals(self) -> list[Principal]:
        return list(self._by_name.values())

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


@dataclass(frozen=True)
class Authenticator:
    """What the app needs to authenticate a request; lives on ``app.state.auth``."""

    users: UserDirectory
    sessions: SessionStore
    throttle: LoginThrottle

    @classmethod
    def from_env(cls, settings: Settings) -> "Authenticator":
        """Users from ``ANTIFRAUD_USERS_FILE`` or ``ANTIFRAUD_USERS``, key from ``ANTIFRAUD_SECRET_KEY``; both
        required. Session timeouts and login throttling from ``settings``."""
        key = settings.secret_key.get_secret_value() if settings.secret_key else ""
        if len(key.encode()) < MIN_SECRET_KEY_BYTES:
            raise ConfigError(
                f"ANTIFRAUD_SECRET_KEY must be set to at least {MIN_SECRET_KEY_BYTES} bytes "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`), or run with --dev-users"
            )
        path, inline = settings.users_file, settings.users.get_secret_value() if settings.users else None
        if path:
            users = UserDirectory.load(path)
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
        sessions = SessionStore(key.encode(), idle_s=settings.session_idle_s, absolute_s=settings.session_max_s)
        return cls(users, sessions, LoginThrottle(settings.login_max_failures, settings.login_window_s))


def refuse_cross_site(request: Request) -> None:
    """403 for a request another site's page could have made the browser send (module docstring)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise Forbidden("cross_site", f"refused: a {site} request may not change anything here")
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise Forbidden("other_origin", "refused: the request comes from a page of another origin")


async def user_named(request: Request, name: str) -> Principal | None:
    """The user called ``name``: in the users file, or an active account (read on every request, so a
    disabled account is out at once, whatever its sessions)."""
    auth: Authenticator = request.app.state.auth
    return auth.users.by_name(name) or await AccountStore(request.app.state.redis).principal(name)


async def people_in(request: Request, roles: Collection[Role]) -> list[str]:
    """The names of the users file's users and the active accounts in ``roles``, sorted."""
    auth: Authenticator = request.app.state.auth
    accounts = [a.principal for a in await AccountStore(request.app.state.redis).names() if a.active]
    return sorted({p.name for p in [*auth.users.principals(), *accounts] if p.role in roles})


async def session_of(request: Request) -> Session | None:
    """The live session the request's cookie names, if any."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    auth: Authenticator = request.app.state.auth
    return await auth.sessions.read(request.app.state.redis, cookie)


async def authenticate(request: Request) -> Principal:
    """The caller, or 401 when no valid token or live session came with the request; 403 when a
    state-changing request made with the session's cookie did not come from the app's own pages.

    Reads the header and cookie itself rather than through FastAPI's security
    classes: one plain function per request keeps the check endpoint's budget
    (the OpenAPI document declares both schemes, see ``antifraud.web.app``).
    """
    auth: Authenticator = request.app.state.auth
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("bearer_malformed", "the Authorization header must be 'Bearer TOKEN'")
        principal = auth.users.by_token(token)
        if principal is None:
            raise Unauthenticated("bearer_invalid", "invalid bearer token")
        return principal
    session = await session_of(request)
    principal = await user_named(request, session.name) if session is not None else None
    if session is None or principal is None:
        if request.cookies.get(SESSION_COOKIE):
            raise Unauthenticated("session_expired", "invalid or expired session")
        raise Unauthenticated("not_authenticated", "not authenticated")
    request.state.session = session
    if request.method not in SAFE_METHODS:
        refuse_cross_site(request)
        if not hmac.compare_digest(request.headers.get(CSRF_HEADER, ""), session.csrf):
            raise Forbidden(
                "csrf",
                f"refused: a change made with the session cookie must carry the session's {CSRF_HEADER} "
                "(the app's pages send it; reload the page)",
            )
    return principal


async def current_principal(request: Request) -> Principal:
    """A dependency yielding the caller, whatever their role."""
    return await authenticate(request)


def require(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency yielding the caller if their role is one of ``roles`` (admin always passes), else 403."""
    allowed = frozenset(roles) | {Role.ADMIN}

    async def dependency(request: Request) -> Principal:
        principal = await authenticate(request)
        if principal.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise Forbidden(
                "role", f"role {principal.role.value} may not do this (needs {names})", role=principal.role.value
            )
        return principal

    return dependency


def ensure_branch(principal: Principal, branch_id: str) -> None:
    """Refuse (403) a teller asking about a branch other than their own; other roles see every branch."""
    if principal.role is Role.TELLER and principal.branch_id != branch_id:
        raise Forbidden(
            "other_branch",
            f"a teller of branch {principal.branch_id} may not see branch {branch_id}",
            branch=branch_id,
        )
