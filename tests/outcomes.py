"""What a stream concludes (alerts, holds, cases), offline and on a stack, for tests that compare the two
(``test_determinism.py``, ``test_faults.py``): a simulated city, ``antifraud detect``'s conclusions on it
(the reference), and a stack's once it has processed every record."""

import asyncio
import subprocess
import sys
import time
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
from antifraud.thresholds import load_thresholds
from streams.eventfile import read_lines
from streams.offline import detect_file
from streams.topics import ALERTS
from tests.conftest import AUDIT_KEYS, wait_for
from tests.kafka_helpers import read_all

SEED = 11


@dataclass(frozen=True)
class Outcome:
    alerts: dict[str, dict[str, object]]
    """alert id -> its content without raised_at."""
    holds: dict[str, str]
    """hold id -> final state."""
    cases: dict[str, frozenset[str]]
    """case id -> its alerts' ids."""


def content(raw: bytes) -> tuple[str, dict[str, object]]:
    doc = orjson.loads(raw)
    doc.pop("raised_at", None)
    return str(doc["alert_id"]), doc


async def held_and_cases(
    redis_url: str, alerts: list[Alert] | None
) -> tuple[dict[str, str], dict[str, frozenset[str]]]:
    """Holds and cases in a Redis; with ``alerts``, fold them into cases first (the offline reference)."""
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        thresholds = load_thresholds(None)
        cases = CaseService(client, AuditLog(client, AUDIT_KEYS), holds=thresholds.holds)
        if alerts is not None:
            await cases.fold_alerts(alerts)
        ledger = HoldLedger.configured(client, thresholds.holds)
        holds = {
            h.hold_id: h.state for state in get_args(HoldState) for h in await ledger.in_state(state, limit=1_000_000)
        }
        found = {
            c.case_id: frozenset(a.alert_id for a in await cases.alerts(c.case_id))
            for c in await cases.find(limit=1_000_000)
        }
        return holds, found
    finally:
        await client.aclose()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("world")
    path = folder / "city.jsonl.gz"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "antifraud",
            "simulate",
            "--seed",
            str(SEED),
            "--people",
            "800",
            "--days",
            "1",
            "-o",
            str(path),
            "-q",
        ],
        check=True,
        capture_output=True,
    )
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
        return await held_and_cases(url, [Alert.model_validate_json(raw) for raw in found])

    with EmbeddedStack(kafka=False, workdir=tmp_path_factory.mktemp("offline")) as endpoints:
        holds, cases = asyncio.run(run(endpoints.redis_url))
    outcome = Outcome(dict(content(raw) for raw in found), holds, cases)
    assert outcome.alerts and outcome.holds and outcome.cases, "the world must give alerts, holds and cases"
    assert len(outcome.alerts) == len(found), "offline, every alert is produced once"
    return outcome


def events_in(world: Path) -> int:
    return sum(1 for _ in read_lines(world))


def done_at(world: Path) -> float:
    """The event time past which every timer of the world has run: its last event's plus the delay."""
    last = max(datetime.fromisoformat(orjson.loads(raw)["event_time"]).timestamp() for _, raw in read_lines(world))
    return last + load_thresholds(None).stream.cross_entity_delay_seconds


async def progress(redis_url: str) -> tuple[int, float]:
    """Records processed over every partition, and the least watermark."""
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        offsets = await client.hvals("stream:offsets")
        marks = await client.hvals("stream:watermarks")
        return sum(int(o) for o in offsets), min((float(m) for m in marks), default=float("-inf"))
    finally:
        await client.aclose()


def processed(stack: Endpoints) -> int:
    return asyncio.run(progress(stack.redis_url))[0]


def settled(stack: Endpoints, records: int, until: float, expected: Outcome) -> Outcome:
    """Once ``records`` are processed and time has passed ``until``: what the stack holds (cases are waited
    for: the alerts agent folds them behind the input loop)."""
    wait_for(
        lambda: (lambda p: p[0] >= records and p[1] > until)(asyncio.run(progress(stack.redis_url))),
        timeout=400,
        what="every record processed and the final timers run",
    )
    alerts = dict(content(r.value) for r in read_all(stack.kafka_bootstrap, ALERTS, settle=3))
    holds, cases = asyncio.run(held_and_cases(stack.redis_url, None))
    deadline = time.monotonic() + 60
    while cases != expected.cases and time.monotonic() < deadline:
        time.sleep(1)
        holds, cases = asyncio.run(held_and_cases(stack.redis_url, None))
    return Outcome(alerts, holds, cases)


def assert_same(got: Outcome, expected: Outcome) -> None:
    assert got.alerts.keys() == expected.alerts.keys(), (
        f"only in the worker: {sorted(got.alerts.keys() - expected.alerts.keys())[:5]}; "
        f"only offline: {sorted(expected.alerts.keys() - got.alerts.keys())[:5]}"
    )
    assert got.alerts == expected.alerts
    assert got.holds == expected.holds
    assert got.cases == expected.cases
