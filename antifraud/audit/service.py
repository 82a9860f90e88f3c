"""The audit log in Redis: an append-only list chained by hashes.

Keys:
- ``audit:log``: list of the live records' JSON, oldest first. A record's ``seq`` is
  global and never changes: its list index is ``seq`` minus the base's seq.
- ``audit:base``: ``"{first live seq} {hash it links to}"``, written when older records
  are archived (:mod:`antifraud.audit.archive`); absent means ``0`` and the genesis hash.
- ``audit:head``: ``"{seq} {hash}"`` of the last record; a log shorter than its
  head says records were removed from the end.
- ``audit:ids``: hash ``event_id`` -> seq (``q`` while queued), so an action replayed after a crash
  is not appended twice (for live records only: archiving drops the ids).
- ``audit:subject:{subject}``: list of the live seqs about one subject (a hold, a
  case, a listing), for timelines.
- ``audit:archives``: list of the archive segments written (JSON: seq range, file).
- ``audit:inbox``: a stream of the entries queued and not chained yet.

Writing is in two steps, so that writers do not wait on one another:

1. Queue: a writer puts its entry on ``audit:inbox`` in the same MULTI as the state change it
   describes (:meth:`AuditLog.transact`, or the stream checkpoint's :func:`queue_inbox`), so the two
   land together or not at all. The MULTI watches only the writer's own state keys.
2. Seal: :meth:`AuditLog.seal` takes the queued entries in order, chains them (HMAC under the audit
   key, ``antifraud/audit/models.py``), appends them to the log and deletes them from the inbox, in one
   MULTI under WATCH of the head: two sealers never chain to the same predecessor, and whichever wins
   seals everything queued, so many writers cost few chain transactions. The worker seals every half
   second; a reader with the key (:meth:`AuditLog.about`, :meth:`AuditLog.records`) seals before it
   reads, so a timeline shows an action the moment it was taken. Entries whose event id is already
   chained are dropped, so an action queued twice is chained once. Until it is sealed (normally well
   under a second) an entry is protected only as the rest of Redis is.

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

from antifraud.audit.models import (
    GENESIS,
    Anchor,
    AuditEntry,
    AuditKeys,
    AuditRecord,
    Chain,
    Change,
    Verdict,
    chain_hash,
)
from antifraud.audit.segments import check_archive
from antifraud.clock import utcnow
from antifraud.state import keys as families
from antifraud.state.store import Lua

LOG = families.AUDIT_LOG.key()
BASE = families.AUDIT_BASE.key()
HEAD = families.AUDIT_HEAD.key()
IDS = families.AUDIT_IDS.key()
SUBJECT = families.AUDIT_SUBJECT.prefix
ARCHIVES = families.AUDIT_ARCHIVES.key()
INBOX = families.AUDIT_INBOX.key()
QUEUED = "q"
"""``audit:ids``' value for an event id queued and not chained yet."""

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


class AuditKeyMissing(RuntimeError):
    """An audited write or a verify without the audit key (``ANTIFRAUD_AUDIT_KEY``)."""


def _entry_doc(entry: AuditEntry, now: datetime) -> dict[str, Any]:
    """An entry as queued: its time is when it was decided, not when it is chained."""
    return {
        "at": (entry.at or now).astimezone(timezone.utc).isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "subject": entry.subject,
        "before": dict(entry.before) if entry.before is not None else None,
        "after": dict(entry.after) if entry.after is not None else None,
        "event_id": entry.event_id,
    }


def queue_inbox(pipe: Pipeline, entries: Sequence[AuditEntry]) -> None:
    """Queue ``entries`` for the chain inside the caller's transaction (step 1 of the module docstring)."""
    now = utcnow()
    for entry in entries:
        pipe.xadd(INBOX, {"entry": orjson.dumps(_entry_doc(entry, now)), "event_id": entry.event_id or ""})
        if entry.event_id is not None:
            pipe.hsetnx(IDS, entry.event_id, QUEUED)


def _chain(docs: Sequence[dict[str, Any]], head: tuple[int, str], keys: AuditKeys) -> list[dict[str, Any]]:
    """The queued entries as records: plain JSON values, so the hash is computed over exactly what is written."""
    seq, prev = head
    records = []
    for doc in docs:
        seq += 1
        record = {"seq": seq, **doc, "key_id": keys.current_id, "prev_hash": prev}
        record["hash"] = prev = chain_hash(prev, record, keys.current)
        records.append(record)
    return records


