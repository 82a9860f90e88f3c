"""The hold ledger in Redis: holds with their state, indexes, the event-time watermark, payee warnings.

- ``hold:{hold_id}``: hash ``state``, ``doc`` (the hold as created, JSON), ``due``
  (epoch), ``payee`` and, once warned about, ``warned``; ``state`` is the truth,
  the doc is never rewritten. Settled holds expire ``retain_seconds`` after settling.
- ``holds:due``: sorted set of the *held* holds by due epoch; ``holds:state:{state}``
  the same for the other states (settled ones trimmed ``retain_seconds`` after due).
- ``holds:count``: hash state -> holds in that state; for the settled states,
  holds that ever settled so (the hashes expire, the counts stay).
- ``holds:watermark``: the ledger's clock, only raised: the newest transfer event
  time seen, or with the wall clock ``now - lag`` (see :meth:`HoldLedger.load`).
- ``holds:payee:{account}``: ids of the held holds paying ``account``.
- ``holds:account:{account}``: ids of every hold paying or paid by ``account``, kept
  ``retain_seconds`` plus ``payee_set_seconds`` after its newest hold (a case's holds).
- ``holds:flagged:{account}``: the alert that flagged ``account`` (``PayeeFlag``
  JSON), for ``payee_flag_seconds``; ``holds:pending``: hash hold id -> flag of
  held holds with a flagged payee that no warning went out for yet.

A batch costs one read script (:meth:`HoldLedger.load`) before its events are
produced and one write script (:meth:`HoldLedger.apply`) after. The write creates
holds with ``HSETNX`` (a replayed transfer is not a second hold and does not move
its state) and releases a hold only if it is still ``held``: two workers, or a
batch replayed after a crash, cannot release it twice.

The read script raises the watermark before anything is produced. A human move
(:meth:`HoldLedger.move`) watches it and refuses to revoke or freeze a hold due by
it: a release of that hold may already be on its way to the topic, and it must
not go out for a hold the ledger then records as frozen.
"""

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import get_args

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from antifraud import outbox
from antifraud.audit.models import AuditEntry, Change
from antifraud.audit.service import AuditLog
from antifraud.holds.models import (
    Actor, Hold, HoldEvent, HoldState, IllegalTransition, PayeeFlag, PayeeFlagged, transition,
)
from antifraud.holds.policy import BatchPlan, LedgerView
from antifraud.thresholds import HoldThresholds
from streams import topics

WATERMARK = "holds:watermark"
DUE = "holds:due"
STATE_INDEX = "holds:state:"
COUNTS = "holds:count"
PAYEE = "holds:payee:"
ACCOUNT = "holds:account:"
FLAGGED = "holds:flagged:"
PENDING = "holds:pending"
STATES: tuple[HoldState, ...] = get_args(HoldState)
SETTLED: tuple[HoldState, ...] = ("released", "revoked", "returned")


def index_key(state: HoldState) -> str:
    """The sorted set (by due epoch) of the holds in ``state``."""
    return DUE if state == "held" else STATE_INDEX + state


def hold_key(hold_id: str) -> str:
    return "hold:" + hold_id


class UnknownHold(LookupError):
    """No hold with this id in the ledger (never created, or settled longer ago than kept)."""

    def __init__(self, hold_id: str) -> None:
        self.hold_id = hold_id
        super().__init__(f"no hold {hold_id} in the ledger")


# ARGV[1] the batch's newest epoch ('' on a tick without a clock of its own), ARGV[2]
# max holds released or warned about, ARGV[3] the batch's hold ids (space-separated).
# Raises the watermark. Returns {stored watermark or '', the ids that exist
# (space-separated), docs of held holds due by the watermark ('\n'-separated),
# pending warnings as lines "id\tflag\tdoc" (doc empty when no longer held)}.
_LOAD = f"""
local stored = redis.call('GET', '{WATERMARK}')
local watermark = stored or '0'
if ARGV[1] ~= '' and (not stored or tonumber(ARGV[1]) > tonumber(stored)) then
  redis.call('SET', '{WATERMARK}', ARGV[1])
  watermark = ARGV[1]
end
local existing = {{}}
for id in string.gmatch(ARGV[3], '%S+') do
  if redis.call('EXISTS', 'hold:' .. id) == 1 then existing[#existing + 1] = id end
end
local due = {{}}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', '{DUE}', '-inf', watermark, 'LIMIT', 0, tonumber(ARGV[2]))) do
  local hold = redis.call('HMGET', 'hold:' .. id, 'state', 'doc')
  if hold[1] == 'held' then due[#due + 1] = hold[2] end
end
local pending = {{}}
local flags = redis.call('HGETALL', '{PENDING}')
for i = 1, math.min(#flags, 2 * tonumber(ARGV[2])), 2 do
  local hold = redis.call('HMGET', 'hold:' .. flags[i], 'state', 'doc')
  pending[#pending + 1] = flags[i] .. '\\t' .. flags[i + 1] .. '\\t' .. (hold[1] == 'held' and hold[2] or '')
end
return {{stored or '', table.concat(existing, ' '), table.concat(due, '\\n'), table.concat(pending, '\\n')}}
"""

