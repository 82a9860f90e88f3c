"""The keyed hash chain of the audit log against a real redis-server: chaining, atomic changes, idempotency,
tampering (with the chain re-hashed by someone without the key), key rotation, writers that do not wait on
one another."""

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone

import pytest
from redis.asyncio import Redis

from antifraud.audit.cli import published_anchors
from antifraud.audit.models import GENESIS, Anchor, AuditEntry, AuditKeys, Change, chain_hash
from antifraud.audit.service import HEAD, INBOX, LOG, AuditKeyMissing, AuditLog
from antifraud.stack.embedded import Endpoints
from antifraud.stack.worker import WorkerProcess
from tests.conftest import AUDIT_KEYS, TEST_AUDIT_KEY, wait_for


class Refused(Exception):
    pass


def run(coro):  # noqa: ANN001, ANN201 - tiny test helper
    return asyncio.run(coro)


async def _log(redis_url: str) -> tuple[Redis, AuditLog]:
    redis = Redis.from_url(redis_url)
    return redis, AuditLog(redis, AUDIT_KEYS)


def test_records_chain_and_verify(redis_url: str) -> None:
    async def go() -> None:
        redis, log = await _log(redis_url)
        assert await log.append(AuditEntry("ana", "hold.freeze", "hold:h1", {"state": "held"}, {"state": "frozen"}))
        assert await log.append(AuditEntry("bo", "case.confirm", "case:c1", None, {"state": "confirmed"}))
        first, second = await log.records()
        assert (first.seq, second.seq) == (0, 1)
        assert first.prev_hash == GENESIS and second.prev_hash == first.hash
        assert first.key_id == second.key_id == AUDIT_KEYS.current_id
        assert (
            first.hash == chain_hash(GENESIS, json.loads(await redis.lindex(LOG, 0)), AUDIT_KEYS.current) != second.hash
        )
        assert await redis.xlen(INBOX) == 0, "sealed before append returned"
        verdict = await log.verify()
        assert verdict.ok and verdict.checked == 2
        assert [r.action for r in await log.about("hold:h1")] == ["hold.freeze"]
        await redis.aclose()

    run(go())


def test_event_id_makes_append_idempotent(redis_url: str) -> None:
    async def go() -> None:
        redis, log = await _log(redis_url)
        entries = [AuditEntry("worker", "hold.release", f"hold:h{i}", event_id=f"ev{i}") for i in range(3)]
        assert await log.append_many(entries) == 3
        assert await log.append_many([*entries, AuditEntry("worker", "hold.release", "hold:h9", event_id="ev9")]) == 1
        assert not await log.append(entries[0])
        assert [r.subject for r in await log.records()] == ["hold:h0", "hold:h1", "hold:h2", "hold:h9"]
        await redis.aclose()

    run(go())


def test_transact_writes_state_and_record_together_or_not_at_all(redis_url: str) -> None:
    async def go() -> None:
        redis, log = await _log(redis_url)
        await redis.set("thing", "held")

        async def freeze(pipe) -> Change:  # noqa: ANN001
            state = (await pipe.get("thing")).decode()
            if state != "held":
                raise Refused(f"thing is {state}")
            return Change({"state": state}, {"state": "frozen"}, lambda p: p.set("thing", "frozen"))

        record = await log.transact(actor="ana", action="freeze", subject="thing", watch=["thing"], decide=freeze)
        assert record is not None and record.after == {"state": "frozen"}
        assert await redis.get("thing") == b"frozen"
        with pytest.raises(Refused, match="thing is frozen"):
            await log.transact(actor="ana", action="freeze", subject="thing", watch=["thing"], decide=freeze)
        assert (await redis.xlen(INBOX), await redis.llen(LOG)) == (1, 0), "queued with the change, not chained yet"
        assert [r.after for r in await log.records()] == [{"state": "frozen"}], "a reader with the key seals first"
        assert await redis.xlen(INBOX) == 0
        await redis.aclose()

    run(go())


def test_concurrent_writers_keep_one_chain(redis_url: str) -> None:
    """Forty appends racing from four clients, none waiting on the log's head to write: contiguous seqs,
    intact chain."""

    async def go() -> None:
        clients = [Redis.from_url(redis_url) for _ in range(4)]
        logs = [AuditLog(c, AUDIT_KEYS) for c in clients]

        async def writer(i: int) -> None:
            for j in range(10):
                await logs[i].append(AuditEntry(f"w{i}", "note", f"case:{i}", after={"n": j}))

        await asyncio.gather(*(writer(i) for i in range(4)))
        records = await logs[0].records()
        assert [r.seq for r in records] == list(range(40))
        assert (await logs[0].verify()).ok
        for c in clients:
            await c.aclose()

    run(go())


