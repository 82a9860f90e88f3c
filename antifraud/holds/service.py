"""The hold ledger in Redis: holds with their state, indexes, and the ledger's clock.

- ``hold:{hold_id}``: hash ``state``, ``doc`` (the hold as created, JSON) and ``due``
  (epoch); ``state`` is the truth, the doc is never rewritten. Settled holds expire
  ``retain_seconds`` after settling.
- ``holds:due``: sorted set of the *held* holds by due epoch; ``holds:state:{state}``
  the same for the other states (released ones trimmed ``retain_seconds`` after due).
- ``holds:count``: hash state -> holds in that state; for the settled states,
  holds that ever settled so (the hashes expire, the counts stay).
- ``holds:watermark``: the ledger's clock, only raised: the bound of the newest
  batch the stream took, or with the wall clock ``now - lag``.
- ``holds:account:{account}``: ids of every hold paying or paid by ``account``, kept
  ``retain_seconds`` plus ``payee_set_seconds`` after its newest hold (a case's holds).

The stream's hold stage (``streams/stages.py``) raises the clock and reads the
holds a batch will move in one script (:meth:`HoldLedger.advance`) before
anything is produced, and queues the moves into the checkpoint's transaction
(:meth:`HoldLedger.queue_moves`): a hold is created only once (a replayed
transfer is not a second hold) and released or frozen only while still
``held``. A human move (:meth:`HoldLedger.move`) watches the clock and refuses
to revoke or freeze a hold due by it: a release of that hold may already be on
its way to the topic, and it must not go out for a hold the ledger then records
as frozen.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any, get_args

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from antifraud import outbox, topics
from antifraud.audit.models import AuditEntry, Change
from antifraud.audit.service import AuditLog
from antifraud.holds.models import Actor, Hold, HoldEvent, HoldState, IllegalTransition, PayeeFlagged, transition
from antifraud.refusals import Unknown
from antifraud.state import keys as families
from antifraud.state.replies import text, texts
from antifraud.state.store import Lua
from antifraud.thresholds import HoldThresholds

WATERMARK = families.HOLDS_WATERMARK.key()
DUE = families.HOLDS_DUE.key()
STATE_INDEX = families.HOLDS_IN_STATE.prefix
COUNTS = families.HOLDS_COUNT.key()
ACCOUNT = families.HOLDS_BY_ACCOUNT.prefix
STATES: tuple[HoldState, ...] = get_args(HoldState)
SETTLED: tuple[HoldState, ...] = ("released", "revoked", "returned")


def index_key(state: HoldState) -> str:
    """The sorted set (by due epoch) of the holds in ``state``."""
    return DUE if state == "held" else STATE_INDEX + state


def hold_key(hold_id: str) -> str:
    return families.HOLD.key(hold_id)


class UnknownHold(Unknown, LookupError):
    """No hold with this id in the ledger (never created, or settled longer ago than kept)."""

    def __init__(self, hold_id: str) -> None:
        self.hold_id = hold_id
        super().__init__("hold_unknown", f"no hold {hold_id} in the ledger", hold=hold_id)


# KEYS[1] the watermark, then the holds' keys; ARGV[1] an epoch. Raises the watermark to the epoch
# (never lowers it) and returns the stored watermark and, per hold, "state\tdoc" ('' when unknown).
_ADVANCE = Lua("""
local stored = redis.call('GET', KEYS[1])
if not stored or tonumber(ARGV[1]) > tonumber(stored) then
  redis.call('SET', KEYS[1], ARGV[1])
  stored = ARGV[1]
end
local out = {stored}
for k = 2, #KEYS do
  local hold = redis.call('HMGET', KEYS[k], 'state', 'doc')
  out[k] = hold[1] and (hold[1] .. '\t' .. hold[2]) or ''