# ARGV[1] epoch before which settled holds leave their index, ARGV[2] retain seconds,
# ARGV[3] lines "hold_id due_epoch payee payer doc" to create, ARGV[4] hold ids to release,
# ARGV[5] hold ids warned about, ARGV[6] pending hold ids settled, ARGV[7] seconds a
# payee's set of held holds lives. Returns how many releases were refused because
# the hold was no longer held.
_APPLY = f"""
for id, due, payee, payer, doc in string.gmatch(ARGV[3], '(%S+) (%S+) (%S+) (%S+) ([^\\n]+)') do
  local key = 'hold:' .. id
  for _, account in ipairs({{payee, payer}}) do
    redis.call('SADD', '{ACCOUNT}' .. account, id)
    redis.call('EXPIRE', '{ACCOUNT}' .. account, tonumber(ARGV[2]) + tonumber(ARGV[7]))
  end
  if redis.call('HSETNX', key, 'state', 'held') == 1 then
    redis.call('HSET', key, 'doc', doc, 'due', due, 'payee', payee)
    redis.call('ZADD', '{DUE}', due, id)
    redis.call('HINCRBY', '{COUNTS}', 'held', 1)
    redis.call('SADD', '{PAYEE}' .. payee, id)
    redis.call('EXPIRE', '{PAYEE}' .. payee, tonumber(ARGV[7]))
    local flag = redis.call('GET', '{FLAGGED}' .. payee)
    if flag then redis.call('HSETNX', '{PENDING}', id, flag) end
  end
end
for id in string.gmatch(ARGV[5], '%S+') do
  if redis.call('EXISTS', 'hold:' .. id) == 1 then redis.call('HSET', 'hold:' .. id, 'warned', 1) end
end
for id in string.gmatch(ARGV[6], '%S+') do redis.call('HDEL', '{PENDING}', id) end
local refused = 0
for id in string.gmatch(ARGV[4], '%S+') do
  local key = 'hold:' .. id
  local hold = redis.call('HMGET', key, 'state', 'due', 'payee')
  if hold[1] == 'held' then
    redis.call('HSET', key, 'state', 'released')
    redis.call('ZREM', '{DUE}', id)
    redis.call('ZADD', '{STATE_INDEX}released', hold[2], id)
    redis.call('HINCRBY', '{COUNTS}', 'held', -1)
    redis.call('HINCRBY', '{COUNTS}', 'released', 1)
    redis.call('SREM', '{PAYEE}' .. hold[3], id)
    redis.call('HDEL', '{PENDING}', id)
    redis.call('EXPIRE', key, tonumber(ARGV[2]))
  else
    refused = refused + 1
  end
end
for _, state in ipairs({{{", ".join(repr(s) for s in SETTLED)}}}) do
  redis.call('ZREMRANGEBYSCORE', '{STATE_INDEX}' .. state, '-inf', '(' .. ARGV[1])
end
return refused
"""

# ARGV[1] seconds a flag lives, then pairs (account, flag JSON). Remembers each flag
# for holds made later, and queues a warning for every held hold paying the account
# that was not warned about yet.
_FLAG = f"""
for i = 2, #ARGV, 2 do
  local account, flag = ARGV[i], ARGV[i + 1]
  redis.call('SET', '{FLAGGED}' .. account, flag, 'EX', tonumber(ARGV[1]))
  for _, id in ipairs(redis.call('SMEMBERS', '{PAYEE}' .. account)) do
    local hold = redis.call('HMGET', 'hold:' .. id, 'state', 'warned')
    if hold[1] == 'held' and not hold[2] then redis.call('HSETNX', '{PENDING}', id, flag) end
  end
end
return 0
"""


def _epoch(at: datetime) -> str:
    return repr(at.timestamp())


def _time(epoch: bytes | str | float) -> datetime:
    return datetime.fromtimestamp(float(epoch), timezone.utc)


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _pending(lines: str) -> tuple[tuple[str, Hold | None, PayeeFlag], ...]:
    pending = []
    for line in filter(None, lines.split("\n")):
        hold_id, flag, doc = line.split("\t", 2)
        pending.append((hold_id, Hold.model_validate_json(doc) if doc else None, PayeeFlag.model_validate_json(flag)))
    return tuple(pending)


