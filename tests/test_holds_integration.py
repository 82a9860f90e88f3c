"""Holds over the real broker and Redis with the worker SIGKILLed while it processes: every hold is
released exactly once, and only when due.

The crashes that matter fall between a batch's side effects (``streams/checkpoint.py``): the ledger's
clock raised past due times (the hold stage's ledger read, before the batch runs) and the checkpoint's
transaction (ledger, timers, audit inbox, offsets) not yet run; or the transaction ran and the audit
seal (``AuditLog.seal``, a worker timer) has just chained the releases (it takes them off the inbox in the
same script). Kills land there deterministically: a watcher process pauses Redis writes (``CLIENT PAUSE
WRITE``; reads go on) the moment a key is written, the watermark or the audit head; the test sees that
state, kills the worker, lifts the pause; the paused batch may meanwhile have produced its releases, its
checkpoint blocked (``tests/test_holds_ledger.py`` also runs such a batch again through the engine).
Kills also land at random points of a stream of many small batches that crosses due times, with one
worker and with two sharing the partitions (the survivor takes the dead one's partitions over).

Then, from every side: the ledger (each hold ``released``, the release counted once, the due index
empty), the audit trail once the inbox is sealed (each hold audited as created once and released
once, the chain intact), the topic (the releases, de-duplicated by transition id, are the created
holds, each at its due time, a replayed record equal to the first; none out before the ledger's clock
reached its due time).
"""

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import count, islice
from pathlib import Path

import orjson
import pytest
import redis
from redis.asyncio import Redis

from antifraud.audit.service import HEAD, INBOX, AuditLog
from antifraud.events.models import BankTransfer
from antifraud.holds.models import HOLD_RECORD, HoldEvent, IllegalTransition
from antifraud.holds.service import COUNTS, DUE, WATERMARK, HoldLedger, hold_key, index_key
from antifraud.stack.embedded import Endpoints
from antifraud.stack.worker import WorkerProcess, metric_sum
from antifraud.thresholds import load_thresholds
from streams import topics
from tests.conftest import AUDIT_KEYS, wait_consumed, wait_for
from tests.kafka_helpers import read_all
from tests.test_holds import DAY, T0, atm_transfer, hold_id_for
from tests.test_pipeline_integration import produce

ROOT = Path(__file__).resolve().parents[1]
LIMITS = load_thresholds().holds
FAR = T0 + 30 * DAY
"""A transfer at this time makes every hold of these tests due."""


def transfers(prefix: str, start: datetime, n: int, step: timedelta) -> list[BankTransfer]:
    """Held ATM transfers ``step`` apart, each from a payer and to a payee of its own (both partitions
    used; no detector sees a pattern, so the holds topic carries moves only)."""
    tag = f"{sum(map(ord, prefix)) % 1000:03d}"
    return [
        atm_transfer(f"{prefix}-{i}", start + i * step, payer=f"6222{tag}{i:06d}").model_copy(
            update={"payee_account": f"6217{tag}{i:06d}"}
        )
        for i in range(n)
    ]


def closing(prefix: str) -> BankTransfer:
    """A transfer to the payer's own name (not held), late enough that every hold falls due."""
    return atm_transfer(f"{prefix}-close", FAR, payee_name="张三")


def hold_events(endpoints: Endpoints) -> list[HoldEvent]:
    """The hold moves on the holds topic (payee warnings left out)."""
    records = [HOLD_RECORD.validate_json(r.value) for r in read_all(endpoints.kafka_bootstrap, topics.HOLDS)]
    return [r for r in records if isinstance(r, HoldEvent)]


def releases(events: list[HoldEvent]) -> list[HoldEvent]:
    return [e for e in events if e.to_state == "released"]


@dataclass(frozen=True)
class Ledger:
    states: dict[str, str | None]
    counts: dict[str, int]
    due_index: int
    released_index: int
    watermark: float


def read_ledger(endpoints: Endpoints, hold_ids: set[str]) -> Ledger:
    """The ledger as Redis has it (reads only: allowed while writes are paused)."""
    with redis.Redis.from_url(endpoints.redis_url, decode_responses=True) as client:
        ids = sorted(hold_ids)
        pipe = client.pipeline(transaction=False)
        for hold_id in ids:
            pipe.hget(hold_key(hold_id), "state")
        return Ledger(
            states=dict(zip(ids, pipe.execute())),
            counts={k: int(v) for k, v in client.hgetall(COUNTS).items()},
            due_index=client.zcard(DUE),
            released_index=client.zcard(index_key("released")),
            watermark=float(client.get(WATERMARK) or 0),
        )


