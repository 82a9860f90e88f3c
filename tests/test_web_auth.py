"""Users from configuration, tokens, server-side sessions (timeouts, logout), CSRF, login throttling and
role checks."""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from antifraud.audit.service import AuditLog
from antifraud.config import ConfigError, Settings
from antifraud.stack.embedded import Endpoints
from antifraud.web.auth import (
    SESSION_COOKIE,
    Authenticator,
    Role,
    UserDirectory,
    development_env,
    token_sha256,
)
from antifraud.web.sessions import SessionStore
from tests.conftest import AUDIT_KEYS
from tests.web_helpers import as_user, serve, token_of, web_client

DIGEST = token_sha256("s3cret")


def test_users_load_from_a_toml_file_and_tokens_are_looked_up_by_their_hash(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    path.write_text(f'[[users]]\nname = "li"\nrole = "teller"\nbranch_id = "B001"\ntoken_sha256 = "{DIGEST}"\n')
    users = UserDirectory.load(path)
    principal = users.by_token("s3cret")
    assert principal is not None and (principal.name, principal.role, principal.branch_id) == (
        "li",
        Role.TELLER,
        "B001",
    )
    assert users.by_token("s3cret ") is None and users.by_token(DIGEST) is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "li", "role": "boss", "token_sha256": DIGEST}, "'role' must be one of"),
        ({"name": "li", "role": "teller", "token_sha256": DIGEST}, "a teller needs a 'branch_id'"),
        ({"name": "li", "role": "admin", "token_sha256": "s3cret"}, "'token_sha256' must be 64 lowercase hex digits"),
        ({"name": "", "role": "admin", "token_sha256": DIGEST}, "'name' must be a non-empty string"),
        ({"name": "li", "role": "admin", "token_sha256": DIGEST, "password": "x"}, "unknown fields ['password']"),
    ],
)
def test_a_bad_user_entry_is_refused_naming_the_file_the_entry_and_the_field(
    tmp_path: Path, entry: dict, message: str
) -> None:
    path = tmp_path / "users.json"
    path.write_text(json.dumps({"users": [entry]}))
    with pytest.raises(ConfigError) as caught:
        UserDirectory.load(path)
    assert str(path) in str(caught.value) and "users[1]" in str(caught.value) and message in str(caught.value)


def test_two_users_with_one_token_are_refused() -> None:
    entries = [{"name": n, "role": "admin", "token_sha256": DIGEST} for n in ("a", "b")]
    with pytest.raises(ConfigError, match="'b' has the same token as 'a'"):
        UserDirectory.parse({"users": entries}, "inline")


def test_the_app_refuses_to_start_without_a_secret_key_or_users(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ANTIFRAUD_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="ANTIFRAUD_SECRET_KEY must be set"):
        Authenticator.from_env(Settings.from_env())
    monkeypatch.setenv("ANTIFRAUD_SECRET_KEY", "short")
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        Authenticator.from_env(Settings.from_env())
    monkeypatch.setenv("ANTIFRAUD_SECRET_KEY", "k" * 32)
    monkeypatch.delenv("ANTIFRAUD_USERS_FILE", raising=False)
    monkeypatch.delenv("ANTIFRAUD_USERS", raising=False)
    with pytest.raises(ConfigError, match="set ANTIFRAUD_USERS_FILE"):
        Authenticator.from_env(Settings.from_env())
    monkeypatch.setenv(
        "ANTIFRAUD_USERS", json.dumps({"users": [{"name": "a", "role": "analyst", "token_sha256": DIGEST}]})
    )
    assert Authenticator.from_env(Settings.from_env()).users.by_token("s3cret") is not None
    monkeypatch.setenv("ANTIFRAUD_USERS_FILE", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="missing.toml' cannot be read"):
        Authenticator.from_env(Settings.from_env())


def test_development_users_get_one_random_token_per_role(monkeypatch: pytest.MonkeyPatch) -> None:
    env, tokens = development_env("B007")
    assert set(tokens) == {r.value for r in Role}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ANTIFRAUD_USERS_FILE", raising=False)
    teller = Authenticator.from_env(Settings.from_env()).users.by_token(tokens["teller"])
    assert teller is not None and teller.branch_id == "B007"
    assert development_env("B007")[1]["admin"] != tokens["admin"]