def test_an_audited_write_without_the_key_changes_nothing(redis_url: str) -> None:
    async def go() -> None:
        redis = Redis.from_url(redis_url)
        await redis.set("thing", "held")
        with pytest.raises(AuditKeyMissing, match="ANTIFRAUD_AUDIT_KEY"):
            await AuditLog(redis).transact(
                actor="ana", action="freeze", subject="thing", watch=["thing"], decide=lambda pipe: _frozen()
            )
        assert await redis.get("thing") == b"held" and await redis.llen(LOG) == 0 and await redis.xlen(INBOX) == 0
        await redis.aclose()

    async def _frozen() -> Change:
        return Change({"state": "held"}, {"state": "frozen"})

    run(go())


def _tamper_and_verify(redis_url: str, tamper) -> tuple[int | None, str | None]:  # noqa: ANN001
    async def go() -> tuple[int | None, str | None]:
        redis, log = await _log(redis_url)
        for i in range(5):
            await log.append(AuditEntry("ana", "note", "case:c", after={"n": i}))
        await tamper(redis)
        verdict = await log.verify()
        await redis.aclose()
        return verdict.broken_at, verdict.reason

    return run(go())


def test_changed_record_is_named(redis_url: str) -> None:
    async def change_third(redis: Redis) -> None:
        doc = json.loads(await redis.lindex(LOG, 2))
        doc["actor"] = "mallory"
        await redis.lset(LOG, 2, json.dumps(doc))

    broken_at, reason = _tamper_and_verify(redis_url, change_third)
    assert broken_at == 2 and "hash does not match" in reason


def test_removed_record_is_named(redis_url: str) -> None:
    async def remove_second(redis: Redis) -> None:
        await redis.lset(LOG, 1, "gone")
        await redis.lrem(LOG, 1, "gone")

    broken_at, reason = _tamper_and_verify(redis_url, remove_second)
    assert broken_at == 1 and "seq" in reason


def test_rewritten_tail_is_caught_by_the_head(redis_url: str) -> None:
    async def drop_last(redis: Redis) -> None:
        await redis.rpop(LOG)

    broken_at, reason = _tamper_and_verify(redis_url, drop_last)
    assert broken_at == 4 and "head names record 4" in reason


@pytest.mark.parametrize("guess", [b"", b"a guessed key of thirty-two bytes or more, not the one"])
def test_a_record_rewritten_and_the_chain_rehashed_without_the_key_is_caught(redis_url: str, guess: bytes) -> None:
    """Someone who can write to Redis rewrites record 2 and re-hashes the chain from it to the head (with
    plain SHA-256 or a key of their own): verify, with the audit key, names record 2."""

    async def rewrite(redis: Redis) -> None:
        docs = [json.loads(raw) for raw in await redis.lrange(LOG, 0, -1)]
        docs[2]["actor"] = "mallory"
        prev = docs[1]["hash"]
        for n in range(2, len(docs)):
            docs[n]["prev_hash"] = prev
            body = json.dumps(
                {k: v for k, v in docs[n].items() if k not in ("prev_hash", "hash")},
                sort_keys=True,
                separators=(",", ":"),
                ensure_ascii=False,
            ).encode()
            material = prev.encode() + b"\n" + body
            docs[n]["hash"] = prev = chain_hash(prev, docs[n], guess) if guess else hashlib.sha256(material).hexdigest()
            await redis.lset(LOG, n, json.dumps(docs[n]))
        await redis.set(HEAD, f"{docs[-1]['seq']} {docs[-1]['hash']}")

    broken_at, reason = _tamper_and_verify(redis_url, rewrite)
    assert broken_at == 2 and "hash does not match" in reason


def test_a_rotated_key_still_verifies_what_it_signed(redis_url: str) -> None:
    """Records under an old key, then the new one: verify with both passes, with the new one alone it names
    the first record the old key signed."""
    new = AuditKeys(b"the new audit key, also thirty-two bytes or more", old=(TEST_AUDIT_KEY.encode(),))

    async def go() -> None:
        redis, old_log = await _log(redis_url)
        await old_log.append(AuditEntry("ana", "note", "case:c", after={"n": 1}))
        new_log = AuditLog(redis, new)
        await new_log.append(AuditEntry("ana", "note", "case:c", after={"n": 2}))
        assert [r.key_id for r in await new_log.records()] == [AUDIT_KEYS.current_id, new.current_id]
        assert (await new_log.verify()).checked == 2 and (await new_log.verify()).ok
        alone = await AuditLog(redis, AuditKeys(new.current)).verify()
        assert alone.broken_at == 0 and AUDIT_KEYS.current_id in (alone.reason or "")
        await redis.aclose()

    run(go())


