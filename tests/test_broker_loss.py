"""A broker that restarts: with its data, the worker carries on and loses nothing; without it (the memory
broker), the worker stops loudly instead of reading on from wherever the broker now is."""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from antifraud.stack.embedded import EmbeddedStack
from antifraud.stack.worker import WorkerProcess, metric_sum
from streams import topics
from streams.loop import TOPIC_CHECK_SECONDS
from tests.conftest import PARTITIONS, wait_consumed, wait_for
from tests.test_pipeline_integration import cold_calls, produce

pytestmark = [pytest.mark.integration, pytest.mark.faults]

GRACE = 3.0
"""ANTIFRAUD_STOP_GRACE_SECONDS: how long the stopped worker keeps /metrics up."""


def started(stack: EmbeddedStack, folder: Path) -> WorkerProcess:
    assert stack.endpoints is not None
    topics.ensure_topics(stack.endpoints.kafka_bootstrap, PARTITIONS)
    return WorkerProcess(
        stack.endpoints,
        folder,
        extra_env={"ANTIFRAUD_PARTITIONS": str(PARTITIONS), "ANTIFRAUD_STOP_GRACE_SECONDS": str(GRACE)},
    ).start()


def _stack(tmp_path: Path, durable: bool) -> Iterator[EmbeddedStack]:
    stack = EmbeddedStack(workdir=tmp_path / "stack", durable=durable)
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture
def memory_stack(tmp_path: Path) -> Iterator[EmbeddedStack]:
    yield from _stack(tmp_path, durable=False)


@pytest.fixture
def durable_stack(tmp_path: Path) -> Iterator[EmbeddedStack]:
    yield from _stack(tmp_path, durable=True)


def test_a_broker_that_lost_its_data_stops_the_worker_with_a_reason(
    memory_stack: EmbeddedStack, tmp_path: Path
) -> None:
    assert memory_stack.endpoints is not None
    worker = started(memory_stack, tmp_path)
    try:
        produce(memory_stack.endpoints, cold_calls(40))
        wait_consumed(worker, 40)
        memory_stack.restart_broker()
        wait_for(
            lambda: metric_sum(worker.scrape(), "antifraud_input_stopped", reason="broker_lost") == 1,
            timeout=60,
            what=f"the worker to report the broker's loss (log {worker.log_path})",
        )
        assert worker.proc is not None
        code = worker.proc.wait(timeout=GRACE + 30)
        assert code != 0
        log = worker.log_path.read_text(errors="replace")
        assert "the input loop stopped:" in log
        assert "the broker lost records" in log or "the broker has no input topic" in log
    finally:
        worker.stop()


def test_a_durable_broker_restarted_loses_nothing(durable_stack: EmbeddedStack, tmp_path: Path) -> None:
    assert durable_stack.endpoints is not None
    worker = started(durable_stack, tmp_path)
    try:
        produce(durable_stack.endpoints, cold_calls(40))
        wait_consumed(worker, 40)
        durable_stack.restart_broker()
        produce(durable_stack.endpoints, cold_calls(30, first=40))
        wait_consumed(worker, 70, timeout=90)
        time.sleep(TOPIC_CHECK_SECONDS + 1)  # a topic check has run since
        samples = worker.scrape()
        assert metric_sum(samples, "antifraud_input_stopped") == 0
        assert metric_sum(samples, "antifraud_events_consumed_total") == 70, "each record read once"
        assert worker.proc is not None and worker.proc.poll() is None
    finally:
        worker.stop()