def audited(endpoints: Endpoints, hold_ids: set[str]) -> tuple[dict[str, list[str]], str | None]:
    """Each hold's audited actions, oldest first, and why the audit chain is broken (None: intact)."""

    async def read() -> tuple[dict[str, list[str]], str | None]:
        async with Redis.from_url(endpoints.redis_url) as client:
            log = AuditLog(client, AUDIT_KEYS)
            actions = {h: [r.action for r in await log.about(f"hold:{h}")] for h in sorted(hold_ids)}
            return actions, (await log.verify()).reason

    return asyncio.run(read())


def queued_for_audit(endpoints: Endpoints) -> list[tuple[str, str]]:
    """(subject, action) of the audit records the checkpoints queued that no seal has taken off yet."""
    with redis.Redis.from_url(endpoints.redis_url) as client:
        return [
            (doc["subject"], doc["action"])
            for doc in (orjson.loads(fields[b"entry"]) for _, fields in client.xrange(INBOX))
        ]


def wait_sealed(endpoints: Endpoints) -> None:
    """Wait until a worker's audit seal has chained everything the checkpoints queued."""
    wait_for(lambda: queued_for_audit(endpoints) == [], what="the audit inbox sealed")


def pause_writes_on_change(url: str, key: str, at_least: str = "") -> None:
    """(Run in a child process.) Pause every client's writes the moment ``key`` is written (with
    ``at_least``, once it is written to a number at least that), then exit."""
    client = redis.Redis.from_url(url)
    client.config_set("notify-keyspace-events", "K$")
    db = client.connection_pool.connection_kwargs.get("db", 0)
    with client.pubsub(ignore_subscribe_messages=True) as changes:
        changes.subscribe(f"__keyspace@{db}__:{key}")
        print("ready", flush=True)
        for _ in changes.listen():
            if at_least and float(client.get(key) or "-inf") < float(at_least):
                continue
            client.client_pause(30_000, all=False)
            return


@contextmanager
def writes_paused_when_written(
    endpoints: Endpoints, key: str, at_least: float | None = None
) -> Iterator[Callable[[], bool]]:
    """Arm a watcher that pauses Redis writes as soon as ``key`` is next written (to at least ``at_least``);
    yields "has it paused?". On exit the pause is lifted. The watcher is a process of its own, so nothing
    here delays it."""
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from tests.test_holds_integration import pause_writes_on_change as p; p(*sys.argv[1:])",
            endpoints.redis_url,
            key,
            "" if at_least is None else repr(at_least),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None and watcher.stdout.readline() == "ready\n", "the watcher did not start"
        yield lambda: watcher.poll() == 0
    finally:
        watcher.kill()
        watcher.wait()
        with redis.Redis.from_url(endpoints.redis_url) as client:
            client.client_unpause()


