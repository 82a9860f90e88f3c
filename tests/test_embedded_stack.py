"""The embedded stack starts real services, stops them, and leaves no orphans."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from antifraud.stack.embedded import EmbeddedStack, StackError, kafka_answers, redis_answers
from antifraud.stack.process import spawn
from tests.conftest import wait_for

pytestmark = pytest.mark.kafka  # it starts the broker and redis-server itself


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purposes once reaped or dead.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ", 1)[1][0] != "Z"


@pytest.fixture
def no_env_services(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)


def test_starts_answering_services_and_stops_them(tmp_path: Path, no_env_services: None) -> None:
    stack = EmbeddedStack(workdir=tmp_path)
    endpoints = stack.start()
    pids = stack.pids
    try:
        assert len(pids) == 2
        assert kafka_answers(endpoints.kafka_bootstrap)
        client = redis.Redis.from_url(endpoints.redis_url)
        client.set("k", "v")
        assert client.get("k") == b"v"
        assert client.config_get("appendonly")["appendonly"] == "yes"
    finally:
        stack.stop()
    assert not any(alive(pid) for pid in pids)
    assert not kafka_answers(endpoints.kafka_bootstrap)
    assert not redis_answers(endpoints.redis_url)


def test_uses_configured_services_instead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with EmbeddedStack(workdir=tmp_path / "outer") as real:
        monkeypatch.setenv("KAFKA_BOOTSTRAP", real.kafka_bootstrap)
        monkeypatch.setenv("REDIS_URL", real.redis_url)
        inner = EmbeddedStack(workdir=tmp_path / "inner")
        assert inner.start() == real
        assert inner.pids == []
        inner.stop()
        assert kafka_answers(real.kafka_bootstrap), "a configured service is never stopped"


PARENT = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, even when started with SIGINT ignored (nohup, &)
from antifraud.stack.embedded import EmbeddedStack
stack = EmbeddedStack()
stack.start()
print(*stack.pids, flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_no_orphans_when_the_parent_dies(sig: signal.Signals, no_env_services: None) -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        line = parent.stdout.readline() if parent.stdout else ""
        pids = [int(p) for p in line.split()]
        assert len(pids) == 2 and all(alive(p) for p in pids)
        parent.send_signal(sig)
        parent.wait(60)
        wait_for(lambda: not any(alive(p) for p in pids), timeout=60, what="children to exit")
    finally:
        parent.kill()
        parent.wait()


def test_reports_a_service_that_exits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The start fails on the child's exit, naming its code and its last words, not on the start timeout:
    with a timeout far longer than any test, only the exit can produce the "exited" message."""
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho 'bad config' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr("antifraud.stack.embedded.redis_server_binary", lambda: str(fake))
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "127.0.0.1:1")  # not started, not needed
    monkeypatch.delenv("REDIS_URL", raising=False)
    children: list[subprocess.Popen[bytes]] = []

    def recorded_spawn(
        argv: list[str], *, log_path: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        children.append(spawn(argv, log_path=log_path, env=env))
        return children[-1]

    monkeypatch.setattr("antifraud.stack.embedded.spawn", recorded_spawn)
    stack = EmbeddedStack(workdir=tmp_path, startup_timeout=300)
    with pytest.raises(StackError, match="redis-server exited with code 3:\\s+bad config") as caught:
        stack.start()
    assert "did not answer" not in str(caught.value)
    assert [c.returncode for c in children] == [3]  # seen exiting by itself, not stopped by us
    assert stack.pids == []


def test_the_stack_command_keeps_topics_records_and_offsets_across_a_restart(
    tmp_path: Path, no_env_services: None
) -> None:
    """`antifraud stack` stopped and started again on its data folder: the records and a group's committed
    offset are still there (the broker's in s3rver, Redis's in its AOF)."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    from antifraud.stack.process import free_port, stop
    from streams import topics

    kafka_port, redis_port = free_port(), free_port()
    bootstrap = f"127.0.0.1:{kafka_port}"
    partition = TopicPartition(topics.ALERTS, 0)

    def run_stack() -> "subprocess.Popen[bytes]":
        proc = spawn(
            [
                sys.executable,
                "-m",
                "antifraud",
                "stack",
                "--data",
                str(tmp_path / "data"),
                "--kafka-port",
                str(kafka_port),
                "--redis-port",
                str(redis_port),
                "--partitions",
                "1",
            ],
            log_path=tmp_path / "stack.log",
        )
        wait_for(
            lambda: "export KAFKA_BOOTSTRAP" in (tmp_path / "stack.log").read_text(),
            timeout=60,
            what="the stack to print its endpoints",
        )
        return proc

    first = run_stack()
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for n in range(50):
        producer.send(topics.ALERTS, f"alert {n}".encode(), partition=0)
    producer.flush()
    producer.close()
    redis.Redis(port=redis_port).set("kept", "yes")
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id="reader", enable_auto_commit=False)
    consumer.assign([partition])
    consumer.commit({partition: OffsetAndMetadata(20, None, -1)})
    consumer.close()
    assert stop(first) == 0

    second = run_stack()
    try:
        reader = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id="reader",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            consumer_timeout_ms=5000,
        )
        reader.assign([partition])
        assert reader.committed(partition) == 20
        reader.seek(partition, 0)
        values = [r.value for r in reader]
        reader.close()
        assert values == [f"alert {n}".encode() for n in range(50)]
        assert redis.Redis(port=redis_port).get("kept") == b"yes"
    finally:
        stop(second)