end
return out
""")

# KEYS[1] the held index, [2] the counts, [3] the released index, [4] the frozen index, then per hold
# created: its key, the payee's and the payer's account index; then per hold released or frozen: its
# key. ARGV[1] retain seconds, ARGV[2] account index seconds, ARGV[3] epoch before which settled holds
# leave their index, ARGV[4] holds created, ARGV[5] released, ARGV[6] frozen, then per hold created
# its due epoch and doc, per hold released or frozen its due epoch. A hold is created only once (a
# replayed transfer is no second hold) and released or frozen only while held.
_APPLY = Lua(f"""
local retain, index_s, cut = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local created, released, frozen = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local k, a = 5, 7
for i = 1, created do
  local key, payee, payer = KEYS[k], KEYS[k + 1], KEYS[k + 2]
  local due, doc = ARGV[a], ARGV[a + 1]
  local id = string.sub(key, {len("hold:") + 1})
  for _, account in ipairs({{payee, payer}}) do
    redis.call('SADD', account, id)
    redis.call('EXPIRE', account, index_s)
  end
  if redis.call('HSETNX', key, 'state', 'held') == 1 then
    redis.call('HSET', key, 'doc', doc, 'due', due)
    redis.call('ZADD', KEYS[1], due, id)
    redis.call('HINCRBY', KEYS[2], 'held', 1)
  end
  k, a = k + 3, a + 2
