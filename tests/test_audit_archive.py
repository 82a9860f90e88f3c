"""Archiving the audit log against a real redis-server: a prefix goes to segment files, Redis keeps a base,
verify proves archive + live as one chain, crashes at any step leave a log verify accepts, a re-run finishes."""

import asyncio
import gzip
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from antifraud.audit.archive import LOCK, ArchiveRefused, archive
from antifraud.audit.models import GENESIS, AuditEntry
from antifraud.audit.segments import SegmentWriter, list_segments, segment_name
from antifraud.audit.service import BASE, IDS, LOG, SUBJECT, AuditLog
from antifraud.stack.embedded import Endpoints
from antifraud.stack.worker import WorkerProcess
from tests.conftest import AUDIT_KEYS, wait_for
from tests.test_holds_integration import writes_paused_when_written

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
CUT = T0 + timedelta(days=100)
"""The cut-off of most tests: records at T0 + n days for n < 100 are older."""


@pytest.fixture
def archive_dir(tmp_path: Path) -> Path:
    """An empty directory for the segments (``tmp_path`` also holds the test's redis-server)."""
    folder = tmp_path / "archive"
    folder.mkdir()
    return folder


def run(coro):  # noqa: ANN001, ANN201 - tiny test helper
    return asyncio.run(coro)


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


async def seed(redis: Redis, days: list[int]) -> list[bytes]:
    """One record a day offset, on three cases in turn, each with an event id; the records as stored."""
    entries = [
        AuditEntry("ana", "note", f"case:{i % 3}", after={"n": i}, event_id=f"ev{i}", at=day(d))
        for i, d in enumerate(days)
    ]
    for start in range(0, len(entries), 2000):
        await AuditLog(redis, AUDIT_KEYS).append_many(entries[start : start + 2000])
    return list(await redis.lrange(LOG, 0, -1))


def segment_lines(path: Path) -> list[bytes]:
    with gzip.open(path, "rb") as lines:
        return [line.rstrip(b"\n") for line in lines]


def test_archive_moves_the_oldest_prefix_out_and_keeps_one_chain(redis_url: str, archive_dir: Path) -> None:
    """Records 0..9 are older than the cut-off, 10 is not, 11 is older again: only 0..9 go (never a hole)."""

    async def go() -> None:
        async with Redis.from_url(redis_url) as redis:
            log = AuditLog(redis, AUDIT_KEYS)
            stored = await seed(redis, [*range(10), 150, 20, 151, 152, 153])
            result = await archive(redis, AUDIT_KEYS, CUT, archive_dir)
            assert result.written is not None and (result.written.first, result.written.last) == (0, 9)
            assert result.written.path == archive_dir / segment_name(0, 9) and result.base == 10

            header, *records, trailer = segment_lines(result.written.path)
            assert records == stored[:10], "the records are archived byte for byte as stored"
            assert orjson.loads(header)["prev_hash"] == GENESIS
            assert orjson.loads(trailer)["anchor"] == orjson.loads(stored[9])["hash"] == (await log.base())[1]

            assert await redis.lrange(LOG, 0, -1) == stored[10:]
            assert sorted(await redis.hkeys(IDS)) == sorted(f"ev{i}".encode() for i in range(10, 15))
            assert await redis.lrange(SUBJECT + "case:1", 0, -1) == [b"10", b"13"]
            assert [r.seq for r in await log.about("case:1")] == [10, 13]
            assert [r.seq for r in await log.records()] == [10, 11, 12, 13, 14]
            assert await log.archives() == [{"first": 0, "last": 9, "file": str(result.written.path)}]

            live = await log.verify()
            assert live.ok and (live.checked, live.first) == (5, 10)
            whole = await log.verify(archive_dir)
            assert whole.ok and (whole.checked, whole.archived) == (15, 10)

            assert await log.append(AuditEntry("bo", "note", "case:1", event_id="ev-new"))
            [appended] = await log.records(-1, -1)
            assert appended.seq == 15 and appended.prev_hash == orjson.loads(stored[14])["hash"]
            live_id = AuditEntry("bo", "note", "case:1", event_id="ev12")
            assert not await log.append(live_id), "the live records' ids still dedupe"
            assert [r.seq for r in await log.about("case:1")] == [10, 13, 15]
            assert (await log.verify(archive_dir)).checked == 16

    run(go())