class HoldLedger:
    def __init__(
        self, redis: Redis, *, max_releases_per_batch: int, retain_seconds: int, payee_set_seconds: int,
        payee_flag_seconds: int,
    ) -> None:
        self.redis = redis
        self.max_releases_per_batch = max_releases_per_batch
        self.retain_seconds = retain_seconds
        self.payee_set_seconds = payee_set_seconds
        self.payee_flag_seconds = payee_flag_seconds
        self.audit = AuditLog(redis)
        self._load = redis.register_script(_LOAD)
        self._apply = redis.register_script(_APPLY)
        self._flag = redis.register_script(_FLAG)

    @classmethod
    def configured(cls, redis: Redis, limits: HoldThresholds) -> "HoldLedger":
        return cls(redis, max_releases_per_batch=limits.max_releases_per_batch,
                   retain_seconds=limits.retain_days * 86400, payee_set_seconds=int(2 * limits.period_hours * 3600),
                   payee_flag_seconds=int(limits.payee_flag_hours * 3600))

    # -- the worker's side: batches and ticks -------------------------------------------------

    async def load(self, hold_ids: Sequence[str], newest: datetime | None) -> LedgerView:
        """Raise the watermark to ``newest`` (None: leave it) and read what a batch needs: which of its holds
        exist, the held holds due by the watermark and the pending payee warnings (at most
        ``max_releases_per_batch`` of each; the next batch or tick takes the rest)."""
        stored, existing, due, pending = await self._load(
            args=["" if newest is None else _epoch(newest), self.max_releases_per_batch,
                  " ".join(sorted(set(hold_ids)))]
        )
        watermark = max(filter(None, [newest, _time(stored) if stored else None]), default=_time(0))
        return LedgerView(
            watermark=watermark,
            existing=frozenset(i.decode() for i in existing.split()),
            due=tuple(Hold.model_validate_json(doc) for doc in filter(None, _text(due).split("\n"))),
            pending=_pending(_text(pending)),
        )

    async def apply(self, plan: BatchPlan, watermark: datetime) -> int:
        """Create the plan's holds, release its due ones, settle its warnings; returns the releases
        refused because the hold had already left ``held`` (another worker or an earlier try got there).

        1. Append the plan's moves and warnings to the audit trail (one transaction; ids already
           recorded are skipped, so a batch replayed after a crash adds nothing).
        2. Write the ledger (one script).
        Auditing first is what keeps the trail whole: after 2 a replay plans nothing, so a record
        not appended by then would never be.
        """
        await self.audit.append_many([_audit_entry(event) for event in plan.events])
        created = "\n".join(
            f"{h.hold_id} {_epoch(h.due_at)} {h.payee_account} {h.payer_account} {h.model_dump_json()}"
            for h in plan.created
        )
        return int(await self._apply(args=[
            repr(watermark.timestamp() - self.retain_seconds), self.retain_seconds, created, " ".join(plan.released),
            " ".join(plan.warned), " ".join(plan.drained), self.payee_set_seconds,
        ]))

    async def flag(self, flags: Mapping[str, PayeeFlag]) -> None:
        """Remember flagged accounts and queue warnings for the held holds paying them (one script)."""
        if flags:
            pairs = [part for account, flag in sorted(flags.items()) for part in (account, flag.model_dump_json())]
            await self._flag(args=[self.payee_flag_seconds, *pairs])

    # -- reading ---------------------------------------------------------------------------------

    async def get(self, hold_id: str) -> Hold | None:
        state, doc = await self.redis.hmget(hold_key(hold_id), "state", "doc")
        return _hold(state, doc)

    async def states(self, hold_ids: Iterable[str]) -> dict[str, Hold]:
        """The holds among ``hold_ids`` that the ledger has, with their state (one round trip)."""
        ids = list(dict.fromkeys(hold_ids))
        pipe = self.redis.pipeline(transaction=False)
        for hold_id in ids:
            pipe.hmget(hold_key(hold_id), "state", "doc")
        found = {}
        for hold_id, (state, doc) in zip(ids, await pipe.execute()):
            if (hold := _hold(state, doc)) is not None:
                found[hold_id] = hold
        return found

    async def in_state(self, state: HoldState, *, limit: int, offset: int = 0) -> list[Hold]:
        """Holds in ``state``, soonest due first."""
        ids = await self.redis.zrangebyscore(index_key(state), "-inf", "+inf", start=offset, num=limit)
        found = await self.states(i.decode() for i in ids)
        return [hold for hold in found.values() if hold.state == state]

    async def of_accounts(self, accounts: Iterable[str]) -> list[Hold]:
        """The holds paying or paid by any of ``accounts`` that the ledger still has, oldest first."""
        pipe = self.redis.pipeline(transaction=False)
        for account in sorted(set(accounts)):
            pipe.smembers(ACCOUNT + account)
        ids = sorted({i.decode() for members in await pipe.execute() for i in members})
        return sorted((await self.states(ids)).values(), key=lambda h: (h.created_at, h.hold_id))

    async def watermark(self) -> datetime | None:
        stored = await self.redis.get(WATERMARK)
        return _time(stored) if stored else None

    async def counts(self) -> dict[str, int]:
        """Holds by state: held and frozen now; released, revoked and returned ever."""
        stored = await self.redis.hgetall(COUNTS)
        return {state: int(stored.get(state.encode(), 0)) for state in STATES}

    async def due_within(self, seconds: float, since: datetime | None = None) -> int:
        """Held holds due by ``since`` (default: the watermark) plus ``seconds``; with ``since`` = now and
        ``seconds`` = 0, the holds overdue by the wall clock."""
        start = since or await self.watermark()
        if start is None:
            return 0
        return int(await self.redis.zcount(DUE, "-inf", start.timestamp() + seconds))

    # -- human moves -----------------------------------------------------------------------------

    async def move(
        self, audit: AuditLog, hold_id: str, to: HoldState, *, actor: Actor, by: str, reason: str, at: datetime,
    ) -> HoldEvent:
        """Revoke, freeze, release or return a hold by a person's action; state, audit record and the
        event on the holds topic (through the outbox) are written in one transaction.

        1. Watch the hold and the watermark; read both.
        2. Refuse (:class:`UnknownHold`, :class:`IllegalTransition`) an unknown hold, a move the state
           machine does not allow, and revoking or freezing a hold the watermark has reached (its
           release may be planned already).
        3. MULTI: the new state and its indexes, the audit record, the event queued for the topic; EXEC.
           A watched key that moved meanwhile starts again at 1.
        """
        key = hold_key(hold_id)
        decided: list[HoldEvent] = []

        async def decide(pipe: Pipeline) -> Change:
            state, doc, due, payee = await pipe.hmget(key, "state", "doc", "due", "payee")
            hold = _hold(state, doc)
            if hold is None:
                raise UnknownHold(hold_id)
            stored = await pipe.get(WATERMARK)
            if hold.state == "held" and stored is not None and float(due) <= float(stored):
                raise IllegalTransition(hold_id, hold.state, to, actor,
                                        why=f"due {hold.due_at.isoformat()}, the ledger has reached "
                                            f"{_time(stored).isoformat()} and may be releasing it")
            event = transition(hold, to, at=at, actor=actor, reason=reason, by=by)
            decided[:] = [event]

            def write(tx: Pipeline) -> None:
                tx.hset(key, "state", to)
                tx.zrem(index_key(hold.state), hold_id)
                tx.zadd(index_key(to), {hold_id: float(due)})
                tx.hincrby(COUNTS, hold.state, -1)
                tx.hincrby(COUNTS, to, 1)
                if hold.state == "held":
                    tx.srem(PAYEE + _text(payee), hold_id)
                    tx.hdel(PENDING, hold_id)
                if to in SETTLED:
                    tx.expire(key, self.retain_seconds)
                outbox.queue(tx, topics.HOLDS, hold.payer_account, event.model_dump_json())

            return Change(before={"state": hold.state}, after={"state": to, "reason": reason, "by": by},
                          write=write, event_id=event.transition_id)

        await audit.transact(actor=by, action=f"hold.{to}", subject=f"hold:{hold_id}", watch=[key, WATERMARK],
                             decide=decide)
        return decided[0]


def _audit_entry(event: HoldEvent | PayeeFlagged) -> AuditEntry:
    """The audit record of a move or warning the worker made (a person's moves are audited in ``move``)."""
    if isinstance(event, PayeeFlagged):
        return AuditEntry("system", "hold.payee_flagged", f"hold:{event.hold_id}",
                          after={"state": "held", "flagged_by": event.flag.detector, "alert_id": event.flag.alert_id},
                          event_id=event.warning_id, at=event.at)
    return AuditEntry(event.actor, f"hold.{event.to_state}", f"hold:{event.hold_id}",
                      before=None if event.from_state is None else {"state": event.from_state},
                      after={"state": event.to_state, "reason": event.reason}, event_id=event.transition_id,
                      at=event.at)


def _hold(state: bytes | None, doc: bytes | None) -> Hold | None:
    if state is None or doc is None:
        return None
    return Hold.model_validate_json(doc).model_copy(update={"state": state.decode()})
