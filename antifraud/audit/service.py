"""The audit log in Redis: an append-only list chained by hashes.

Keys:
- ``audit:log``: list of record JSON; the list index is the record's ``seq``.
- ``audit:head``: ``"{seq} {hash}"`` of the last record; a log shorter than its
  head says records were removed from the end.
- ``audit:ids``: hash ``event_id`` -> seq, so an action replayed after a crash
  is not appended twice.
- ``audit:subject:{subject}``: list of the seqs about one subject (a hold, a case,
  a listing), for timelines.

Appends are Redis transactions that WATCH the head: two writers never chain to
the same predecessor. :meth:`AuditLog.transact` puts the caller's own writes in
the same MULTI, so a state change and its record land together or not at all.
"""

from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

import orjson

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from antifraud.audit.models import GENESIS, AuditEntry, AuditRecord, Change, Verdict, chain_hash

LOG = "audit:log"
HEAD = "audit:head"
IDS = "audit:ids"
SUBJECT = "audit:subject:"

Decide = Callable[[Pipeline], Awaitable[Change]]
"""Reads current state through the watching pipeline, refuses by raising, returns the change."""


def _parse_head(raw: bytes | str | None) -> tuple[int, str]:
    """(seq of the last record, its hash); (-1, GENESIS) for an empty log."""
    if raw is None:
        return -1, GENESIS
    text = raw.decode() if isinstance(raw, bytes) else raw
    seq, digest = text.split(" ", 1)
    return int(seq), digest


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


class AuditLog:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

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
                    docs = _chain(entries, _parse_head(await pipe.get(HEAD)), datetime.now(timezone.utc))
                    pipe.multi()
                    change.write(pipe)
                    _queue_records(pipe, docs)
                    await pipe.execute()
                    return [AuditRecord.model_validate(doc) for doc in docs]
                except WatchError:
                    continue

    async def records(self, start: int = 0, stop: int = -1) -> list[AuditRecord]:
        """Records ``start``..``stop`` (inclusive, Redis list indexes)."""
        return [AuditRecord.model_validate_json(raw) for raw in await self.redis.lrange(LOG, start, stop)]

    async def about(self, subject: str) -> list[AuditRecord]:
        """Every record about one subject, oldest first: a hold's or a case's history."""
        seqs = await self.redis.lrange(SUBJECT + subject, 0, -1)
        pipe = self.redis.pipeline(transaction=False)
        for seq in seqs:
            pipe.lindex(LOG, int(seq))
        return [AuditRecord.model_validate_json(raw) for raw in await pipe.execute() if raw is not None]

    async def verify(self, chunk: int = 5000) -> Verdict:
        """Walk the chain from the first record; name the first record that does not fit."""
        head = _parse_head(await self.redis.get(HEAD))
        length = await self.redis.llen(LOG)
        prev, checked = GENESIS, 0
        for start in range(0, length, chunk):
            raws = await self.redis.lrange(LOG, start, start + chunk - 1)
            for seq, raw in enumerate(raws, start):
                reason, prev = _check(seq, raw, prev)
                if reason is not None:
                    return Verdict(checked, seq, reason)
                checked += 1
        if head[0] != length - 1 or (length and head[1] != prev):
            return Verdict(checked, length, f"the head names record {head[0]} but the log ends at {length - 1}")
        return Verdict(checked)


def _check(seq: int, raw: bytes, prev: str) -> tuple[str | None, str]:
    """(why the record at ``seq`` breaks the chain or None, the hash the next record must link to)."""
    try:
        doc = orjson.loads(raw)
        AuditRecord.model_validate(doc)
    except (orjson.JSONDecodeError, ValidationError):
        return "not a valid record", prev
    if doc["seq"] != seq:
        return f"carries seq {doc['seq']} at position {seq}", prev
    if doc["prev_hash"] != prev:
        return "its prev_hash is not the previous record's hash (a record was removed, inserted or changed)", prev
    if doc["hash"] != chain_hash(prev, doc):
        return "its hash does not match its contents (the record was changed)", prev
    return None, doc["hash"]


def iter_lines(records: Sequence[AuditRecord]) -> Iterator[str]:
    """One line per record for the CLI: seq, time, actor, action, subject."""
    for r in records:
        yield f"{r.seq:>6}  {r.at:%Y-%m-%d %H:%M:%S}Z  {r.actor:<16} {r.action:<20} {r.subject}"