def test_runs_continue_the_chain_until_nothing_is_live(redis_url: str, archive_dir: Path) -> None:
    async def go() -> None:
        async with Redis.from_url(redis_url) as redis:
            log = AuditLog(redis, AUDIT_KEYS)
            await seed(redis, list(range(12)))
            nothing = await archive(redis, AUDIT_KEYS, day(0), archive_dir)
            assert nothing.written is None and nothing.base == 0 and list(archive_dir.iterdir()) == []
            assert await redis.get(BASE) is None and await redis.llen(LOG) == 12

            await archive(redis, AUDIT_KEYS, day(5), archive_dir, chunk=2)
            everything = await archive(redis, AUDIT_KEYS, CUT, archive_dir, chunk=4)
            assert [(s.first, s.last) for s in list_segments(archive_dir)] == [(0, 4), (5, 11)]
            assert everything.base == 12 and await redis.llen(LOG) == 0
            assert await redis.keys(SUBJECT + "*") == [] and await redis.hlen(IDS) == 0
            assert [r.seq for r in await log.about("case:0")] == []
            live = await log.verify()
            assert live.ok and (live.checked, live.first) == (0, 12)
            assert (await log.verify(archive_dir)).checked == 12

            assert await log.append(AuditEntry("bo", "note", "case:0"))
            assert [r.seq for r in await log.records(-1, -1)] == [12]
            assert (await log.verify(archive_dir)).checked == 13

    run(go())


