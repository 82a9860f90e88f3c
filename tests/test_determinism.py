"""The same stream gives the same alerts, holds and cases, however it is processed.

One simulated city (fixed seed) goes through ``antifraud detect`` (the reference), then through the
worker on a fresh embedded broker and redis-server each time: (a) one worker, (b) one worker again,
(c) one worker SIGKILLed four times at random moments and restarted, (d) two workers, one of them
SIGKILLed. Each must yield exactly the reference's alert ids and contents (``raised_at`` aside: it is
the wall clock), hold ids with their final states, and case ids with their alerts.

The events are all on the broker before a worker starts, as in a replay of a recorded day: a record
that arrives after its partition has been idle for ``ANTIFRAUD_IDLE_SECONDS`` while the others moved
on is late (counted in ``antifraud_late_records_total``), and only late records can change a result
(``streams/merge.py``).
"""

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import get_args

import orjson
import pytest
import redis.asyncio

from antifraud.alerts.models import Alert
from antifraud.audit.service import AuditLog
from antifraud.case.service import CaseService
from antifraud.holds.models import HoldState
from antifraud.holds.service import HoldLedger
from antifraud.stack.embedded import EmbeddedStack, Endpoints
from antifraud.stack.worker import WorkerProcess
from antifraud.thresholds import load_thresholds
from streams.eventfile import read_lines
from streams.offline import detect_file
from streams.topics import ALERTS
from tests.conftest import wait_for
from tests.kafka_helpers import read_all

pytestmark = pytest.mark.integration

SEED = 11
KILLS = 4


@dataclass(frozen=True)
class Outcome:
    alerts: dict[str, dict[str, object]]
    """alert id -> its content without raised_at."""
    holds: dict[str, str]
    """hold id -> final state."""
    cases: dict[str, frozenset[str]]
    """case id -> its alerts' ids."""


def _content(raw: bytes) -> tuple[str, dict[str, object]]:
    doc = orjson.loads(raw)
    doc.pop("raised_at", None)
    return str(doc["alert_id"]), doc


async def _state(redis_url: str, alerts: list[Alert] | None) -> tuple[dict[str, str], dict[str, frozenset[str]]]:
    """Holds and cases in a Redis; with ``alerts``, fold them into cases first (the offline reference)."""
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        thresholds = load_thresholds(None)
        cases = CaseService(client, AuditLog(client), holds=thresholds.holds)
        if alerts is not None:
            await cases.fold_alerts(alerts)
        ledger = HoldLedger.configured(client, thresholds.holds)
        holds = {h.hold_id: h.state for state in get_args(HoldState)
                 for h in await ledger.in_state(state, limit=1_000_000)}
        found = {c.case_id: frozenset(a.alert_id for a in await cases.alerts(c.case_id))
                 for c in await cases.find(limit=1_000_000)}
        return holds, found
    finally:
        await client.aclose()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("world")
    path = folder / "city.jsonl.gz"
    subprocess.run([sys.executable, "-m", "antifraud", "simulate", "--seed", str(SEED), "--people", "800",
                    "--days", "1", "-o", str(path), "-q"], check=True, capture_output=True)
    return path


