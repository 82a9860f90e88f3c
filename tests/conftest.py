"""Fixtures that start real parts: the embedded broker and redis-server, and a worker.

Every test that needs Kafka gets a stack of its own (Tansu starts in well under
a second), so topics, offsets and Redis state never leak between tests. With
KAFKA_BOOTSTRAP / REDIS_URL set, the stack uses those services instead.
"""

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from antifraud.audit.models import AuditKeys
from antifraud.stack.embedded import EmbeddedStack, Endpoints
from antifraud.stack.worker import WorkerProcess, metric_sum
from streams import topics

PARTITIONS = 2

TEST_AUDIT_KEY = "a test audit key, never a real one: 32 bytes or more"
os.environ["ANTIFRAUD_AUDIT_KEY"] = TEST_AUDIT_KEY  # workers, CLIs and web apps the tests start chain under it
AUDIT_KEYS = AuditKeys(TEST_AUDIT_KEY.encode())
"""The keys of every audit log a test opens itself."""


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Endpoints]:
    with EmbeddedStack(workdir=tmp_path) as endpoints:
        topics.ensure_topics(endpoints.kafka_bootstrap, PARTITIONS)
        yield endpoints


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A redis-server of the test's own (or REDIS_URL), for stores tested without Kafka."""
    with EmbeddedStack(kafka=False, workdir=tmp_path / "redis-only") as endpoints:
        yield endpoints.redis_url


@pytest.fixture
def start_worker(stack: Endpoints, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start workers on the test's stack; all are stopped at the end of the test."""
    started: list[WorkerProcess] = []

    def start(**extra_env: str) -> WorkerProcess:
        env = {"ANTIFRAUD_PARTITIONS": str(PARTITIONS), "ANTIFRAUD_BATCH_WITHIN": "0.05", **extra_env}
        folder = tmp_path / f"worker{len(started)}" if started else tmp_path  # each its own log and data
        folder.mkdir(exist_ok=True)
        worker = WorkerProcess(stack, folder, extra_env=env)
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.stop()


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``antifraud ARGV`` in-process, through the real command line: its exit code, stdout and stderr."""
    import antifraud.cli  # the command line imports every subcommand: only for the tests that run it

    try:
        code = antifraud.cli.main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def wait_for(condition: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def wait_consumed(worker: WorkerProcess, count: int, timeout: float = 60.0) -> None:
    """Wait until the worker's metrics show ``count`` input records consumed."""
    wait_for(
        lambda: metric_sum(worker.scrape(), "antifraud_events_consumed_total") >= count,
        timeout,
        f"{count} records consumed (worker log {worker.log_path})",
    )


TIER_OF_FIXTURE = {
    "stack": "kafka",
    "start_worker": "kafka",
    "replayed": "kafka",
    "memory_stack": "kafka",
    "durable_stack": "kafka",
    "redis_url": "redis",
    "aof_redis": "redis",
}
"""The tier a test is in by the real parts its fixtures start; a module that starts them itself says so with
its own ``pytestmark``. A test with none of them is ``unit``: no broker, no Redis, no browser."""
TIERS = ("unit", "redis", "kafka", "browser", "faults")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its tier (``pytest -m unit`` is the fast tier of ``make check``)."""
    for item in items:
        marked = {m.name for m in item.iter_markers()} & set(TIERS)
        fixtures = set(getattr(item, "fixturenames", ()))
        tiers = {tier for name, tier in TIER_OF_FIXTURE.items() if name in fixtures} | marked
        for tier in tiers or {"unit"}:
            item.add_marker(tier)
