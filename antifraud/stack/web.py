"""The HTTP service (``antifraud web``) run as a child process over a stack, ready once it answers."""

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from antifraud.stack.embedded import Endpoints, StackError, audit_key
from antifraud.stack.process import free_port, spawn, stop


class WebProcess:
    """``antifraud web`` on a free port with the ``users`` given (``ANTIFRAUD_USERS`` entries) and a fresh session key."""

    def __init__(
        self,
        endpoints: Endpoints,
        workdir: Path,
        users: list[dict[str, str]],
        *,
        workers: int = 1,
        access_log: bool = False,
    ) -> None:
        self.port = free_port()
        self.workers = workers
        self.access_log = access_log
        self.log_path = workdir / "web.log"
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap,
            "REDIS_URL": endpoints.redis_url,
            "ANTIFRAUD_SECRET_KEY": secrets.token_hex(16),
            "ANTIFRAUD_AUDIT_KEY": audit_key(),
            "ANTIFRAUD_USERS": json.dumps({"users": users}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "WebProcess":
        """Spawn the server and wait until it serves its OpenAPI document (every worker process has started)."""
        self.proc = spawn(
            [
                sys.executable,
                *("-m", "antifraud", "web", "--port", str(self.port), "--workers", str(self.workers)),
                *(["--access-log"] if self.access_log else []),
            ],
            log_path=self.log_path,
            env=self.env,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{self.base_url}/openapi.json", timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise StackError(f"antifraud web did not start; log {self.log_path}") from None
                time.sleep(0.2)

    def stop(self) -> int | None:
        return stop(self.proc) if self.proc is not None else None

    def __enter__(self) -> "WebProcess":
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