@pytest.fixture(scope="module")
def reference(world: Path, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """What ``antifraud detect`` concludes on the world."""
    found: list[bytes] = []

    async def run(url: str) -> tuple[dict[str, str], dict[str, frozenset[str]]]:
        client = redis.asyncio.Redis.from_url(url)
        try:
            await detect_file(world, client, load_thresholds(None), found.append)
        finally:
            await client.aclose()
        return await _state(url, [Alert.model_validate_json(raw) for raw in found])

    with EmbeddedStack(kafka=False, workdir=tmp_path_factory.mktemp("offline")) as endpoints:
        holds, cases = asyncio.run(run(endpoints.redis_url))
    outcome = Outcome(dict(_content(raw) for raw in found), holds, cases)
    assert outcome.alerts and outcome.holds and outcome.cases, "the world must give alerts, holds and cases"
    assert len(outcome.alerts) == len(found), "offline, every alert is produced once"
    return outcome


def _events(world: Path) -> int:
    return sum(1 for _ in read_lines(world))


async def _progress(redis_url: str) -> tuple[int, float]:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        offsets = await client.hvals("stream:offsets")
        marks = await client.hvals("stream:watermarks")
        return sum(int(o) for o in offsets), min((float(m) for m in marks), default=float("-inf"))
    finally:
        await client.aclose()


def _last_event_time(world: Path) -> float:
    last = 0.0
    for _, raw in read_lines(world):
        doc = orjson.loads(raw)
        last = max(last, datetime.fromisoformat(doc["event_time"].replace("Z", "+00:00")).timestamp())
    return last


def _outcome(stack: Endpoints, world: Path, expected: Outcome) -> Outcome:
    """Once every record is processed and time has moved past the last event by the delay: what the
    stack holds (cases are waited for: the alerts agent folds them behind the input loop)."""
    total, done_at = _events(world), _last_event_time(world) + load_thresholds(None).stream.cross_entity_delay_seconds
    wait_for(lambda: (lambda p: p[0] >= total and p[1] > done_at)(asyncio.run(_progress(stack.redis_url))),
             timeout=300, what="every record processed and the final timers run")
    alerts = dict(_content(r.value) for r in read_all(stack.kafka_bootstrap, ALERTS, settle=3))
    holds, cases = asyncio.run(_state(stack.redis_url, None))
    deadline = time.monotonic() + 60
    while cases != expected.cases and time.monotonic() < deadline:
        time.sleep(1)
        holds, cases = asyncio.run(_state(stack.redis_url, None))
    return Outcome(alerts, holds, cases)


def _processed(stack: Endpoints, count: int) -> None:
    wait_for(lambda: asyncio.run(_progress(stack.redis_url))[0] >= count, timeout=300,
             what=f"{count} records processed")


def _replay(stack: Endpoints, world: Path) -> None:
    subprocess.run([sys.executable, "-m", "antifraud", "replay", str(world), "--bootstrap", stack.kafka_bootstrap],
                   check=True, capture_output=True)


def _kill(worker: WorkerProcess) -> None:
    assert worker.proc is not None
    os.killpg(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait()


def _same(got: Outcome, expected: Outcome) -> None:
    assert got.alerts.keys() == expected.alerts.keys(), (
        f"only in the worker: {sorted(got.alerts.keys() - expected.alerts.keys())[:5]}; "
        f"only offline: {sorted(expected.alerts.keys() - got.alerts.keys())[:5]}")
    assert got.alerts == expected.alerts
    assert got.holds == expected.holds
    assert got.cases == expected.cases


Start = Callable[..., WorkerProcess]


@pytest.fixture
def replayed(stack: Endpoints, world: Path) -> Iterator[Endpoints]:
    _replay(stack, world)
    yield stack


@pytest.mark.parametrize("run", ["first", "again"])
def test_one_worker_concludes_what_detect_does(replayed: Endpoints, start_worker: Start, world: Path,
                                               reference: Outcome, run: str) -> None:
    start_worker()
    _same(_outcome(replayed, world, reference), reference)


def test_a_worker_killed_four_times_concludes_the_same(replayed: Endpoints, start_worker: Start, world: Path,
                                                       reference: Outcome) -> None:
    rng, total = random.Random(SEED), _events(world)
    worker = start_worker()
    for kill in range(1, KILLS + 1):  # spread over the work: after a share of the records, at a random moment
        _processed(replayed, kill * total // (KILLS + 2))
        time.sleep(rng.uniform(0.0, 0.5))
        _kill(worker)
        worker.start()
    _same(_outcome(replayed, world, reference), reference)


def test_two_workers_one_killed_conclude_the_same(replayed: Endpoints, start_worker: Start, world: Path,
                                                  reference: Outcome) -> None:
    rng = random.Random(SEED + 1)
    first, second = start_worker(), start_worker()
    _processed(replayed, _events(world) // 3)
    time.sleep(rng.uniform(0.0, 0.5))
    _kill(rng.choice([first, second]))
    _same(_outcome(replayed, world, reference), reference)