def test_a_session_ends_when_idle_too_long_or_too_old_and_at_logout(redis_url: str) -> None:
    async def body() -> None:
        clock = [1000.0]
        store = SessionStore(b"k" * 32, idle_s=60, absolute_s=300, clock=lambda: clock[0])
        async with Redis.from_url(redis_url) as redis:
            sid, opened = await store.open(redis, "li")
            assert await store.read(redis, sid) == opened and opened.name == "li"
            assert await SessionStore(b"j" * 32, idle_s=60, absolute_s=300).read(redis, sid) is None, "our key only"
            for _ in range(5):  # used every 59 s: alive, until the absolute timeout
                clock[0] += 59
                assert await store.read(redis, sid) == opened
            clock[0] += 59  # 354 s after login
            assert await store.read(redis, sid) is None, "a shift's absolute timeout"
            sid, _ = await store.open(redis, "li")
            clock[0] += 61
            assert await store.read(redis, sid) is None, "idle too long"
            sid, _ = await store.open(redis, "li")
            await store.close(redis, sid)
            assert await store.read(redis, sid) is None, "logged out"
            assert await store.read(redis, "made-up") is None
            assert [k async for k in redis.scan_iter("websession:*")] == [], "ended sessions are deleted"

    asyncio.run(body())


def test_every_api_call_needs_a_token_or_a_session(stack: Endpoints) -> None:
    with web_client(stack) as client:
        assert client.get("/api/me").json() == {
            "detail": "not authenticated",
            "code": "not_authenticated",
            "params": {},
        }
        wrong = client.get("/api/me", headers={"Authorization": "Bearer nope"})
        assert (wrong.status_code, wrong.json()["detail"]) == (401, "invalid bearer token")
        assert wrong.headers["www-authenticate"] == "Bearer"
        for method, path in [("POST", "/api/check"), ("GET", "/api/places/B001/warnings")]:
            assert client.request(method, path).status_code == 401, path


def test_logging_in_sets_an_httponly_strict_cookie_and_logging_out_ends_the_session(stack: Endpoints) -> None:
    with web_client(stack) as client:
        refused = client.post("/api/session", json={"token": "nope"})
        assert (refused.status_code, refused.json()["detail"]) == (401, "unknown token")
        assert client.post("/api/session", json={}).status_code == 422
        response = client.post("/api/session", json={"token": token_of("analyst")})
        me = response.json()
        assert (me["name"], me["role"], me["branch_id"]) == ("analyst", "analyst", None) and len(me["csrf_token"]) > 30
        header = response.headers["set-cookie"].lower()
        assert "httponly" in header and "samesite=strict" in header and "max-age=3600" in header
        assert client.get("/api/me").json() == me, "the pages read the CSRF token from /api/me"
        assert client.get("/api/me", headers=as_user("analyst")).json()["csrf_token"] is None
        old = client.cookies[SESSION_COOKIE]
        client.cookies.set(SESSION_COOKIE, old[:-2] + "xx")
        assert client.get("/api/me").json()["detail"] == "invalid or expired session"
        client.cookies.set(SESSION_COOKIE, old)
        assert client.delete("/api/session").status_code == 403, "logging out is a change: it needs the token"
        assert client.delete("/api/session", headers={"X-CSRF-Token": me["csrf_token"]}).status_code == 204
        assert client.get("/api/me").status_code == 401
        client.cookies.set(SESSION_COOKIE, old)
        assert client.get("/api/me").status_code == 401, "the old cookie is worth nothing after logout"
        client.cookies.clear()
        assert client.delete("/api/session").status_code == 401, "logout without credentials"


