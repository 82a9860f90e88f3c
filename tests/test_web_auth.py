"""Users from configuration, tokens, session cookies and role checks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from antifraud.config import ConfigError
from antifraud.stack.embedded import Endpoints
from antifraud.web.auth import (
    SESSION_COOKIE,
    Authenticator,
    Role,
    SessionSigner,
    UserDirectory,
    development_env,
    token_sha256,
)
from tests.web_helpers import as_user, token_of, web_client

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
        Authenticator.from_env()
    monkeypatch.setenv("ANTIFRAUD_SECRET_KEY", "short")
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        Authenticator.from_env()
    monkeypatch.setenv("ANTIFRAUD_SECRET_KEY", "k" * 32)
    monkeypatch.delenv("ANTIFRAUD_USERS_FILE", raising=False)
    monkeypatch.delenv("ANTIFRAUD_USERS", raising=False)
    with pytest.raises(ConfigError, match="set ANTIFRAUD_USERS_FILE"):
        Authenticator.from_env()
    monkeypatch.setenv(
        "ANTIFRAUD_USERS", json.dumps({"users": [{"name": "a", "role": "analyst", "token_sha256": DIGEST}]})
    )
    assert Authenticator.from_env().users.by_token("s3cret") is not None
    monkeypatch.setenv("ANTIFRAUD_USERS_FILE", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="missing.toml' cannot be read"):
        Authenticator.from_env()


def test_development_users_get_one_random_token_per_role(monkeypatch: pytest.MonkeyPatch) -> None:
    env, tokens = development_env("B007")
    assert set(tokens) == {r.value for r in Role}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ANTIFRAUD_USERS_FILE", raising=False)
    teller = Authenticator.from_env().users.by_token(tokens["teller"])
    assert teller is not None and teller.branch_id == "B007"
    assert development_env("B007")[1]["admin"] != tokens["admin"]


def test_a_session_cookie_is_valid_until_it_expires_and_only_with_our_key() -> None:
    signer = SessionSigner(b"k" * 32, ttl_seconds=60)
    cookie = signer.sign("li", now=1000.0)
    assert signer.verify(cookie, now=1059.0) == "li"
    assert signer.verify(cookie, now=1060.0) is None
    assert SessionSigner(b"j" * 32, 60).verify(cookie, now=1000.0) is None
    mac = cookie.split(".")[1]
    forged = SessionSigner(b"k" * 32, 6000).sign("admin", now=1000.0).split(".")[0]
    assert signer.verify(f"{forged}.{mac}", now=1000.0) is None
    assert signer.verify("garbage", now=1000.0) is None


def test_every_api_call_needs_a_token_or_a_session(stack: Endpoints) -> None:
    with web_client(stack) as client:
        assert client.get("/api/me").json() == {"detail": "not authenticated"}
        wrong = client.get("/api/me", headers={"Authorization": "Bearer nope"})
        assert (wrong.status_code, wrong.json()["detail"]) == (401, "invalid bearer token")
        assert wrong.headers["www-authenticate"] == "Bearer"
        for method, path in [("POST", "/api/check"), ("GET", "/api/places/B001/warnings")]:
            assert client.request(method, path).status_code == 401, path


def test_logging_in_sets_an_httponly_strict_cookie_that_logging_out_clears(stack: Endpoints) -> None:
    with web_client(stack) as client:
        refused = client.post("/api/session", json={"token": "nope"})
        assert (refused.status_code, refused.json()["detail"]) == (401, "unknown token")
        assert client.post("/api/session", json={}).status_code == 422
        response = client.post("/api/session", json={"token": token_of("analyst")})
        assert response.json() == {"name": "analyst", "role": "analyst", "branch_id": None}
        header = response.headers["set-cookie"].lower()
        assert "httponly" in header and "samesite=strict" in header and "max-age=3600" in header
        assert client.get("/api/me").json()["name"] == "analyst"
        client.cookies.set(SESSION_COOKIE, client.cookies[SESSION_COOKIE][:-2] + "xx")
        assert client.get("/api/me").json()["detail"] == "invalid or expired session"
        client.post("/api/session", json={"token": token_of("analyst")})
        assert client.delete("/api/session").status_code == 204
        assert client.get("/api/me").status_code == 401


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
        client.app.state.auth = Authenticator(removed, auth.sessions)  # type: ignore[attr-defined]
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
