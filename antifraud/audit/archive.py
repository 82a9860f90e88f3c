"""Retention: move the oldest audit records out of Redis into segment files, the chain still provable.

An archive run (``antifraud audit archive --before DATE --to DIR``), in this order:

0. Take the archive lock (``audit:archive:lock``, renewed while the run works): a second run is
   refused, not queued. If the last run stopped while trimming (``audit:archives`` names a segment
   that reaches past the base), finish that one first: 2 and 3 on its file.
1. Read the live log from its base in chunks, walking the chain, and write each record older than
   DATE to a new segment in DIR (:mod:`antifraud.audit.segments`), stopping at the first that is
   not: a prefix of the chain, never a hole. Records are not in time order (the worker stamps hold
   moves with their event time), so an old record behind a newer one stays live. Then the trailer
   with the anchor, fsync, rename to the final name, fsync DIR.
2. Read the file back: every record chains from the base, the trailer's anchor is the last hash.
3. Per chunk, one MULTI under WATCH of the base and the lock, after checking that Redis still holds
   exactly the segment's records: set ``audit:base`` past the chunk, trim the chunk from
   ``audit:log``, drop its seqs from the subject lists and its event ids from ``audit:ids``; the first
   chunk also appends the segment to ``audit:archives``. Setting the base and trimming the list are
   one transaction, so no reader ever sees one without the other.

A crash (or a lost lock) anywhere leaves a state ``antifraud audit verify`` accepts, with or without
``--archive DIR``, and the next run completes the work:

- during 1: a hidden ``.partial`` file, which nothing reads and the next run deletes;
- after 1 or during 2: a complete segment whose records are all still live; verify skips it (it
  starts at the base) and the next run into DIR deletes and writes it again;
- during 3, between chunks: the base sits inside the segment; verify reads the segment up to the
  base and Redis from there, and the next run finishes the trim (it must be given the same DIR).

What archived records leave in Redis: only the base and their segment's entry in ``audit:archives``,
so memory stays bounded by the live records.

- Their event ids leave ``audit:ids``. The ids keep an action replayed after a crash from being
  appended twice; such replays come back within minutes, not from before a cut-off an operator
  chooses, and every caller also refuses a replay by its own state (a case's folded alerts, a
  hold's state, a listing's version).
- Their seqs leave the ``audit:subject:*`` lists (a subject with no live record loses its key), so
  :meth:`AuditLog.about` and the case timelines built on it give the live records only. ``antifraud
  audit show`` says when older records are archived and where; ``--archive DIR`` reads them too.
"""

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import LockError, RedisError, WatchError

from antifraud.audit.models import AuditKeys, Chain
from antifraud.audit.segments import (
    Segment,
    SegmentError,
    SegmentWriter,
    check_segment,
    list_segments,
    prev_hash_of,
    read_segment,
    remove_partials,
)
from antifraud.audit.service import ARCHIVES, BASE, IDS, LOG, SUBJECT, parse_base
from antifraud.state import keys as families

LOCK = families.AUDIT_ARCHIVE_LOCK.key()


class ArchiveRefused(Exception):
    """The run stopped without trimming anything it had not archived; the message says why."""


@dataclass(frozen=True)
class ArchiveResult:
    written: Segment | None
    """The segment this run wrote and trimmed (None: no live record was older than the cut-off)."""
    finished: Segment | None
    """An earlier run's segment whose trim this run finished."""
    base: int
    """The first live seq now."""
    removed: list[Path]
    """Leftovers of crashed runs deleted from DIR (half-written or never trimmed)."""


