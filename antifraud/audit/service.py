"""The audit log in Redis: an append-only list chained by hashes.

Keys:
- ``audit:log``: list of the live records' JSON, oldest first. A record's ``seq`` is
  global and never changes: its list index is ``seq`` minus the base's seq.
- ``audit:base``: ``"{first live seq} {hash it links to}"``, written when older records
  are archived (:mod:`antifraud.audit.archive`); absent means ``0`` and the genesis hash.
- ``audit:head``: ``"{seq} {hash}"`` of the last record; a log shorter than its
  head says records were removed from the end.
- ``audit:ids``: hash ``event_id`` -> seq, so an action replayed after a crash
  is not appended twice (for live records only: archiving drops the ids).
- ``audit:subject:{subject}``: list of the live seqs about one subject (a hold, a
  case, a listing), for timelines.
- ``audit:archives``: list of the archive segments written (JSON: seq range, file).
- ``audit:inbox``: a stream of records the stream checkpoint queued with the state change they
  describe (automatic hold moves), in the same transaction; :meth:`AuditLog.relay_inbox` appends them
  to the chain (skipping event ids already recorded) and deletes them, so a relay that crashes, or
  two that run at once, append each once.

Appends are Redis transactions that WATCH the head: two writers never chain to
the same predecessor. :meth:`AuditLog.transact` puts the caller's own writes in
the same MULTI, so a state change and its record land together or not at all.
Readers that map seqs to list indexes WATCH the base, which an archive run moves.
"""

from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from antifraud.audit.models import GENESIS, AuditEntry, AuditRecord, Chain, Change, Verdict, chain_hash
from antifraud.audit.segments import check_archive
from antifraud.clock import utcnow

LOG = "audit:log"
BASE = "audit:base"
HEAD = "audit:head"
IDS = "audit:ids"
SUBJECT = "audit:subject:"
ARCHIVES = "audit:archives"
INBOX = "audit:inbox"

Decide = Callable[[Pipeline], Awaitable[Change]]
"""Reads current state through the watching pipeline, refuses by raising, returns the change."""


def _parse_anchor(raw: bytes | str | None, empty: int) -> tuple[int, str]:
    """``"{seq} {hash}"`` as a pair; (``empty``, GENESIS) when the key is unset."""
    if raw is None:
        return empty, GENESIS
    text = raw.decode() if isinstance(raw, bytes) else raw
    seq, digest = text.split(" ", 1)
    return int(seq), digest


def _parse_head(raw: bytes | str | None) -> tuple[int, str]:
    """(seq of the last record, its hash); (-1, GENESIS) for an empty log."""
    return _parse_anchor(raw, -1)


def parse_base(raw: bytes | str | None) -> tuple[int, str]:
    """(seq of the first live record, the hash it links to); (0, GENESIS) before any archive."""
    return _parse_anchor(raw, 0)


def _chain(entries: Sequence[AuditEntry], head: tuple[int, str], now: datetime) -> list[dict[str, Any]]:
    """The records as stored: plain JSON values, so the hash is computed over exactly what is written."""
    seq, prev = head
    docs = []
    for entry in entries:
        seq += 1
        doc: dict[str, Any] = {
            "seq": seq,
            "at": (entry.at or now).astimezone(timezone.utc).isoformat(),
            "actor": entry.actor,
            "action": entry.action,
            "subject": entry.subject,
            "before": dict(entry.before) if entry.before is not None else None,
            "after": dict(entry.after) if entry.after is not None else None,
            "event_id": entry.event_id,
        }
        doc["prev_hash"] = prev
        doc["hash"] = prev = chain_hash(prev, doc)
        docs.append(doc)
    return docs


def _queue_records(pipe: Pipeline, docs: Sequence[dict[str, Any]]) -> None:
    pipe.rpush(LOG, *(orjson.dumps(doc) for doc in docs))
    for doc in docs:
        pipe.rpush(SUBJECT + doc["subject"], doc["seq"])
    ids = {doc["event_id"]: doc["seq"] for doc in docs if doc["event_id"] is not None}
    if ids:
        pipe.hset(IDS, mapping=ids)
    pipe.set(HEAD, f"{docs[-1]['seq']} {docs[-1]['hash']}")