end
for i = 1, released + frozen do
  local key, due = KEYS[k], ARGV[a]
  local id = string.sub(key, {len("hold:") + 1})
  local to = i <= released and 'released' or 'frozen'
  if redis.call('HGET', key, 'state') == 'held' then
    redis.call('HSET', key, 'state', to)
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', to == 'released' and KEYS[3] or KEYS[4], due, id)
    redis.call('HINCRBY', KEYS[2], 'held', -1)
    redis.call('HINCRBY', KEYS[2], to, 1)
    if to == 'released' then redis.call('EXPIRE', key, retain) end
  end
  k, a = k + 1, a + 1
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. cut)
return 0
""")


def _epoch(at: datetime) -> str:
    return repr(at.timestamp())


def _time(epoch: bytes | str | float) -> datetime:
    return datetime.fromtimestamp(float(epoch), timezone.utc)


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class HoldLedger:
    def __init__(
        self,
        redis: Redis,
        *,
        retain_seconds: int,
        payee_set_seconds: int,
        payee_flag_seconds: int,
    ) -> None:
        self.redis = redis
        self.retain_seconds = retain_seconds
        self.payee_set_seconds = payee_set_seconds
        self.payee_flag_seconds = payee_flag_seconds

    @classmethod
    def configured(cls, redis: Redis, limits: HoldThresholds) -> "HoldLedger":
        return cls(
            redis,
            retain_seconds=limits.retain_days * 86400,
            payee_set_seconds=int(2 * limits.period_hours * 3600),
            payee_flag_seconds=int(limits.payee_flag_hours * 3600),
        )

    # -- the worker's side ------------------------------------------------------------------------

    async def advance(self, at: datetime, hold_ids: Sequence[str] = ()) -> tuple[datetime, dict[str, Hold]]:
        """Raise the ledger's clock to ``at`` (a person's revoke or freeze of a hold due by it is refused
        from now on: its release may be on its way) and read ``hold_ids``' holds, in one script call."""
        ids = list(dict.fromkeys(hold_ids))
        reply = await _ADVANCE(self.redis, [WATERMARK, *(hold_key(i) for i in ids)], [_epoch(at)])
        holds = {}
        for hold_id, raw in zip(ids, reply[1:]):
            if raw:
                state, doc = _text(raw).split("\t", 1)
                holds[hold_id] = Hold.model_validate_json(doc).model_copy(update={"state": state})
        return _time(reply[0]), holds

    def queue_moves(
        self,
        pipe: Pipeline,
        created: Sequence[Hold],
        released: Sequence[Hold],
        frozen: Sequence[Hold],
        watermark: datetime,
    ) -> None:
        """Queue a batch's automatic moves into the checkpoint's transaction (one script): create the new
        holds (once), release and freeze the others (only while still held)."""
        if not (created or released or frozen):
            return
        keys = [DUE, COUNTS, index_key("released"), index_key("frozen")]
        args: list[str | float | int] = [
            self.retain_seconds,
            self.retain_seconds + self.payee_set_seconds,
            repr(watermark.timestamp() - self.retain_seconds),
            len(created),
            len(released),
            len(frozen),
        ]
        for hold in created:
            keys += [hold_key(hold.hold_id), ACCOUNT + hold.payee_account, ACCOUNT + hold.payer_account]
            args += [_epoch(hold.due_at), hold.model_dump_json()]
        for hold in [*released, *frozen]:
            keys.append(hold_key(hold.hold_id))
            args.append(_epoch(hold.due_at))
        _APPLY.queue(pipe, keys, args)

    async def held_due(self, now: datetime, limit: int) -> list[Hold]:
        """Held holds due by ``now``, soonest first (the wall-clock release's work)."""
        ids = await self.redis.zrangebyscore(DUE, "-inf", now.timestamp(), start=0, num=limit)
        found = await self.states(texts(ids))
        return [hold for hold in found.values() if hold.state == "held"]

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
        found = await self.states(texts(ids))
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
        self,
        audit: AuditLog,
        hold_id: str,
        to: HoldState,
        *,
        actor: Actor,
        by: str,
        reason: str,
        at: datetime,
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
            state, doc, due = await pipe.hmget(key, "state", "doc", "due")
            hold = _hold(state, doc)
            if hold is None:
                raise UnknownHold(hold_id)
            stored = await pipe.get(WATERMARK)
            if hold.state == "held" and stored is not None and float(text(due)) <= float(text(stored)):
                raise IllegalTransition(
                    hold_id,
                    hold.state,
                    to,
                    actor,
                    why=f"due {hold.due_at.isoformat()}, the ledger has reached "
                    f"{_time(stored).isoformat()} and may be releasing it",
                    code="hold_due",
                    due=hold.due_at.isoformat(),
                )
            event = transition(hold, to, at=at, actor=actor, reason=reason, by=by)
            decided[:] = [event]

            def write(tx: Pipeline) -> None:
                tx.hset(key, "state", to)
                tx.zrem(index_key(hold.state), hold_id)
                tx.zadd(index_key(to), {hold_id: float(text(due))})
                tx.hincrby(COUNTS, hold.state, -1)
                tx.hincrby(COUNTS, to, 1)
                if to in SETTLED:
                    tx.expire(key, self.retain_seconds)
                outbox.queue(tx, topics.HOLDS, hold.payer_account, event.model_dump_json())

            return Change(
                before={"state": hold.state},
                after={"state": to, "reason": reason, "by": by},
                write=write,
                event_id=event.transition_id,
            )

        await audit.transact(
            actor=by, action=f"hold.{to}", subject=f"hold:{hold_id}", watch=[key, WATERMARK], decide=decide
        )
        return decided[0]


def audit_entry(event: HoldEvent | PayeeFlagged) -> AuditEntry:
    """The audit record of a move or warning the worker made (a person's moves are audited in ``move``)."""
    if isinstance(event, PayeeFlagged):
        return AuditEntry(
            "system",
            "hold.payee_flagged",
            f"hold:{event.hold_id}",
            after={"state": "held", "flagged_by": event.flag.detector, "alert_id": event.flag.alert_id},
            event_id=event.warning_id,
            at=event.at,
        )
    return AuditEntry(
        event.actor,
        f"hold.{event.to_state}",
        f"hold:{event.hold_id}",
        before=None if event.from_state is None else {"state": event.from_state},
        after={"state": event.to_state, "reason": event.reason},
        event_id=event.transition_id,
        at=event.at,
    )


def _hold(state: Any, doc: Any) -> Hold | None:
    """A hold from its hash's ``state`` and ``doc`` replies (None when either is missing)."""
    if state is None or doc is None:
        return None
    return Hold.model_validate_json(doc).model_copy(update={"state": text(state)})
