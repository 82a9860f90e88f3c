"""A worker (``antifraud worker``) run as a child process, and reading its metrics."""

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Literal

from prometheus_client.parser import text_string_to_metric_families

from antifraud.stack.embedded import Endpoints, StackError, audit_key
from antifraud.stack.process import free_port, spawn, stop


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text -> {(sample name, sorted labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def metric_sum(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, lbls), v in samples.items() if n == name and wanted <= set(lbls))


WorkerLogLevel = Literal["crit", "error", "warn", "info", "debug"]
"""The levels ``faust worker -l`` accepts (it refuses ``warning``)."""


class WorkerProcess:
    def __init__(
        self,
        endpoints: Endpoints,
        workdir: Path,
        *,
        extra_env: dict[str, str] | None = None,
        log_level: WorkerLogLevel = "warn",
    ) -> None:
        self.endpoints = endpoints
        self.log_level = log_level
        self.workdir = workdir
        self.web_port = free_port()
        self.log_path = workdir / "worker.log"
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap,
            "REDIS_URL": endpoints.redis_url,
            "ANTIFRAUD_WEB_PORT": str(self.web_port),
            "ANTIFRAUD_DATA_DIR": str(workdir / "worker-data"),
            "ANTIFRAUD_AUDIT_KEY": audit_key(),
            **(extra_env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> "WorkerProcess":
        self.proc = spawn(
            [sys.executable, "-m", "antifraud", "worker", "-l", self.log_level], log_path=self.log_path, env=self.env
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StackError(f"worker exited with code {self.proc.returncode}; log {self.log_path}")
            try:
                self.scrape()
                return self
            except urllib.error.HTTPError:
                raise  # the server is up but broken: waiting will not help
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        raise StackError(f"worker did not serve /metrics within {timeout:.0f}s; log {self.log_path}")

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/metrics", timeout=5) as response:
            return parse_metrics(response.read().decode())

    def stop(self) -> int | None:
        return stop(self.proc, timeout=20) if self.proc is not None else None

    def __enter__(self) -> "WorkerProcess":
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