def queue_inbox(pipe: Pipeline, entries: Sequence[AuditEntry]) -> None:
    """Queue ``entries`` (each with an ``event_id``) for the chain inside the caller's transaction."""
    for entry in entries:
        assert entry.event_id is not None, "an inbox entry needs an event id: a relay may append it twice"
        pipe.xadd(INBOX, {"entry": orjson.dumps({
            "actor": entry.actor, "action": entry.action, "subject": entry.subject,
            "before": dict(entry.before) if entry.before is not None else None,
            "after": dict(entry.after) if entry.after is not None else None, "event_id": entry.event_id,
            "at": entry.at.astimezone(timezone.utc).isoformat() if entry.at is not None else None,
        })})


def _inbox_entry(raw: bytes) -> AuditEntry:
    doc = orjson.loads(raw)
    at = datetime.fromisoformat(doc.pop("at")) if doc.get("at") else None
    return AuditEntry(**doc, at=at)


class AuditLog:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def relay_inbox(self, batch: int = 1000) -> int:
        """Append what the checkpoint queued in ``audit:inbox`` (oldest first, up to ``batch``), then delete
        it; returns how many were taken."""
        queued = await self.redis.xrange(INBOX, count=batch)
        if not queued:
            return 0
        await self.append_many([_inbox_entry(fields[b"entry"]) for _, fields in queued])
        await self.redis.xdel(INBOX, *(entry_id for entry_id, _ in queued))
        return len(queued)

    async def append(self, entry: AuditEntry) -> AuditRecord | None:
        """Append one record; None if its ``event_id`` was already recorded."""
        records = await self.append_many([entry])
        return records[0] if records else None

    async def append_many(self, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        """Append records in one transaction, skipping event ids already recorded.

        For automatic actions (hold releases) that happen in batches.
        """

        async def decide(pipe: Pipeline) -> tuple[Change, list[AuditEntry]]:
            ids = [e.event_id for e in entries if e.event_id is not None]
            seen = set()
            if ids:
                found = await pipe.hmget(IDS, ids)
                seen = {i for i, s in zip(ids, found, strict=True) if s is not None}
            fresh, batch_ids = [], set()
            for e in entries:
                if e.event_id is None or (e.event_id not in seen and e.event_id not in batch_ids):
                    fresh.append(e)
                    if e.event_id is not None:
                        batch_ids.add(e.event_id)
            return Change(before=None, after=None), fresh

        return await self._run([], decide)

    async def transact(self, *, actor: str, action: str, subject: str, watch: Sequence[str], decide: Decide) -> AuditRecord | None:
        """Decide a change under WATCH, then write it and its audit record in one MULTI.

        1. WATCH the log head and ``watch`` (the caller's state keys).
        2. ``decide`` reads state through the pipeline and raises to refuse.
        3. MULTI: the change's writes, then the audit record; EXEC.
        4. If a watched key moved meanwhile, start again from 1 (decide sees the new state).

        Returns the record, or None when the change's ``event_id`` was already recorded
        (the change is then not written again).
        """

        async def decide_one(pipe: Pipeline) -> tuple[Change, list[AuditEntry]]:
            change = await decide(pipe)
            if change.event_id is not None and await pipe.hexists(IDS, change.event_id):
                return change, []
            entry = AuditEntry(actor, action, subject, change.before, change.after, change.event_id)
            return change, [entry]

        records = await self._run(watch, decide_one)
        return records[0] if records else None

    async def _run(
        self, watch: Sequence[str], decide: Callable[[Pipeline], Awaitable[tuple[Change, list[AuditEntry]]]]
    ) -> list[AuditRecord]:
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(HEAD, *watch)
                    change, entries = await decide(pipe)
                    if not entries:
                        await pipe.unwatch()
                        return []
                    docs = _chain(entries, _parse_head(await pipe.get(HEAD)), utcnow())
                    pipe.multi()
                    change.write(pipe)
                    _queue_records(pipe, docs)
                    await pipe.execute()
                    return [AuditRecord.model_validate(doc) for doc in docs]
                except WatchError:
                    continue

    async def records(self, start: int = 0, stop: int = -1) -> list[AuditRecord]:
        """Live records ``start``..``stop`` (inclusive, Redis list indexes: 0 is the first live record)."""
        return [AuditRecord.model_validate_json(raw) for raw in await self.redis.lrange(LOG, start, stop)]

    async def base(self) -> tuple[int, str]:
        """(seq of the first live record, the hash it links to): where the live part of the chain starts."""
        return parse_base(await self.redis.get(BASE))

    async def archives(self) -> list[dict[str, Any]]:
        """The archive segments written, oldest first (``first``, ``last``, ``file``): where older records went."""
        return [orjson.loads(raw) for raw in await self.redis.lrange(ARCHIVES, 0, -1)]

    async def about(self, subject: str) -> list[AuditRecord]:
        """Every live record about one subject, oldest first: a hold's or a case's history.

        The seqs are turned into list indexes under WATCH of the base: an archive run trimming
        meanwhile makes the read start again instead of fetching the wrong records."""
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(BASE)
                    first, _ = parse_base(await pipe.get(BASE))
                    seqs = [int(seq) for seq in await pipe.lrange(SUBJECT + subject, 0, -1)]
                    live = [seq - first for seq in seqs if seq >= first]
                    if not live:
                        await pipe.unwatch()
                        return []
                    pipe.multi()
                    for index in live:
                        pipe.lindex(LOG, index)
                    raws = await pipe.execute()
                    return [AuditRecord.model_validate_json(raw) for raw in raws if raw is not None]
                except WatchError:
                    continue

    async def verify(self, archive: Path | None = None, chunk: int = 5000) -> Verdict:
        """Walk the chain and name the first record that does not fit: from the live log's base, or
        with ``archive`` (a directory of segments) from the genesis through them into the live log.

        1. Read the base, the head and the log's length in one MULTI: a snapshot that appends leave
           alone (they only add records after it).
        2. With ``archive``, walk the segments up to the base (:func:`check_archive`).
        3. Read the live records in chunks, each in one MULTI with the base; if an archive run
           moved the base meanwhile, start again from 1.
        4. The head must name the last record checked.
        """
        while True:
            verdict = await self._verify_once(archive, chunk)
            if verdict is not None:
                return verdict

    async def _verify_once(self, archive: Path | None, chunk: int) -> Verdict | None:
        """The verdict, or None when an archive run moved the base during the walk."""
        snapshot = self.redis.pipeline(transaction=True).get(BASE).get(HEAD).llen(LOG)
        raw_base, raw_head, length = await snapshot.execute()
        base, head = parse_base(raw_base), _parse_head(raw_head)
        chain, first, archived = Chain(*base), base[0], 0
        if archive is not None:
            chain, broken = check_archive(archive, base)
            if broken is not None:
                return broken
            first, archived = 0, base[0]
        for start in range(0, length, chunk):
            read = self.redis.pipeline(transaction=True).get(BASE).lrange(LOG, start, min(start + chunk, length) - 1)
            moved, raws = await read.execute()
            if parse_base(moved) != base:
                return None
            for raw in raws:
                reason = chain.step(raw)
                if reason is not None:
                    return Verdict(chain.seq - first, chain.seq, reason, first, archived)
        last = chain.seq - 1
        if head[0] != last:
            return Verdict(last + 1 - first, last + 1, f"the head names record {head[0]} but the log ends at {last}",
                           first, archived)
        if head[1] != chain.prev:
            return Verdict(last - first, last, "the head's hash is not the last record's (it was replaced)",
                           first, archived)
        return Verdict(last + 1 - first, first=first, archived=archived)


def iter_lines(records: Sequence[AuditRecord]) -> Iterator[str]:
    """One line per record for the CLI: seq, time, actor, action, subject."""
    for r in records:
        yield f"{r.seq:>6}  {r.at:%Y-%m-%d %H:%M:%S}Z  {r.actor:<16} {r.action:<20} {r.subject}"