def test_a_change_made_with_the_cookie_must_come_from_the_apps_own_pages(stack: Endpoints) -> None:
    """A cross-origin form post (a page on another port of the same host) moved a case; now refused."""
    with web_client(stack) as client:
        csrf = client.post("/api/session", json={"token": token_of("analyst")}).json()["csrf_token"]
        path = f"/api/cases/{'0' * 32}/review"  # no such case: 404 once let through
        attacks = [
            ({"Origin": "http://testserver:3000", "Sec-Fetch-Site": "same-site"}, "a same-site request"),
            ({"Origin": "http://testserver:3000"}, "a page of another origin"),
            ({"Sec-Fetch-Site": "cross-site", "X-CSRF-Token": csrf}, "a cross-site request"),
            ({}, "X-CSRF-Token"),
            ({"X-CSRF-Token": "guess"}, "X-CSRF-Token"),
        ]
        for headers, why in attacks:
            refused = client.post(path, headers=headers)
            assert refused.status_code == 403 and why in refused.json()["detail"], (headers, refused.json())
        own = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin", "X-CSRF-Token": csrf}
        assert client.post(path, headers=own).status_code == 404, "the app's own page gets through"
        assert client.post(path, headers=as_user("analyst")).status_code == 404, "a bearer token needs no CSRF token"
        cross_login = client.post(
            "/api/session", json={"token": token_of("analyst")}, headers={"Origin": "http://evil"}
        )
        assert cross_login.status_code == 403, "no login from another site's page"


def test_refused_logins_are_throttled_per_address_audited_and_answered_429(stack: Endpoints) -> None:
    with web_client(stack) as client:
        for _ in range(5):
            assert client.post("/api/session", json={"token": "guess"}).status_code == 401
        throttled = client.post("/api/session", json={"token": token_of("analyst")})
        assert throttled.status_code == 429 and 0 < int(throttled.headers["retry-after"]) <= 900
        assert "too many refused logins" in throttled.json()["detail"]
        assert client.get("/api/me", headers=as_user("analyst")).status_code == 200, "tokens already issued still work"

        async def audited() -> list[str]:
            async with Redis.from_url(client.app.state.settings.redis_url) as redis:  # type: ignore[attr-defined]
                records = await AuditLog(redis, AUDIT_KEYS).about("web:login")
                return [r.action for r in records]

        assert asyncio.run(audited()) == ["web.login_refused"] * 5


def test_a_role_not_allowed_gets_403_naming_the_roles_that_are(stack: Endpoints) -> None:
    with web_client(stack) as client:
        refused = client.get("/api/places/B001/warnings", headers=as_user("credit_officer"))
        assert refused.status_code == 403
        assert refused.json()["detail"] == "role credit_officer may not do this (needs admin, analyst, teller)"
        assert client.get("/api/places/B001/warnings", headers=as_user("admin")).status_code == 200


def test_the_session_follows_the_users_file_not_the_cookie(stack: Endpoints) -> None:
    """A cookie names the user only; a user removed from the file is out at once, whatever the cookie says."""
    with web_client(stack) as client:
        client.post("/api/session", json={"token": token_of("teller")})
        auth: Authenticator = client.app.state.auth  # type: ignore[attr-defined]
        removed = UserDirectory([])
        client.app.state.auth = Authenticator(removed, auth.sessions, auth.throttle)  # type: ignore[attr-defined]
        assert client.get("/api/me").status_code == 401


def test_antifraud_web_refuses_to_start_naming_what_is_missing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTIFRAUD_")}
    run = subprocess.run(
        [sys.executable, "-m", "antifraud", "web"], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2
    assert "ANTIFRAUD_SECRET_KEY must be set to at least 32 bytes" in run.stderr and "--dev-users" in run.stderr
    users = tmp_path / "users.json"
    users.write_text('{"users": []}')
    env.update(ANTIFRAUD_SECRET_KEY="k" * 32, ANTIFRAUD_USERS_FILE=str(users))
    run = subprocess.run(
        [sys.executable, "-m", "antifraud", "web"], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2 and "expected a non-empty list 'users'" in run.stderr


def test_behind_a_tls_proxy_the_session_cookie_is_secure(stack: Endpoints) -> None:
    """uvicorn believes X-Forwarded-Proto from the trusted proxy (here: loopback), so the app sees https."""
    with serve(stack) as base_url:
        plain = httpx.post(f"{base_url}/api/session", json={"token": token_of("analyst")})
        behind = httpx.post(
            f"{base_url}/api/session", json={"token": token_of("analyst")}, headers={"X-Forwarded-Proto": "https"}
        )
    assert "secure" not in plain.headers["set-cookie"].lower()
    assert "secure" in behind.headers["set-cookie"].lower()