def test_cli_verify_exit_codes(redis_url: str) -> None:
    async def seed(tamper: bool) -> None:
        redis, log = await _log(redis_url)
        if not tamper:
            await log.append(AuditEntry("ana", "note", "case:c", after={"n": 1}))
            await log.append(AuditEntry("ana", "note", "case:c", after={"n": 2}))
        else:
            doc = json.loads(await redis.lindex(LOG, 0))
            doc["after"] = {"n": 99}
            await redis.lset(LOG, 0, json.dumps(doc))
        await redis.aclose()

    env = {**os.environ, "REDIS_URL": redis_url}
    cmd = [sys.executable, "-m", "antifraud", "audit", "verify"]
    run(seed(tamper=False))
    ok = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "intact: 2 records" in ok.stdout
    run(seed(tamper=True))
    bad = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "BROKEN at record 0" in bad.stderr
    shown = subprocess.run(
        [*cmd[:-1], "show", "--subject", "case:c"], env=env, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0 and shown.stdout.count("note") == 2
    keyless = subprocess.run(
        cmd,
        env={k: v for k, v in env.items() if k != "ANTIFRAUD_AUDIT_KEY"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert keyless.returncode == 2 and "ANTIFRAUD_AUDIT_KEY is not set" in keyless.stderr


def test_an_insider_with_the_key_rewriting_the_chain_is_caught_by_an_earlier_anchor(redis_url: str) -> None:
    """With the key, a rewritten chain re-hashes cleanly: verify alone passes it. An anchor published before
    (the head as it was, outside Redis) does not: verify names the anchored record."""

    async def go() -> None:
        redis, log = await _log(redis_url)
        for i in range(5):
            await log.append(AuditEntry("ana", "note", "case:c", after={"n": i}))
        seq, digest = await log.head()
        anchor = Anchor(seq=seq, hash=digest, at=datetime.now(timezone.utc))
        docs = [json.loads(raw) for raw in await redis.lrange(LOG, 0, -1)]
        docs[2]["after"] = {"n": 99}
        prev = docs[1]["hash"]
        for n in range(2, len(docs)):
            docs[n]["prev_hash"] = prev
            docs[n]["hash"] = prev = chain_hash(prev, docs[n], AUDIT_KEYS.current)
            await redis.lset(LOG, n, json.dumps(docs[n]))
        await redis.set(HEAD, f"{docs[-1]['seq']} {docs[-1]['hash']}")
        assert (await log.verify()).ok, "re-hashed with the key, the chain alone cannot tell"
        caught = await log.verify(anchors=[anchor])
        assert caught.broken_at == 4 and "anchor" in (caught.reason or "")
        await redis.rpop(LOG)
        await redis.set(HEAD, f"3 {docs[3]['hash']}")
        cut = await log.verify(anchors=[Anchor(seq=4, hash=docs[4]["hash"], at=anchor.at)])
        assert cut.broken_at == 4 and "an anchor names record 4" in (cut.reason or "")
        await redis.aclose()

    run(go())


def test_the_worker_publishes_anchors_that_verify_checks(
    stack: Endpoints, start_worker: Callable[..., WorkerProcess]
) -> None:
    async def append() -> tuple[int, str]:
        redis, log = await _log(stack.redis_url)
        for i in range(3):
            await log.append(AuditEntry("ana", "note", "case:c", after={"n": i}))
        head = await log.head()
        await redis.aclose()
        return head

    start_worker(ANTIFRAUD_AUDIT_ANCHOR_SECONDS="1")
    seq, digest = run(append())
    wait_for(
        lambda: any(a.seq == seq for a in published_anchors(stack.kafka_bootstrap, 2)),
        timeout=60,
        what="the worker's anchor of the head",
    )
    assert [(a.seq, a.hash) for a in published_anchors(stack.kafka_bootstrap, 2) if a.seq == seq] == [(seq, digest)]
    env = {**os.environ, "REDIS_URL": stack.redis_url, "KAFKA_BOOTSTRAP": stack.kafka_bootstrap}
    checked = subprocess.run(
        [sys.executable, "-m", "antifraud", "audit", "verify", "--anchors"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0 and "published anchors hold" in checked.stdout, checked.stderr