@asynccontextmanager
async def _locked(redis: Redis, lock_s: float) -> AsyncIterator[bytes]:
    """Hold the archive lock for the block, renewed every third of its time; yields its token.

    A lock lost anyway (Redis out of reach longer than ``lock_s``) is caught where it matters:
    each trim transaction WATCHes the lock and checks the token."""
    lock = redis.lock(LOCK, timeout=lock_s, blocking=False, thread_local=False)
    if not await lock.acquire():
        raise ArchiveRefused(
            f"another archive run is under way (it holds {LOCK}; the lock of a run that "
            f"died lapses within {lock_s:.0f} s)"
        )

    async def renew() -> None:
        while True:
            await asyncio.sleep(lock_s / 3)
            try:
                await lock.reacquire()
            except LockError:
                return
            except RedisError:
                continue

    renewer = asyncio.create_task(renew())
    try:
        yield bytes(lock.local.token)
    finally:
        renewer.cancel()
        with suppress(asyncio.CancelledError):
            await renewer
        with suppress(RedisError):  # lost or out of reach: it lapses by itself
            await lock.release()


async def archive(
    redis: Redis, keys: AuditKeys, before: datetime, directory: Path, *, chunk: int = 5000, lock_s: float = 60.0
) -> ArchiveResult:
    """Archive the live records older than ``before`` into a segment in ``directory`` and trim them from
    Redis; the steps and what a crash between them leaves are in the module docstring. ``keys`` check
    the chain it moves."""
    if before.tzinfo is None:
        raise ValueError("the cut-off needs a timezone")
    if not directory.is_dir():
        raise ValueError(f"{directory} is not a directory")
    async with _locked(redis, lock_s) as token:
        try:
            return await _archive(redis, keys, before, directory.resolve(), chunk, token)
        except SegmentError as error:
            raise ArchiveRefused(str(error)) from None


async def _archive(
    redis: Redis, keys: AuditKeys, before: datetime, directory: Path, chunk: int, token: bytes
) -> ArchiveResult:
    """Steps 0 to 3, the lock held."""
    finished = await _finish_unfinished(redis, keys, directory, chunk, token)
    last = [orjson.loads(raw) for raw in await redis.lrange(ARCHIVES, -1, -1)]
    if last and Path(last[0]["file"]).parent != directory:
        raise ArchiveRefused(
            f"the earlier segments are in {Path(last[0]['file']).parent}: archive into that "
            "directory, so that one verify --archive reads the whole chain"
        )
    base = parse_base(await redis.get(BASE))
    removed = remove_partials(directory)
    for orphan in (s for s in list_segments(directory) if s.first >= base[0]):
        orphan.path.unlink()
        removed.append(orphan.path)
    written = await _write(redis, keys, before, directory, base, chunk)
    if written is not None:
        reason = await asyncio.to_thread(_read_back, written, keys, base)
        if reason is not None:
            written.path.unlink()
            raise ArchiveRefused(f"segment {written.path} did not read back ({reason}): deleted, nothing trimmed")
        await _trim(redis, written, base, chunk, token)
    return ArchiveResult(written, finished, parse_base(await redis.get(BASE))[0], removed)


async def _finish_unfinished(
    redis: Redis, keys: AuditKeys, directory: Path, chunk: int, token: bytes
) -> Segment | None:
    """Step 0: the last run's segment, if it reaches past the base, re-checked and trimmed to its end."""
    base = parse_base(await redis.get(BASE))
    last = [orjson.loads(raw) for raw in await redis.lrange(ARCHIVES, -1, -1)]
    if not last or last[0]["last"] < base[0]:
        return None
    segment = Segment(Path(last[0]["file"]), last[0]["first"], last[0]["last"])
    if segment.path.parent != directory:
        raise ArchiveRefused(
            f"an earlier run into {segment.path.parent} stopped before trimming records "
            f"{base[0]}..{segment.last}: run again with --to {segment.path.parent} to finish it"
        )
    chain = Chain(keys, segment.first, prev_hash_of(segment))
    reason, at_base = await asyncio.to_thread(check_segment, segment, chain, until=base[0])
    if reason is not None or at_base != base[1]:
        raise ArchiveRefused(
            f"segment {segment.path} of an unfinished run does not check "
            f"({reason or 'it does not lead to the base'}): nothing trimmed"
        )
    await _trim(redis, segment, base, chunk, token)
    return segment