# KEYS: the inbox, the head, the ids; ARGV[1] how many to take. The head ('' for none), then per queued
# entry its stream id, its JSON and what audit:ids says of its event id ('' for nothing).
_TAKE = Lua("""
local out = {redis.call('GET', KEYS[2]) or ''}
for _, item in ipairs(redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', ARGV[1])) do
  local fields, known = item[2], ''
  if fields[4] ~= '' then known = redis.call('HGET', KEYS[3], fields[4]) or '' end
  out[#out + 1] = item[1]
  out[#out + 1] = fields[2]
  out[#out + 1] = known
end
return out
""")

# KEYS: the head, the log, the ids, the inbox, then per record its subject's list. ARGV: the head the
# records chain from, the new head, n, per record its JSON, seq and event id ('' for none), then m and the
# m stream ids taken. Appends only while the head is still the one chained from: 1, else 0.
_APPEND = Lua("""
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
local n, i = tonumber(ARGV[3]), 4
for r = 1, n do
  redis.call('RPUSH', KEYS[2], ARGV[i])
  redis.call('RPUSH', KEYS[4 + r], ARGV[i + 1])
  if ARGV[i + 2] ~= '' then redis.call('HSET', KEYS[3], ARGV[i + 2], ARGV[i + 1]) end
  i = i + 3
end
if n > 0 then redis.call('SET', KEYS[1], ARGV[2]) end
local m = tonumber(ARGV[i])
if m > 0 then redis.call('XDEL', KEYS[4], unpack(ARGV, i + 1, i + m)) end
return 1
""")


