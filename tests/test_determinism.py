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

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from antifraud.stack.embedded import Endpoints
from antifraud.stack.worker import WorkerProcess
from tests.conftest import wait_for
from tests.outcomes import (  # noqa: F401 - world and reference are fixtures
    SEED,
    Outcome,
    assert_same,
    done_at,
    events_in,
    processed,
    reference,
    settled,
    world,
)
from tests.redis_helpers import unnamed_keys

pytestmark = pytest.mark.integration

KILLS = 4


def _outcome(stack: Endpoints, world: Path, expected: Outcome) -> Outcome:
    return settled(stack, events_in(world), done_at(world), expected)


def _processed(stack: Endpoints, count: int) -> None:
    wait_for(lambda: processed(stack) >= count, timeout=300, what=f"{count} records processed")


def _replay(stack: Endpoints, world: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "antifraud", "replay", str(world), "--bootstrap", stack.kafka_bootstrap],
        check=True,
        capture_output=True,
    )


def _kill(worker: WorkerProcess) -> None:
    assert worker.proc is not None
    os.killpg(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait()


Start = Callable[..., WorkerProcess]


@pytest.fixture
def replayed(stack: Endpoints, world: Path) -> Iterator[Endpoints]:
    _replay(stack, world)
    yield stack


@pytest.mark.parametrize("run", ["first", "again"])
def test_one_worker_concludes_what_detect_does(
    replayed: Endpoints, start_worker: Start, world: Path, reference: Outcome, run: str
) -> None:
    start_worker()
    assert_same(_outcome(replayed, world, reference), reference)
    assert unnamed_keys(replayed.redis_url) == [], "every key the worker wrote is a family of state/keys.py"


def test_a_worker_killed_four_times_concludes_the_same(
    replayed: Endpoints, start_worker: Start, world: Path, reference: Outcome
) -> None:
    rng, total = random.Random(SEED), events_in(world)
    worker = start_worker()
    for kill in range(1, KILLS + 1):  # spread over the work: after a share of the records, at a random moment
        _processed(replayed, kill * total // (KILLS + 2))
        time.sleep(rng.uniform(0.0, 0.5))
        _kill(worker)
        worker.start()
    assert_same(_outcome(replayed, world, reference), reference)


def test_two_workers_one_killed_conclude_the_same(
    replayed: Endpoints, start_worker: Start, world: Path, reference: Outcome
) -> None:
    rng = random.Random(SEED + 1)
    first, second = start_worker(), start_worker()
    _processed(replayed, events_in(world) // 3)
    time.sleep(rng.uniform(0.0, 0.5))
    _kill(rng.choice([first, second]))
    assert_same(_outcome(replayed, world, reference), reference)