def sigkill(worker: WorkerProcess) -> None:
    assert worker.proc is not None
    os.kill(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait()


def unflushed(endpoints: Endpoints) -> set[str]:
    """Holds released on the topic that the ledger still has as ``held``."""
    on_topic = {e.hold_id for e in releases(hold_events(endpoints))}
    states = read_ledger(endpoints, on_topic).states
    return {h for h in on_topic if states[h] == "held"}


def assert_released_only_when_due(endpoints: Endpoints, hold_ids: set[str]) -> list[HoldEvent]:
    """Every release on the topic is of a hold due by the ledger's clock; returns them."""
    watermark = read_ledger(endpoints, hold_ids).watermark
    released = releases(hold_events(endpoints))
    early = [(e.hold_id, e.hold.due_at) for e in released if e.hold.due_at.timestamp() > watermark]
    assert not early, f"released before due (the ledger's clock is at {watermark}): {early[:3]}"
    return released


def assert_released_exactly_once_when_due(endpoints: Endpoints, expected: set[str]) -> list[HoldEvent]:
    """Ledger, audit trail and topic agree: each of ``expected`` created once and released once, at its
    due time, and no other hold; returns the release records on the topic, duplicates included."""
    wait_for(lambda: read_ledger(endpoints, expected).counts.get("held") == 0, what="no hold left held")
    wait_sealed(endpoints)
    ledger = read_ledger(endpoints, expected)
    assert set(ledger.states.values()) == {"released"}, ledger.states
    assert (ledger.counts.get("released"), ledger.due_index, ledger.released_index) == (
        len(expected),
        0,
        len(expected),
    ), ledger

    actions, broken = audited(endpoints, expected)
    assert broken is None, f"audit chain broken: {broken}"
    wrong = {h: a for h, a in actions.items() if a != ["hold.held", "hold.released"]}
    assert not wrong, f"{len(wrong)} holds not audited as created once, then released once: {list(wrong.items())[:3]}"

    events = hold_events(endpoints)
    assert {e.hold_id for e in events if e.to_state == "held"} == expected
    released = assert_released_only_when_due(endpoints, expected)
    first_of: dict[str, HoldEvent] = {}
    for event in released:
        assert event.at >= event.hold.due_at, f"released before due: {event}"
        assert (event.from_state, event.actor, event.at) == ("held", "system", event.hold.due_at), (
            f"not the ledger's release at the due time: {event}"
        )
        first = first_of.setdefault(event.transition_id, event)
        assert event == first, f"a replayed release differs from the first: {first} vs {event}"
    assert sorted(e.hold_id for e in first_of.values()) == sorted(expected)
    return released


def audited_still_queued(endpoints: Endpoints, hold_ids: set[str]) -> set[str]:
    """Holds whose release the audit trail has chained and the inbox still holds (never, a seal takes them off as it chains them)."""
    actions, _ = audited(endpoints, hold_ids)
    queued = {subject for subject, action in queued_for_audit(endpoints) if action == "hold.released"}
    return {h for h in hold_ids if "hold.released" in actions[h] and f"hold:{h}" in queued}


PER_DAY = 200
"""Transfers a day: batches big enough that a seal of day three's first batch carries releases."""


def test_kills_after_the_ledgers_clock_is_raised_and_after_the_audit_seal_release_each_hold_once(
    stack: Endpoints, start_worker: Callable[..., WorkerProcess]
) -> None:
    """Each day's transfers make the day before's holds due, one by one. A batch of day two is killed once
    it has raised the ledger's clock past due times (writes paused when the watermark moves there): its
    releases neither written nor queued for the audit, and a sender's revoke of a hold due by then refused,
    since its release may be on its way. Day three's worker is killed just after its first seal (writes
    paused when the audit head moves): what it chained has left the inbox with it. The replays release
    each hold once, and the seals chain each once."""
    days = [transfers(f"day{n}", T0 + n * DAY, PER_DAY, DAY / PER_DAY) for n in range(3)]
    ids = [{hold_id_for(t.event_id) for t in day} for day in days]
    expected = set().union(*ids)

    worker = start_worker()
    produce(stack, days[0])
    wait_consumed(worker, len(days[0]))
    wait_for(lambda: None not in read_ledger(stack, ids[0]).states.values(), what="day one's holds")
    assert set(read_ledger(stack, ids[0]).states.values()) == {"held"}, "released before due"
    assert releases(hold_events(stack)) == [], "released before due"
    wait_sealed(stack)

    # A batch of day two whose ledger read raises the clock past a few of day one's due times (an earlier
    # one may raise it to just the first due time, releasing nothing).
    past_a_few_due = (T0 + DAY + 3 * DAY / PER_DAY).timestamp()
    with writes_paused_when_written(stack, WATERMARK, at_least=past_a_few_due) as paused:
        produce(stack, days[1])
        wait_for(paused, timeout=30, what="writes paused")
        sigkill(worker)
    clock = read_ledger(stack, ids[0]).watermark
    due_by_clock = {hold_id_for(t.event_id) for t in days[0] if (t.event_time + DAY).timestamp() <= clock}
    states = read_ledger(stack, due_by_clock).states
    still_held = {h for h, state in states.items() if state == "held"}
    assert clock >= past_a_few_due and still_held, f"the killed batch's holds are due by {clock} and held: {states}"
    assert unflushed(stack) <= due_by_clock, (
        "the killed batch may have produced its releases before its checkpoint (they come again, with the same "
        "ids, when it is run again), but only of holds due by the clock it raised first"
    )

    async def revoke(hold_id: str) -> None:
        async with Redis.from_url(stack.redis_url) as client:
            await HoldLedger.configured(client, LIMITS).move(
                AuditLog(client, AUDIT_KEYS),
                hold_id,
                "revoked",
                actor="sender",
                by="teller:li@B001",
                reason="too late",
                at=FAR,
            )

    with pytest.raises(IllegalTransition, match="may be releasing it"):
        asyncio.run(revoke(min(still_held)))
    assert_released_only_when_due(stack, expected)

    worker = start_worker()
    replayed_state = {**dict.fromkeys(ids[0], "released"), **dict.fromkeys(ids[1], "held")}
    wait_for(lambda: read_ledger(stack, ids[0] | ids[1]).states == replayed_state, what="day two replayed")
    wait_sealed(stack)
    worker.stop()  # gracefully: day three then comes at once, its first batch releasing some of day two's holds
    produce(stack, days[2])
    with writes_paused_when_written(stack, HEAD) as paused:  # day three's first seal
        worker = start_worker()
        wait_for(paused, timeout=30, what="writes paused")
        sigkill(worker)
    assert audited_still_queued(stack, ids[1]) == set(), "a seal chains and takes off the inbox in one script"
    assert_released_only_when_due(stack, expected)

    worker = start_worker()
    produce(stack, [closing("days")])
    wait_consumed(worker, 1)
    assert_released_exactly_once_when_due(stack, expected)  # the seals chained each release once


def random_marks(holds: int, kills: int) -> list[int]:
    """``kills`` random points between a tenth and nine tenths of ``holds``, ascending (the seed printed)."""
    seed = int.from_bytes(os.urandom(4), "big")
    print(f"random kill points: seed {seed}")
    return sorted(random.Random(seed).sample(range(holds // 10, holds * 9 // 10), kills))


def kill_when(endpoints: Endpoints, worker: WorkerProcess, holds: int) -> None:
    """SIGKILL ``worker`` as soon as it has consumed transfers and the ledger has ``holds`` holds: it is then
    partway through the stream, somewhere in its next batch."""
    wait_for(
        lambda: (
            metric_sum(worker.scrape(), "antifraud_events_consumed_total", topic=topics.INPUT_TOPICS["bank_transfer"])
            > 0
            and sum(read_ledger(endpoints, set()).counts.values()) >= holds
        ),
        timeout=60,
        what=f"the worker consuming, {holds} holds in the ledger",
    )
    sigkill(worker)
    print(f"killed at {holds} holds: {len(unflushed(endpoints))} released on the topic, not in the ledger")


STREAM = transfers("mid", T0, 600, DAY / 150)
"""Crosses due times: each transfer makes the hold of the transfer 150 before it due."""
SMALL_BATCHES = "10"


def assert_the_stream_end_releases_due_holds_and_then_all(stack: Endpoints) -> None:
    """By the stream's last event time, the holds due by then are released and the others held; a transfer
    past every due time releases the rest, each exactly once."""
    last = STREAM[-1].event_time
    expected = {hold_id_for(t.event_id) for t in STREAM}
    due = {hold_id_for(t.event_id) for t in STREAM if t.event_time + DAY <= last}
    assert len(due) == len(STREAM) - 150

    def created_and_due_released() -> bool:
        states = read_ledger(stack, expected).states
        return None not in states.values() and {h for h in due if states[h] == "released"} == due

    wait_for(created_and_due_released, what="every hold created, those due by the stream's end released")
    ledger = read_ledger(stack, expected)
    early = {h for h, s in ledger.states.items() if s == "released"} - due
    assert not early, f"released before due: {sorted(early)[:3]}"
    assert (ledger.counts.get("held"), ledger.counts.get("released")) == (len(expected) - len(due), len(due)), (
        f"the ledger's counts are off: {ledger.counts}"
    )
    assert {e.hold_id for e in assert_released_only_when_due(stack, expected)} == due
    produce(stack, [closing("mid")])
    wait_for(lambda: read_ledger(stack, expected).watermark == FAR.timestamp(), what="the closing transfer")
    assert_released_exactly_once_when_due(stack, expected)


def test_sigkills_at_random_points_of_a_stream_release_every_hold_once_when_due(
    stack: Endpoints, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker(ANTIFRAUD_BATCH_SIZE=SMALL_BATCHES)
    produce(stack, STREAM)
    for mark in random_marks(len(STREAM), 3):
        kill_when(stack, worker, mark)
        worker = start_worker(ANTIFRAUD_BATCH_SIZE=SMALL_BATCHES)
    assert_the_stream_end_releases_due_holds_and_then_all(stack)


def test_two_workers_sharing_the_partitions_one_killed_at_a_time_release_every_hold_once(
    stack: Endpoints, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    def start(name: str) -> WorkerProcess:
        return start_worker(ANTIFRAUD_BATCH_SIZE=SMALL_BATCHES, ANTIFRAUD_DATA_DIR=str(tmp_path / name))

    a, b = start("a"), start("b")
    warm_up = (atm_transfer(f"warm-{i}", T0, payee_name="张三", payer=f"62229{i:011d}") for i in count())

    def both_consume() -> bool:
        """Unheld transfers until each worker has consumed some: a rebalance gave each a partition."""
        if all(metric_sum(w.scrape(), "antifraud_events_consumed_total") > 0 for w in (a, b)):
            return True
        produce(stack, list(islice(warm_up, 10)))
        time.sleep(1)
        return False

    wait_for(both_consume, what="both workers consuming (the partitions shared)")
    produce(stack, STREAM)
    first, second = random_marks(len(STREAM), 2)
    kill_when(stack, a, first)  # b takes a's partition over, then shares again with a's successor
    a = start("a2")
    kill_when(stack, b, second)
    assert_the_stream_end_releases_due_holds_and_then_all(stack)