class AuditLog:
    """The log; ``keys`` (the audit key) are needed to write and to verify, not to read."""

    def __init__(self, redis: Redis, keys: AuditKeys | None = None) -> None:
        self.redis = redis
        self.keys = keys

    def _key(self) -> AuditKeys:
        if self.keys is None:
            raise AuditKeyMissing("the audit log is chained under a key: set ANTIFRAUD_AUDIT_KEY")
        return self.keys

    async def seal(self, batch: int = 1000) -> int:
        """Chain everything queued (step 2 of the module docstring), ``batch`` entries at a time, in two
        round trips each: take them with the head, then append them only if the head has not moved (else
        another sealer chained first: take again); returns how many records were appended."""
        keys = self._key()
        appended = 0
        while True:
            reply = await _TAKE(self.redis, [INBOX, HEAD, IDS], [batch])
            head, rest = reply[0], reply[1:]
            if not rest:
                return appended
            taken = [rest[i : i + 3] for i in range(0, len(rest), 3)]
            fresh, seen = [], set()
            for _, raw, known in taken:
                doc = orjson.loads(raw)
                event_id = doc["event_id"]
                if event_id is None or (known in (b"", QUEUED.encode()) and event_id not in seen):
                    fresh.append(doc)
                    seen.add(event_id)
            records = _chain(fresh, _parse_head(head or None), keys)
            new_head = f"{records[-1]['seq']} {records[-1]['hash']}" if records else ""
            args: list[str | bytes | int] = [head, new_head, len(records)]
            for record in records:
                args += [orjson.dumps(record), record["seq"], record["event_id"] or ""]
            args += [len(taken), *(entry_id for entry_id, _, _ in taken)]
            if not await _APPEND(self.redis, [HEAD, LOG, IDS, INBOX, *(SUBJECT + r["subject"] for r in records)], args):
                continue  # another sealer chained first
            appended += len(records)
            if len(taken) < batch:
                return appended  # what is queued from now on, its writer (or the worker) seals

    async def append(self, entry: AuditEntry) -> bool:
        """Append one record; False if its ``event_id`` was already recorded."""
        return await self.append_many([entry]) == 1

    async def append_many(self, entries: Sequence[AuditEntry]) -> int:
        """Queue records and seal them, skipping event ids already recorded; how many were new."""
        self._key()
        ids = [e.event_id for e in entries if e.event_id is not None]
        known = set()
        if ids:
            known = {i for i, seq in zip(ids, await self.redis.hmget(IDS, ids), strict=True) if seq is not None}
        fresh = [e for e in entries if e.event_id is None or e.event_id not in known]
        if fresh:
            pipe = self.redis.pipeline(transaction=True)
            queue_inbox(pipe, fresh)
            await pipe.execute()
            await self.seal()
        return len(fresh)

    async def transact(
        self, *, actor: str, action: str, subject: str, watch: Sequence[str], decide: Decide
    ) -> AuditEntry | None:
        """Decide a change under WATCH, then write it and queue its audit record in one MULTI.

        1. WATCH ``watch`` (the caller's state keys; never the log's head, so writers do not wait on
           one another), or with none the subject's list of records.
        2. ``decide`` reads state through the pipeline and raises to refuse.
        3. MULTI: the change's writes, then the record queued; EXEC.
        4. If a watched key moved meanwhile, start again from 1 (decide sees the new state).

        The record is chained by the next seal (module docstring), so writers never wait on one another.

        Returns the entry, or None when the change's ``event_id`` was already recorded (the change is
        then not written again).
        """
        self._key()
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(*(watch or [SUBJECT + subject]))
                    change = await decide(pipe)
                    if change.event_id is not None and await pipe.hexists(IDS, change.event_id):
                        await pipe.reset()
                        return None
                    entry = AuditEntry(
                        actor, action, subject, change.before, change.after, change.event_id, at=utcnow()
                    )
                    pipe.multi()
                    change.write(pipe)
                    queue_inbox(pipe, [entry])
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        return entry

    async def _sealed(self) -> None:
        """Before a read: with the key, chain what is queued, so the read shows every action taken."""
        if self.keys is not None:
            await self.seal()

    async def records(self, start: int = 0, stop: int = -1) -> list[AuditRecord]:
        """Live records ``start``..``stop`` (inclusive, Redis list indexes: 0 is the first live record)."""
        await self._sealed()
        return [AuditRecord.model_validate_json(raw) for raw in await self.redis.lrange(LOG, start, stop)]

    async def head(self) -> tuple[int, str]:
        """(seq of the last record, its hash): what an anchor records."""
        return _parse_head(await self.redis.get(HEAD))

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
        await self._sealed()
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

    async def verify(self, archive: Path | None = None, chunk: int = 5000, anchors: Sequence[Anchor] = ()) -> Verdict:
        """Walk the chain and name the first record that does not fit: from the live log's base, or
        with ``archive`` (a directory of segments) from the genesis through them into the live log.
        Each of ``anchors`` (heads published outside Redis) must still hold: a chain rewritten by someone
        who had the key too is caught at the first anchor after the change.

        1. Read the base, the head and the log's length in one MULTI: a snapshot that appends leave
           alone (they only add records after it).
        2. With ``archive``, walk the segments up to the base (:func:`check_archive`).
        3. Read the live records in chunks, each in one MULTI with the base; if an archive run
           moved the base meanwhile, start again from 1.
        4. The head must name the last record checked.
        """
        while True:
            verdict = await self._verify_once(archive, chunk, {a.seq: a for a in anchors})
            if verdict is not None:
                return verdict

    async def _verify_once(self, archive: Path | None, chunk: int, anchors: dict[int, Anchor]) -> Verdict | None:
        """The verdict, or None when an archive run moved the base during the walk."""
        snapshot = self.redis.pipeline(transaction=True)
        snapshot.get(BASE)
        snapshot.get(HEAD)
        snapshot.llen(LOG)
        raw_base, raw_head, length = await snapshot.execute()
        base, head = parse_base(raw_base), _parse_head(raw_head)
        keys = self._key()
        chain, first, archived = Chain(keys, *base), base[0], 0
        if archive is not None:
            chain, broken = check_archive(archive, base, keys)
            if broken is not None:
                return broken
            first, archived = 0, base[0]
        for start in range(0, length, chunk):
            read = self.redis.pipeline(transaction=True)
            read.get(BASE)
            read.lrange(LOG, start, min(start + chunk, length) - 1)
            moved, raws = await read.execute()
            if parse_base(moved) != base:
                return None
            for raw in raws:
                reason = chain.step(raw)
                if reason is None and (anchor := anchors.get(chain.seq - 1)) is not None and anchor.hash != chain.prev:
                    reason = f"its hash differs from the anchor published at {anchor.at:%Y-%m-%d %H:%M:%S}Z (rewritten)"
                    return Verdict(chain.seq - 1 - first, chain.seq - 1, reason, first, archived)
                if reason is not None:
                    return Verdict(chain.seq - first, chain.seq, reason, first, archived)
        last = chain.seq - 1
        beyond = [seq for seq in anchors if seq > last]
        if beyond:
            return Verdict(
                last + 1 - first,
                last + 1,
                f"an anchor names record {max(beyond)} but the log ends at {last}",
                first,
                archived,
            )
        if head[0] != last:
            return Verdict(
                last + 1 - first,
                last + 1,
                f"the head names record {head[0]} but the log ends at {last}",
                first,
                archived,
            )
        if head[1] != chain.prev:
            return Verdict(
                last - first, last, "the head's hash is not the last record's (it was replaced)", first, archived
            )
        return Verdict(last + 1 - first, first=first, archived=archived)


def iter_lines(records: Sequence[AuditRecord]) -> Iterator[str]:
    """One line per record for the CLI: seq, time, actor, action, subject."""
    for r in records:
        yield f"{r.seq:>6}  {r.at:%Y-%m-%d %H:%M:%S}Z  {r.actor:<16} {r.action:<20} {r.subject}"