async def _write(
    redis: Redis, keys: AuditKeys, before: datetime, directory: Path, base: tuple[int, str], chunk: int
) -> Segment | None:
    """Step 1: the records older than ``before`` from the base on, into a new segment (None: there are none)."""
    chain = Chain(keys, *base)
    writer: SegmentWriter | None = None
    try:
        position = 0
        while raws := cast(list[bytes], await redis.lrange(LOG, position, position + chunk - 1)):  # replies are bytes
            for raw in raws:
                reason = chain.step(raw)
                if reason is not None:
                    raise ArchiveRefused(
                        f"the live log is broken at record {chain.seq} ({reason}): nothing "
                        "archived; see antifraud audit verify"
                    )
                if datetime.fromisoformat(orjson.loads(raw)["at"]) >= before:
                    return writer.finish() if writer is not None else None
                writer = writer or SegmentWriter(directory, base[0], base[1], before)
                writer.add(raw)
            position += len(raws)
        return writer.finish() if writer is not None else None
    except BaseException:
        if writer is not None:
            writer.discard()
        raise


def _read_back(segment: Segment, keys: AuditKeys, base: tuple[int, str]) -> str | None:
    """Step 2: why the written segment does not chain from the base to its trailer's anchor, or None."""
    chain = Chain(keys, *base)
    reason, _ = check_segment(segment, chain)
    if reason is None and chain.seq != segment.last + 1:
        return f"it ends at record {chain.seq - 1}"
    return reason


def _chunks(segment: Segment, start: int, size: int) -> Iterator[list[bytes]]:
    """The segment's records from seq ``start`` on, ``size`` at a time."""
    batch: list[bytes] = []
    for seq, raw in enumerate(read_segment(segment), segment.first):
        if seq < start:
            continue
        batch.append(raw)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _trim(redis: Redis, segment: Segment, base: tuple[int, str], chunk: int, token: bytes) -> None:
    """Step 3: trim the segment's records from Redis, a chunk per transaction, from ``base`` on."""
    entry = orjson.dumps({"first": segment.first, "last": segment.last, "file": str(segment.path)})
    for raws in _chunks(segment, base[0], chunk):
        base = await _trim_chunk(redis, raws, base, entry if base[0] == segment.first else None, token)


async def _trim_chunk(
    redis: Redis, raws: list[bytes], base: tuple[int, str], entry: bytes | None, token: bytes
) -> tuple[int, str]:
    """One chunk: the new base, set with the trim in one MULTI (see the module docstring, step 3)."""
    docs = [orjson.loads(raw) for raw in raws]
    new_base = (docs[-1]["seq"] + 1, docs[-1]["hash"])
    async with redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(BASE, LOCK)
                if await pipe.get(LOCK) != token:
                    raise ArchiveRefused("the archive lock expired before the trim: run again")
                if parse_base(await pipe.get(BASE)) != base:
                    raise ArchiveRefused("the base moved under this run: nothing more trimmed")
                if await pipe.lrange(LOG, 0, len(raws) - 1) != raws:
                    raise ArchiveRefused(
                        f"Redis's records {base[0]}..{new_base[0] - 1} are not the segment's: "
                        "not trimmed; see antifraud audit verify"
                    )
                pipe.multi()
                pipe.set(BASE, f"{new_base[0]} {new_base[1]}")
                pipe.ltrim(LOG, len(raws), -1)
                for doc in docs:
                    pipe.lrem(SUBJECT + doc["subject"], 1, doc["seq"])
                ids = [doc["event_id"] for doc in docs if doc["event_id"] is not None]
                if ids:
                    pipe.hdel(IDS, *ids)
                if entry is not None:
                    pipe.rpush(ARCHIVES, entry)
                await pipe.execute()
                return new_base
            except WatchError:
                continue
