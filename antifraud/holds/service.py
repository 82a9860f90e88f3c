"""The hold ledger in Redis: holds with their state, the due-time index and the event-time watermark.

- ``hold:{hold_id}``: hash ``state``, ``doc`` (the hold as created, JSON) and ``due``
  (epoch); ``state`` is the truth, the doc is never rewritten. Settled holds expire
  ``retain_seconds`` after settling.
- ``holds:due``: sorted set of the *held* holds by due epoch.
- ``holds:watermark``: the newest transfer event time seen (epoch), only raised.

A batch costs one read script (:meth:`HoldLedger.load`) before its events are
produced and one write script (:meth:`HoldLedger.apply`) after. The write creates
holds with ``HSETNX`` (a replayed transfer is not a second hold and does not move
its state) and releases a hold only if it is still ``held``: two workers, or a
batch replayed after a crash, cannot release it twice.
"""

from collections.abc import Sequence
from datetime import datetime, timezone

from redis.asyncio import Redis

from antifraud.holds.models import Hold
from antifraud.holds.policy import BatchPlan, LedgerView
from antifraud.thresholds import HoldThresholds

WATERMARK = "holds:watermark"
DUE = "holds:due"

# ARGV[1] the batch's newest epoch, ARGV[2] max holds released per batch, ARGV[3]
# the batch's hold ids (space-separated). Returns {stored watermark or '', the ids
# that exist (space-separated), the docs of held holds due by the watermark...}.
_LOAD = f"""
local stored = redis.call('GET', '{WATERMARK}') or ''
local watermark = math.max(tonumber(ARGV[1]), tonumber(stored) or 0)
local existing = {{}}
for id in string.gmatch(ARGV[3], '%S+') do
  if redis.call('EXISTS', 'hold:' .. id) == 1 then existing[#existing + 1] = id end
end
local out = {{stored, table.concat(existing, ' ')}}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', '{DUE}', '-inf', watermark, 'LIMIT', 0, tonumber(ARGV[2]))) do
  local hold = redis.call('HMGET', 'hold:' .. id, 'state', 'doc')
  if hold[1] == 'held' then out[#out + 1] = hold[2] end
end
return out
"""

# ARGV[1] the batch's newest epoch, ARGV[2] retain seconds, ARGV[3] lines
# "hold_id due_epoch doc" to create, ARGV[4] hold ids to release. Returns how
# many releases were refused because the hold was no longer held.
_APPLY = f"""
local stored = redis.call('GET', '{WATERMARK}')
if not stored or tonumber(ARGV[1]) > tonumber(stored) then redis.call('SET', '{WATERMARK}', ARGV[1]) end
for id, due, doc in string.gmatch(ARGV[3], '(%S+) (%S+) ([^\\n]+)') do
  if redis.call('HSETNX', 'hold:' .. id, 'state', 'held') == 1 then
    redis.call('HSET', 'hold:' .. id, 'doc', doc, 'due', due)
    redis.call('ZADD', '{DUE}', due, id)
  end
end
local refused = 0
for id in string.gmatch(ARGV[4], '%S+') do
  local key = 'hold:' .. id
  if redis.call('HGET', key, 'state') == 'held' then
    redis.call('HSET', key, 'state', 'released')
    redis.call('ZREM', '{DUE}', id)
    redis.call('EXPIRE', key, tonumber(ARGV[2]))
  else
    refused = refused + 1
  end
end
return refused
"""


def _epoch(at: datetime) -> str:
    return repr(at.timestamp())


class HoldLedger:
    def __init__(self, redis: Redis, *, max_releases_per_batch: int, retain_seconds: int) -> None:
        self.redis = redis
        self.max_releases_per_batch = max_releases_per_batch
        self.retain_seconds = retain_seconds
        self._load = redis.register_script(_LOAD)
        self._apply = redis.register_script(_APPLY)

    @classmethod
    def configured(cls, redis: Redis, limits: HoldThresholds) -> "HoldLedger":
        return cls(redis, max_releases_per_batch=limits.max_releases_per_batch,
                   retain_seconds=limits.retain_days * 86400)

    async def load(self, hold_ids: Sequence[str], newest: datetime) -> LedgerView:
        """The watermark after a batch whose newest transfer is at ``newest``, which of its holds exist,
        and the held holds due by then (at most ``max_releases_per_batch``; the next batch takes the rest)."""
        stored, existing, *due = await self._load(
            args=[_epoch(newest), self.max_releases_per_batch, " ".join(sorted(set(hold_ids)))]
        )
        watermark = max(newest, datetime.fromtimestamp(float(stored), timezone.utc)) if stored else newest
        return LedgerView(
            watermark=watermark,
            existing=frozenset(i.decode() for i in existing.split()),
            due=tuple(Hold.model_validate_json(doc) for doc in due),
        )

    async def apply(self, plan: BatchPlan, watermark: datetime) -> int:
        """Raise the watermark, create the plan's holds and release its due ones; returns the releases
        refused because the hold had already left ``held`` (another worker or an earlier try got there)."""
        created = "\n".join(f"{h.hold_id} {_epoch(h.due_at)} {h.model_dump_json()}" for h in plan.created)
        return int(await self._apply(
            args=[_epoch(watermark), self.retain_seconds, created, " ".join(plan.released)]
        ))
