"""A redis-server of a test's own, with AOF (``appendfsync always``), which the test can kill (SIGKILL)
and start again on the same port and data: what survives a crash is what the AOF holds."""

import asyncio
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from antifraud.stack.embedded import redis_answers, redis_server_binary
from antifraud.stack.process import free_port, spawn, stop
from antifraud.state.keys import family_of
from tests.conftest import wait_for


class AofRedis:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = spawn(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--daemonize",
                "no",
            ],
            log_path=self.folder / "redis.log",
        )
        wait_for(lambda: redis_answers(self.url), timeout=30, what="redis-server up")

    def crash(self) -> None:
        """SIGKILL: no shutdown, no final save; only what the AOF already holds survives."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        assert not redis_answers(self.url)


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[AofRedis]:
    """A started :class:`AofRedis` in this test's folder, stopped after the test."""
    folder = tmp_path / "aof-redis"
    folder.mkdir()
    server = AofRedis(folder)
    server.start()
    yield server
    if server.proc is not None:
        stop(server.proc)


def on_redis(url: str, body: Callable[[Redis], Awaitable[None]]) -> None:
    """Run ``body`` with a client of the redis-server at ``url``, closed afterwards."""

    async def run() -> None:
        client = redis.asyncio.Redis.from_url(url)
        try:
            await body(client)
        finally:
            await client.aclose()

    asyncio.run(run())


def unnamed_keys(url: str) -> list[str]:
    """The keys in the Redis at ``url`` that no family of ``antifraud/state/keys.py`` names."""
    client = SyncRedis.from_url(url)
    try:
        return sorted(key.decode() for key in client.scan_iter(count=1000) if family_of(key.decode()) is None)
    finally:
        client.close()
