"""Archive segments: the audit records taken out of Redis, in files that still prove the chain.

A segment is one gzip file of JSON lines named by the seqs it holds,
``audit-{first:012d}-{last:012d}.jsonl.gz`` (12 digits, so names sort as seqs do):

1. a header ``{"audit_segment": 1, "first": ..., "prev_hash": ..., "before": ...}``: where it
   joins the chain (the hash of the record before ``first``) and the cut-off it was archived by;
2. the records, byte for byte as they were stored in ``audit:log``;
3. a trailer ``{"segment_end": 1, "last": ..., "count": ..., "anchor": ...}``: ``anchor`` is the
   hash of the last record, the one the next segment (or the live log's ``audit:base``) links to.
   A file without its trailer was cut short.

A segment is written under a hidden temporary name and renamed once complete and fsynced, so a
name of this form never holds a half-written file; leftovers (``.audit-*.partial``) are ignored
here and removed by the next archive run.
"""

import gzip
import os
import re
import secrets
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from antifraud.audit.models import AuditKeys, AuditRecord, Chain, Verdict

_NAME = re.compile(r"audit-(\d{12})-(\d{12})\.jsonl\.gz")
_PARTIAL = ".audit-*.partial"
_TRAILER_PREFIX = b'{"segment_end"'


class SegmentError(Exception):
    """A segment file that cannot be read as one: ``seq`` is the first record it fails to give."""

    def __init__(self, path: Path, seq: int, reason: str) -> None:
        super().__init__(f"segment {path}: {reason}")
        self.seq = seq
        self.reason = reason


def segment_name(first: int, last: int) -> str:
    return f"audit-{first:012d}-{last:012d}.jsonl.gz"


@dataclass(frozen=True)
class Segment:
    """A segment file, by the seq range its name states."""

    path: Path
    first: int
    last: int


def list_segments(directory: Path) -> list[Segment]:
    """The segment files in ``directory``, by first seq (other files are not looked at)."""
    found = []
    for path in directory.iterdir():
        named = _NAME.fullmatch(path.name)
        if named:
            found.append(Segment(path, int(named[1]), int(named[2])))
    return sorted(found, key=lambda s: (s.first, s.last))


def remove_partials(directory: Path) -> list[Path]:
    """Delete half-written segments left by a run that crashed; the ones deleted."""
    removed = sorted(directory.glob(_PARTIAL))
    for path in removed:
        path.unlink()
    return removed


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (the file's own fsync does not cover its name)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SegmentWriter:
    """Writes one segment: :meth:`add` the records in seq order, then :meth:`finish` (or :meth:`discard`).

    ``finish`` order: 1. trailer; 2. close the gzip stream; 3. fsync the file; 4. rename it to its
    final name; 5. fsync the directory. A crash before 4 leaves only a hidden ``.partial`` file.
    """

    def __init__(self, directory: Path, first: int, prev_hash: str, before: datetime) -> None:
        self.directory = directory
        self.first = first
        self.count = 0
        self._last = b""
        self.temp = directory / f".audit-{first:012d}-{secrets.token_hex(4)}.partial"
        self._raw: IO[bytes] = open(self.temp, "xb")
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="wb", mtime=0)
        self._line({"audit_segment": 1, "first": first, "prev_hash": prev_hash, "before": before.isoformat()})

    def _line(self, doc: dict[str, Any]) -> None:
        self._gz.write(orjson.dumps(doc) + b"\n")

    def add(self, raw: bytes) -> None:
        self._gz.write(raw + b"\n")
        self.count += 1
        self._last = raw

    def finish(self) -> Segment:
        """Close the segment after at least one record; the trailer's anchor is the last record's hash."""
        last = self.first + self.count - 1
        anchor = orjson.loads(self._last)["hash"]
        self._line({"segment_end": 1, "last": last, "count": self.count, "anchor": anchor})
        self._gz.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        path = self.directory / segment_name(self.first, last)
        os.replace(self.temp, path)
        _fsync_dir(self.directory)
        return Segment(path, self.first, last)

    def discard(self) -> None:
        self._gz.close()
        self._raw.close()
        self.temp.unlink(missing_ok=True)