def test_a_run_into_another_directory_is_refused(redis_url: str, archive_dir: Path, tmp_path: Path) -> None:
    """Segments in two directories could never be verified as one chain."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    async def go() -> None:
        async with Redis.from_url(redis_url) as redis:
            await seed(redis, list(range(6)))
            await archive(redis, AUDIT_KEYS, day(3), archive_dir)
            with pytest.raises(ArchiveRefused, match=f"the earlier segments are in {archive_dir}"):
                await archive(redis, AUDIT_KEYS, CUT, elsewhere)
            assert list(elsewhere.iterdir()) == [] and await redis.llen(LOG) == 3
            assert (await AuditLog(redis, AUDIT_KEYS).verify(archive_dir)).checked == 6

    run(go())


def _rewrite(path: Path, change) -> None:  # noqa: ANN001 - a function of the lines
    lines = segment_lines(path)
    with gzip.open(path, "wb") as out:
        out.write(b"".join(line + b"\n" for line in change(lines)))


def _changed_actor(lines: list[bytes]) -> list[bytes]:
    doc = orjson.loads(lines[2])
    doc["actor"] = "mallory"
    return [*lines[:2], orjson.dumps(doc), *lines[3:]]


TAMPERING = {
    # name: (what is done, the seq named, words of the reason)
    "record changed in a segment": (
        lambda d, r: _rewrite(d / segment_name(5, 8), _changed_actor),
        6,
        "segment audit-000000000005-000000000008.jsonl.gz: its hash does not match",
    ),
    "record removed from a segment": (
        lambda d, r: _rewrite(d / segment_name(0, 4), lambda ls: ls[:3] + ls[4:]),
        2,
        "carries seq 3 at position 2",
    ),
    "first segment missing": (lambda d, r: (d / segment_name(0, 4)).unlink(), 0, "records 0..4 are missing"),
    "last segment missing": (lambda d, r: (d / segment_name(5, 8)).unlink(), 5, "records 5..8 are neither in Redis"),
    "segment cut short": (
        lambda d, r: (d / segment_name(5, 8)).write_bytes((d / segment_name(5, 8)).read_bytes()[:60]),
        5,
        "segment audit-000000000005-000000000008.jsonl.gz: unreadable",
    ),
    "base rewritten": (lambda d, r: r.set(BASE, "9 " + "f" * 64), 9, "audit:base"),
}


@pytest.mark.parametrize("tampering", TAMPERING)
def test_verify_names_the_first_broken_record_across_segments(
    redis_url: str, archive_dir: Path, tampering: str
) -> None:
    tamper, seq, reason = TAMPERING[tampering]

    async def go() -> None:
        async with Redis.from_url(redis_url) as redis:
            await seed(redis, list(range(12)))
            await archive(redis, AUDIT_KEYS, day(5), archive_dir)
            await archive(redis, AUDIT_KEYS, day(9), archive_dir)
            assert (await AuditLog(redis, AUDIT_KEYS).verify(archive_dir)).ok
            done = tamper(archive_dir, redis)
            if asyncio.iscoroutine(done):
                await done
            verdict = await AuditLog(redis, AUDIT_KEYS).verify(archive_dir)
            assert verdict.broken_at == seq and reason in (verdict.reason or ""), verdict

    run(go())


def test_leftovers_of_crashed_runs_pass_verify_and_the_next_run_replaces_them(
    redis_url: str, archive_dir: Path
) -> None:
    """A crash while writing leaves a ``.partial`` file; after writing (or reading back), a complete segment
    whose records were never trimmed. Neither troubles verify; the next run deletes both and archives."""

    async def go() -> None:
        async with Redis.from_url(redis_url) as redis:
            log = AuditLog(redis, AUDIT_KEYS)
            stored = await seed(redis, list(range(12)))
            (archive_dir / ".audit-000000000000-0badc0de.partial").write_bytes(b"\x1f\x8b\x08half a gzip")
            writer = SegmentWriter(archive_dir, 0, GENESIS, day(5))  # a run with an earlier cut-off, never trimmed
            for raw in stored[:5]:
                writer.add(raw)
            orphan = writer.finish()
            assert (await log.verify()).ok
            assert (await log.verify(archive_dir)).checked == 12

            result = await archive(redis, AUDIT_KEYS, day(8), archive_dir)
            assert sorted(p.name for p in result.removed) == sorted(
                [".audit-000000000000-0badc0de.partial", orphan.path.name]
            )
            assert sorted(p.name for p in archive_dir.iterdir()) == [segment_name(0, 7)]
            assert (await log.verify(archive_dir)).checked == 12 and (await log.base())[0] == 8

    run(go())


def test_a_run_is_refused_while_another_holds_the_lock(redis_url: str, archive_dir: Path) -> None:
    async def go() -> None:
        async with Redis.from_url(redis_url) as redis:
            await seed(redis, list(range(4)))
            other = redis.lock(LOCK, timeout=30)
            assert await other.acquire()
            with pytest.raises(ArchiveRefused, match="another archive run"):
                await archive(redis, AUDIT_KEYS, CUT, archive_dir)
            assert list(archive_dir.iterdir()) == [] and await redis.llen(LOG) == 4 and await redis.get(BASE) is None
            await other.release()
            assert (await archive(redis, AUDIT_KEYS, CUT, archive_dir)).base == 4

    run(go())


def test_readers_see_whole_records_while_a_run_trims(redis_url: str, archive_dir: Path) -> None:
    """``about`` and ``verify`` race a run trimming two records per transaction: every answer is right."""

    async def go() -> None:
        async with Redis.from_url(redis_url) as redis, Redis.from_url(redis_url) as reader:
            await seed(redis, [i % 50 for i in range(300)])
            log, done = AuditLog(reader, AUDIT_KEYS), asyncio.Event()

            async def read() -> int:
                answers = 0
                while not done.is_set():
                    history = await log.about("case:1")
                    assert {r.subject for r in history} <= {"case:1"}
                    if history:  # the live suffix of case:1's seqs 1, 4, ... 298
                        assert [r.seq for r in history] == list(range(history[0].seq, 300, 3))
                    verdict = await log.verify()
                    assert verdict.ok and verdict.first + verdict.checked == 300, verdict
                    answers += 1
                return answers

            async def trim() -> None:
                await archive(redis, AUDIT_KEYS, CUT, archive_dir, chunk=2)
                done.set()

            answers, _ = await asyncio.gather(read(), trim())
            assert answers > 1 and await redis.llen(LOG) == 0

    run(go())


def _cli(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "antifraud", "audit", *args],
        env={**os.environ, "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["archive", "--before", "last tuesday", "--to", "."], "--before"),
        (["archive", "--before", "2999-01-01", "--to", "."], "--before"),
        (["archive", "--before", "2024-01-01T00:00:00", "--to", "."], "--before"),
        (["archive", "--before", "2024-01-01", "--to", "/no/such/dir"], "--to"),
        (["verify", "--archive", "/no/such/dir"], "--archive"),
    ],
)
def test_cli_bad_arguments_are_one_line_naming_the_argument(redis_url: str, args: list[str], named: str) -> None:
    done = _cli(redis_url, *args)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"antifraud audit {args[0]}: {named}:"), done.stderr


def test_cli_archive_verify_and_show(redis_url: str, archive_dir: Path) -> None:
    run(_seed_in_own_loop(redis_url, list(range(6)) + [150, 151]))
    archived = _cli(redis_url, "archive", "--before", CUT.date().isoformat(), "--to", str(archive_dir))
    assert archived.returncode == 0 and "archived records 0..5" in archived.stdout, archived.stderr
    again = _cli(redis_url, "archive", "--before", CUT.date().isoformat(), "--to", str(archive_dir))
    assert again.returncode == 0 and "nothing to archive" in again.stdout

    live = _cli(redis_url, "verify")
    assert live.returncode == 0 and "intact: 2 records from record 6" in live.stdout
    whole = _cli(redis_url, "verify", "--archive", str(archive_dir))
    assert whole.returncode == 0 and "intact: 8 records (6 archived" in whole.stdout

    shown = _cli(redis_url, "show", "--subject", "case:0")
    assert [line.split()[0] for line in shown.stdout.splitlines()] == ["6"]
    assert f"records before 6 are archived in {archive_dir.resolve()}" in shown.stderr
    assert "add --archive DIR" in shown.stderr
    with_archive = _cli(redis_url, "show", "--subject", "case:0", "--archive", str(archive_dir))
    assert [line.split()[0] for line in with_archive.stdout.splitlines()] == ["0", "3", "6"]
    assert with_archive.stderr == ""

    _rewrite(archive_dir / segment_name(0, 5), _changed_actor)
    broken = _cli(redis_url, "verify", "--archive", str(archive_dir))
    assert broken.returncode == 1 and "BROKEN at record 1" in broken.stderr and segment_name(0, 5) in broken.stderr


async def _seed_in_own_loop(redis_url: str, days: list[int]) -> None:
    async with Redis.from_url(redis_url) as redis:
        await seed(redis, days)


RECORDS = 12_000
"""Old enough records for three trim transactions of the CLI's 5,000."""


