"""An audit record and the keyed hash that chains it to the one before.

A record's ``hash`` is HMAC-SHA-256, under the audit key its ``key_id`` names, over the previous
record's hash and the record's own fields as stored, in canonical JSON (sorted keys, no spaces).
Changing, removing or re-ordering any record breaks the chain from that record on, which
:func:`antifraud.audit.service.AuditLog.verify` reports; without the key nobody can write a chain that
verifies, so whoever can write to Redis cannot rewrite history and re-hash it. The key comes from
configuration (``ANTIFRAUD_AUDIT_KEY``) and is never stored in Redis.

Rotation: set the new key as ``ANTIFRAUD_AUDIT_KEY`` and move the old one to
``ANTIFRAUD_AUDIT_OLD_KEYS`` (space-separated); new records are signed with the new key (their
``key_id`` says which), and verify checks each record with the key it names.
"""

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError
from redis.asyncio.client import Pipeline

GENESIS = "0" * 64
"""The ``prev_hash`` of the first record."""


class AuditRecord(BaseModel):
    """One appended action: who did what to which subject, the state before and after."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    event_id: str | None
    key_id: str
    prev_hash: str
    hash: str


CHAIN_FIELDS = ("prev_hash", "hash")


class Anchor(BaseModel):
    """The chain's head at a moment, published outside Redis: record ``seq`` had hash ``hash``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    seq: int
    hash: str
    at: datetime


MIN_KEY_BYTES = 32


@dataclass(frozen=True)
class AuditKeys:
    """The chain's keys: ``current`` signs new records, ``old`` (earlier keys, after a rotation) still verify
    the records they signed."""

    current: bytes
    old: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        for key in (self.current, *self.old):
            if len(key) < MIN_KEY_BYTES:
                raise ValueError(f"an audit key needs at least {MIN_KEY_BYTES} bytes")

    @staticmethod
    def key_id(key: bytes) -> str:
        """A name for a key that tells nothing about it."""
        return hashlib.sha256(b"antifraud audit key id\n" + key).hexdigest()[:16]

    @property
    def current_id(self) -> str:
        return self.key_id(self.current)

    def by_id(self, key_id: str) -> bytes | None:
        return next((k for k in (self.current, *self.old) if self.key_id(k) == key_id), None)


def chain_hash(prev_hash: str, fields: Mapping[str, Any], key: bytes) -> str:
    """HMAC-SHA-256 under ``key`` over the previous hash and the record's other fields (as stored) in
    canonical JSON."""
    body = orjson.dumps({k: v for k, v in fields.items() if k not in CHAIN_FIELDS}, option=orjson.OPT_SORT_KEYS)
    return hmac.new(key, prev_hash.encode() + b"\n" + body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    """What a caller appends; the log adds ``seq``, ``at`` (if missing) and the hashes."""

    actor: str
    action: str
    subject: str
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None
    event_id: str | None = None
    """Stable id of the action (a hold event id, say): appending it again is a no-op."""
    at: datetime | None = None


def _no_writes(pipe: Pipeline) -> None:
    """A change that only records (nothing else to write)."""


@dataclass(frozen=True)
class Change:
    """A decided change: the state before and after, and the writes that make it."""

    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    write: Callable[[Pipeline], None] = field(default=_no_writes)
    event_id: str | None = None


def check_record(seq: int, raw: bytes, prev: str, keys: AuditKeys) -> tuple[str | None, str]:
    """(why the record ``raw`` breaks the chain at ``seq`` or None, the hash the next record must link to)."""
    try:
        doc = orjson.loads(raw)
        AuditRecord.model_validate(doc)
    except (orjson.JSONDecodeError, ValidationError):
        return "not a valid record", prev
    if doc["seq"] != seq:
        return f"carries seq {doc['seq']} at position {seq}", prev
    if doc["prev_hash"] != prev:
        return "its prev_hash is not the previous record's hash (a record was removed, inserted or changed)", prev
    key = keys.by_id(doc["key_id"])
    if key is None:
        return f"it is signed with key {doc['key_id']}, which is not among the keys given", prev
    if not hmac.compare_digest(doc["hash"], chain_hash(prev, doc, key)):
        return "its hash does not match its contents under its key (the record was changed)", prev
    return None, doc["hash"]


@dataclass
class Chain:
    """A walk along the chain: the seq the next record must carry and the hash it must link to.

    The same walk checks the live log, archive segments and what an archive run reads and writes."""

    keys: AuditKeys
    seq: int = 0
    prev: str = GENESIS

    def step(self, raw: bytes) -> str | None:
        """Check the next record and move past it; why it does not fit (and stay put) or None."""
        reason, digest = check_record(self.seq, raw, self.prev, self.keys)
        if reason is None:
            self.seq, self.prev = self.seq + 1, digest
        return reason


@dataclass(frozen=True)
class Verdict:
    """The result of checking the chain: ``broken_at`` is the first bad record's seq.

    ``first`` is the seq the check started from: 0 from the genesis, else the live log's base
    (the records before it archived and not checked); ``archived`` of the ``checked`` records
    were read from archive segments."""

    checked: int
    broken_at: int | None = None
    reason: str | None = None
    first: int = 0
    archived: int = 0

    @property
    def ok(self) -> bool:
        return self.broken_at is None
