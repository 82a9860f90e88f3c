"""People's accounts: added, disabled, re-enabled and reset through ``antifraud users``, signing in by name
and password (Argon2id), throttled per account as well as per address, every change audited."""

import asyncio
import io

import pytest
from redis.asyncio import Redis

from antifraud.audit.service import AuditLog
from antifraud.stack.embedded import Endpoints
from antifraud.web.sessions import LoginThrottle
from tests.conftest import AUDIT_KEYS, run_cli
from tests.web_helpers import web_client

PASSWORD = "correct horse battery staple"


def users(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str, stdin: str = ""
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return run_cli(capsys, "users", *argv)


def test_an_account_signs_in_by_name_and_password_until_disabled(
    stack: Endpoints, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", stack.redis_url)
    add = ["add", "li.na", "--role", "analyst", "--password-stdin", "--actor", "admin-wu"]
    assert users(capsys, monkeypatch, *add, stdin=PASSWORD + "\n")[0] == 0
    code, _, err = users(capsys, monkeypatch, *add, stdin=PASSWORD + "\n")
    assert code == 1 and "there is already an account 'li.na'" in err
    code, _, err = users(capsys, monkeypatch, "add", "bo", "--role", "teller", "--password-stdin", stdin=PASSWORD)
    assert code == 1 and "a teller needs a branch" in err
    code, _, err = users(capsys, monkeypatch, "add", "bo", "--role", "analyst", "--password-stdin", stdin="short\n")
    assert code == 1 and "at least 12 characters" in err
    code, out, _ = users(capsys, monkeypatch, "list")
    assert code == 0 and out.startswith("li.na\tanalyst\t-\tactive\tsince ")

    with web_client(stack) as client:
        wrong = client.post("/api/session", json={"name": "li.na", "password": PASSWORD + "!"})
        assert (wrong.status_code, wrong.json()["detail"]) == (401, "wrong name or password")
        assert client.post("/api/session", json={"name": "nobody", "password": PASSWORD}).status_code == 401
        assert client.post("/api/session", json={"name": "li.na"}).status_code == 422, "a password too"
        me = client.post("/api/session", json={"name": "li.na", "password": PASSWORD})
        assert me.status_code == 200 and me.json()["role"] == "analyst"
        assert client.get("/api/cases").status_code == 200

        assert users(capsys, monkeypatch, "disable", "li.na")[0] == 0
        assert client.get("/api/cases").status_code == 401, "disabled: its session stops at the next request"
        assert client.post("/api/session", json={"name": "li.na", "password": PASSWORD}).status_code == 401
        assert users(capsys, monkeypatch, "enable", "li.na")[0] == 0
        new = "a new passphrase after the reset"
        assert users(capsys, monkeypatch, "reset-password", "li.na", "--password-stdin", stdin=new)[0] == 0
        assert client.post("/api/session", json={"name": "li.na", "password": PASSWORD}).status_code == 401
        assert client.post("/api/session", json={"name": "li.na", "password": new}).status_code == 200

    async def audited() -> list[tuple[str, str]]:
        async with Redis.from_url(stack.redis_url) as redis:
            records = await AuditLog(redis, AUDIT_KEYS).about("user:li.na")
            assert all(PASSWORD not in r.model_dump_json() and "argon2" not in r.model_dump_json() for r in records)
            return [(r.action, r.actor) for r in records]

    assert asyncio.run(audited())[0] == ("user.add", "admin-wu")
    assert [a for a, _ in asyncio.run(audited())] == ["user.add", "user.disable", "user.enable", "user.reset_password"]
    code, _, err = users(capsys, monkeypatch, "disable", "ghost")
    assert code == 1 and "there is no account 'ghost'" in err


def test_logins_are_throttled_per_account_from_any_address_and_per_address(redis_url: str) -> None:
    async def body() -> None:
        throttle = LoginThrottle(limit=3, window_s=600)
        async with Redis.from_url(redis_url) as redis:
            for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):  # a slow guesser moving between addresses
                await throttle.failed(redis, f"addr:{address}", "name:li.na")
            assert await throttle.retry_after(redis, "addr:10.0.0.9", "name:li.na") is not None, "the account"
            assert await throttle.retry_after(redis, "addr:10.0.0.9", "name:bo") is None
            assert await throttle.retry_after(redis, "addr:10.0.0.1", "name:bo") is None, "one miss from there"
            for name in ("a", "b", "c"):  # one address trying many accounts
                await throttle.failed(redis, "addr:10.0.0.7", f"name:{name}")
            wait = await throttle.retry_after(redis, "addr:10.0.0.7", "name:zed")
            assert wait is not None and 0 < wait <= 600

    asyncio.run(body())
