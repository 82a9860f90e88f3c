"""The hash-chained audit log against a real redis-server: chaining, atomic changes, idempotency, tampering."""

import asyncio
import json
import os
import subprocess
import sys

import pytest
from redis.asyncio import Redis

from antifraud.audit.models import GENESIS, AuditEntry, Change, chain_hash
from antifraud.audit.service import LOG, AuditLog


class Refused(Exception):
    pass


def run(coro):  # noqa: ANN001, ANN201 - tiny test helper
    return asyncio.run(coro)


async def _log(redis_url: str) -> tuple[Redis, AuditLog]:
    redis = Redis.from_url(redis_url)
    return redis, AuditLog(redis)


def test_records_chain_and_verify(redis_url: str) -> None:
    async def go() -> None:
        redis, log = await _log(redis_url)
        first = await log.append(AuditEntry("ana", "hold.freeze", "hold:h1", {"state": "held"}, {"state": "frozen"}))
        second = await log.append(AuditEntry("bo", "case.confirm", "case:c1", None, {"state": "confirmed"}))
        assert first is not None and second is not None
        assert (first.seq, second.seq) == (0, 1)
        assert first.prev_hash == GENESIS and second.prev_hash == first.hash
        assert first.hash == chain_hash(GENESIS, json.loads(await redis.lindex(LOG, 0))) != second.hash
        verdict = await log.verify()
        assert verdict.ok and verdict.checked == 2
        assert [r.action for r in await log.about("hold:h1")] == ["hold.freeze"]
        await redis.aclose()

    run(go())


def test_event_id_makes_append_idempotent(redis_url: str) -> None:
    async def go() -> None:
        redis, log = await _log(redis_url)
        entries = [AuditEntry("worker", "hold.release", f"hold:h{i}", event_id=f"ev{i}") for i in range(3)]
        assert len(await log.append_many(entries)) == 3
        again = await log.append_many([*entries, AuditEntry("worker", "hold.release", "hold:h9", event_id="ev9")])
        assert [r.subject for r in again] == ["hold:h9"]
        assert await log.append(entries[0]) is None
        assert await redis.llen(LOG) == 4
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
        assert await redis.llen(LOG) == 1
        await redis.aclose()

    run(go())


def test_concurrent_writers_keep_one_chain(redis_url: str) -> None:
    """Forty appends racing from four clients: contiguous seqs, intact chain."""

    async def go() -> None:
        clients = [Redis.from_url(redis_url) for _ in range(4)]
        logs = [AuditLog(c) for c in clients]

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
    shown = subprocess.run([*cmd[:-1], "show", "--subject", "case:c"], env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and shown.stdout.count("note") == 2