def read_segment(segment: Segment) -> Iterator[bytes]:
    """The record lines of a segment. Raises :class:`SegmentError` when the file is unreadable, its
    header or trailer disagrees with its name or its last record, or it has no trailer. Whether the
    records chain is for a :class:`~antifraud.audit.models.Chain` walking them to tell."""
    seq, last_line = segment.first, None

    def error(reason: str) -> SegmentError:
        return SegmentError(segment.path, seq, reason)

    try:
        with gzip.open(segment.path, "rb") as lines:
            header = orjson.loads(next(lines, b"{}"))
            if not isinstance(header, dict) or header.get("audit_segment") != 1 or header.get("first") != segment.first:
                raise error("its header is missing or names another first record")
            for line in lines:
                line = line.rstrip(b"\n")
                if not line.startswith(_TRAILER_PREFIX):
                    yield line
                    seq, last_line = seq + 1, line
                    continue
                trailer = orjson.loads(line)
                if next(lines, None) is not None:
                    raise error("it has lines after its trailer")
                held = seq - segment.first
                if trailer.get("last") != segment.last or seq - 1 != segment.last or trailer.get("count") != held:
                    raise error(
                        f"it holds records {segment.first}..{seq - 1}, its name and trailer say "
                        f"{segment.first}..{segment.last}"
                    )
                if last_line is None or trailer.get("anchor") != orjson.loads(last_line).get("hash"):
                    raise error("its trailer's anchor is not its last record's hash")
                return
    except (OSError, EOFError, zlib.error, orjson.JSONDecodeError) as exc:
        raise error(f"unreadable ({type(exc).__name__}): the file was cut short or changed") from None
    raise error("it ends without its trailer (cut short)")


def prev_hash_of(segment: Segment) -> str:
    """The hash the segment's first record links to, as its header states."""
    try:
        with gzip.open(segment.path, "rb") as lines:
            return str(orjson.loads(next(lines))["prev_hash"])
    except (OSError, EOFError, zlib.error, orjson.JSONDecodeError, StopIteration, KeyError) as exc:
        raise SegmentError(segment.path, segment.first, f"no readable header ({type(exc).__name__})") from None


def check_segment(segment: Segment, chain: Chain, *, until: int | None = None) -> tuple[str | None, str | None]:
    """Walk ``chain`` through the segment's records; (why the record at ``chain.seq`` breaks it or None,
    the hash the record ``until`` links to, if the segment reaches it).

    The whole file is checked, also its records from ``until`` on (still in Redis when an archive
    run stopped before trimming them all)."""
    at_until = chain.prev if chain.seq == until else None
    try:
        for raw in read_segment(segment):
            reason = chain.step(raw)
            if reason is not None:
                return reason, at_until
            if chain.seq == until:
                at_until = chain.prev
    except SegmentError as error:
        return error.reason, at_until
    return None, at_until


def check_archive(directory: Path, live: tuple[int, str], keys: AuditKeys) -> tuple[Chain, Verdict | None]:
    """Walk the chain from the genesis through the segments in ``directory`` up to the live log's base
    ``live`` = (first live seq, the hash it links to); (where the walk got to, the verdict if it broke).

    Segments are taken in seq order; each must start where the one before ended (else the records in
    between are named missing). Segments that start at or after the live base are not part of the
    archive yet (a run that stopped before trimming anything) and are skipped."""
    base_seq, base_hash = live
    chain = Chain(keys)

    def broken(seq: int, segment: Segment | None, reason: str) -> tuple[Chain, Verdict]:
        where = f"segment {segment.path.name}: " if segment else ""
        return chain, Verdict(min(seq, base_seq), seq, where + reason, archived=min(seq, base_seq))

    for segment in (s for s in list_segments(directory) if s.first < base_seq):
        if segment.first > chain.seq:
            return broken(
                chain.seq,
                None,
                f"records {chain.seq}..{segment.first - 1} are missing: no segment in {directory} holds them",
            )
        if segment.first < chain.seq:
            return broken(segment.first, segment, f"overlaps the segment before it (which ends at {chain.seq - 1})")
        reason, at_base = check_segment(segment, chain, until=base_seq)
        if reason is not None:
            return broken(chain.seq, segment, reason)
        if at_base is not None:
            chain = Chain(keys, base_seq, at_base)
            break
    if chain.seq != base_seq:
        return broken(
            chain.seq, None, f"records {chain.seq}..{base_seq - 1} are neither in Redis nor in a segment in {directory}"
        )
    if chain.prev != base_hash:
        return broken(base_seq, None, "the live log's base (audit:base) does not link to the archive's last record")
    return chain, None


def archived_records(directory: Path, until: int, subject: str | None = None) -> Iterator[AuditRecord]:
    """The archived records (seq below ``until``) in ``directory``'s segments, oldest first; only those
    about ``subject`` if given. Reading only: ``antifraud audit verify --archive`` proves them unaltered."""
    for segment in list_segments(directory):
        if segment.first >= until:
            continue
        for raw in read_segment(segment):
            record = AuditRecord.model_validate_json(raw)
            if record.seq < until and (subject is None or record.subject == subject):
                yield record