@pytest.mark.parametrize("paused_at", [LOCK, BASE])
def test_a_run_killed_before_or_during_the_trim_is_finished_by_the_next(
    redis_url: str, archive_dir: Path, paused_at: str
) -> None:
    """SIGKILL a real ``antifraud audit archive`` with Redis writes paused once it took the lock (its segment
    written, nothing trimmed) or once its first trim transaction landed (the base inside the segment).
    Verify accepts what is left, with and without the archive; the next run into the same DIR finishes."""
    run(_seed_in_own_loop(redis_url, [i // 200 for i in range(RECORDS)] + [150]))
    endpoints = Endpoints(kafka_bootstrap="", redis_url=redis_url)
    segment = archive_dir / segment_name(0, RECORDS - 1)
    with writes_paused_when_written(endpoints, paused_at) as paused:
        runner = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "antifraud",
                "audit",
                "archive",
                "--before",
                CUT.date().isoformat(),
                "--to",
                str(archive_dir),
            ],
            env={**os.environ, "REDIS_URL": redis_url},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        wait_for(paused, timeout=60, what="writes paused")
        wait_for(segment.exists, timeout=60, what="the segment written")
        runner.send_signal(signal.SIGKILL)
        runner.wait()

    async def after_the_crash() -> None:
        async with Redis.from_url(redis_url) as redis:
            log = AuditLog(redis, AUDIT_KEYS)
            base = (await log.base())[0]
            if paused_at == LOCK:
                assert base == 0 and await redis.llen(LOG) == RECORDS + 1
            else:
                assert 0 < base < RECORDS and base % 5000 == 0 and await redis.llen(LOG) == RECORDS + 1 - base
            assert (await log.verify()).ok
            whole = await log.verify(archive_dir)
            assert whole.ok and whole.checked == RECORDS + 1, whole
            with pytest.raises(ArchiveRefused, match="another archive run"):
                await archive(redis, AUDIT_KEYS, CUT, archive_dir)  # the dead run's lock has not lapsed yet
            await redis.delete(LOCK)  # as its lapsing would
            if paused_at == BASE:
                elsewhere = archive_dir / "elsewhere"
                elsewhere.mkdir()
                with pytest.raises(ArchiveRefused, match=f"run again with --to {archive_dir}"):
                    await archive(redis, AUDIT_KEYS, CUT, elsewhere)
                elsewhere.rmdir()
            result = await archive(redis, AUDIT_KEYS, CUT, archive_dir)
            assert result.base == RECORDS and await redis.llen(LOG) == 1
            assert (result.finished is not None) == (paused_at == BASE)
            assert sorted(p.name for p in archive_dir.iterdir()) == [segment.name]
            assert [a["last"] for a in await log.archives()] == [RECORDS - 1]
            whole = await log.verify(archive_dir)
            assert whole.ok and (whole.checked, whole.archived) == (RECORDS + 1, RECORDS)
            assert await redis.hlen(IDS) == 1 and len(await log.about("case:0")) == 1

    run(after_the_crash())


def test_the_worker_archives_records_past_the_retention_by_itself(
    stack: Endpoints, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    """With ANTIFRAUD_AUDIT_ARCHIVE_DIR, a worker moves the records older than ANTIFRAUD_AUDIT_RETAIN_DAYS into a
    segment there on its own, and the chain still verifies as one with the archive."""
    segments = tmp_path / "segments"
    segments.mkdir()
    old = datetime.now(timezone.utc) - timedelta(days=40)

    async def seed() -> None:
        async with Redis.from_url(stack.redis_url) as redis:
            log = AuditLog(redis, AUDIT_KEYS)
            await log.append_many([AuditEntry("ana", "note", "case:old", after={"n": n}, at=old) for n in range(5)])
            await log.append_many([AuditEntry("ana", "note", "case:new", after={"n": n}) for n in range(3)])

    async def state() -> tuple[int, bool, int]:
        async with Redis.from_url(stack.redis_url) as redis:
            log = AuditLog(redis, AUDIT_KEYS)
            verdict = await log.verify(segments)
            return (await log.base())[0], verdict.ok, verdict.checked

    run(seed())
    start_worker(
        ANTIFRAUD_AUDIT_ARCHIVE_DIR=str(segments), ANTIFRAUD_AUDIT_RETAIN_DAYS="30", ANTIFRAUD_AUDIT_ARCHIVE_SECONDS="1"
    )
    wait_for(lambda: run(state())[0] == 5, timeout=60, what="the worker archiving the five old records")
    assert run(state()) == (5, True, 8)
    assert [s.name for s in segments.iterdir()] == ["audit-000000000000-000000000004.jsonl.gz"]
