"""The HTTP app over a test's stack, with one user per role (and a teller for a second branch).

with web_client(stack) as client:
    client.get("/api/me", headers=as_user("analyst"))
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi.testclient import TestClient

from antifraud.config import Settings
from antifraud.stack.embedded import Endpoints
from antifraud.stack.process import free_port
from antifraud.web.app import create_app
from antifraud.web.auth import Authenticator, Principal, Role, UserDirectory, token_sha256
from antifraud.web.sessions import LoginThrottle, SessionStore

BRANCH = "B001"
OTHER_BRANCH = "B002"
USERS: dict[str, Principal] = {
    "teller": Principal("teller", Role.TELLER, BRANCH),
    "other_teller": Principal("other_teller", Role.TELLER, OTHER_BRANCH),
    "analyst": Principal("analyst", Role.ANALYST),
    "credit_officer": Principal("credit_officer", Role.CREDIT_OFFICER),
    "admin": Principal("admin", Role.ADMIN),
}


def token_of(name: str) -> str:
    return f"test-token-{name}"


def make_auth() -> Authenticator:
    users = UserDirectory((p, token_sha256(token_of(name))) for name, p in USERS.items())
    return Authenticator(users, SessionStore(b"k" * 32, idle_s=1800, absolute_s=3600), LoginThrottle(5, 900))


def as_user(name: str) -> dict[str, str]:
    """The Authorization header of one of ``USERS``."""
    return {"Authorization": f"Bearer {token_of(name)}"}


def settings_for(endpoints: Endpoints) -> Settings:
    return Settings.from_env().model_copy(
        update={"kafka_bootstrap": endpoints.kafka_bootstrap, "redis_url": endpoints.redis_url}
    )


@contextmanager
def web_client(endpoints: Endpoints, *, raise_server_exceptions: bool = True) -> Iterator[TestClient]:
    """A client of the app (lifespan run: Redis, audit log, warning fan-out) on ``endpoints``; with
    ``raise_server_exceptions=False`` a server error is the 500 a caller gets instead of the test's exception."""
    app = create_app(settings_for(endpoints), make_auth())
    with TestClient(app, raise_server_exceptions=raise_server_exceptions) as client:
        yield client


@contextmanager
def serve(endpoints: Endpoints) -> Iterator[str]:
    """The app served by uvicorn on a free port in a thread (for streams and browsers); yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings_for(endpoints), make_auth()),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the web app did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def add_account(redis_url: str, name: str, role: Role, password: str, branch_id: str | None = None) -> None:
    """A person's account, as ``antifraud users add`` makes it."""
    import asyncio

    from redis.asyncio import Redis

    from antifraud.audit.service import AuditLog
    from antifraud.clock import utcnow
    from antifraud.web.accounts import AccountStore
    from tests.conftest import AUDIT_KEYS

    async def go() -> None:
        async with Redis.from_url(redis_url) as redis:
            await AccountStore(redis, AuditLog(redis, AUDIT_KEYS)).add(
                name, role, branch_id, password, actor="test", now=utcnow()
            )

    asyncio.run(go())
