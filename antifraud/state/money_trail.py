"""The index of outgoing transfers per account, for following a fraud victim's money.

``trail:out:{account}``: sorted set of the account's outgoing transfers by event
epoch, member ``"{event_id}\\x1f{payee}\\x1f{amount_fen}"``. A batch is written
with one script call: per payer, the transfers (``ZADD``: writing one twice changes
nothing), the members older than ``index_hours`` before the payer's newest
transfer trimmed (event time, so a replay keeps the same window) and the key's
expiry renewed (wall clock, so an account that stops paying leaves Redis).
Reading the outflows of any number of accounts is one pipeline too.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime

from redis.asyncio import Redis

from antifraud.events.models import BankTransfer
from antifraud.thresholds import MoneyTrailThresholds
from detectors.money_trail import Transfer

PREFIX = "trail:out:"
_SEP = "\x1f"


# ARGV[1] index seconds, then triples (payer, epoch, member). One script call per batch: a
# pipeline of three commands per transfer cost more in the client than the detectors did.
_RECORD = f"""
local keep = tonumber(ARGV[1])
local newest = {{}}
for i = 2, #ARGV, 3 do
  local key, at = '{PREFIX}' .. ARGV[i], tonumber(ARGV[i + 1])
  redis.call('ZADD', key, at, ARGV[i + 2])
  if not newest[key] or at > newest[key] then newest[key] = at end
end
for key, at in pairs(newest) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (at - keep))
  redis.call('EXPIRE', key, math.floor(keep))
end
return 0
"""


class TransferIndex:
    def __init__(self, redis: Redis, *, index_seconds: float) -> None:
        self.redis = redis
        self.index_seconds = index_seconds
        self._record = redis.register_script(_RECORD)

    @classmethod
    def configured(cls, redis: Redis, limits: MoneyTrailThresholds) -> "TransferIndex":
        return cls(redis, index_seconds=limits.index_hours * 3600)

    async def record(self, transfers: Sequence[BankTransfer]) -> None:
        if not transfers:
            return
        args: list[str | float] = [self.index_seconds]
        for t in transfers:
            args += [t.payer_account, t.event_time.timestamp(), _SEP.join((t.event_id, t.payee_account, str(t.amount_fen)))]
        await self._record(args=args)

    async def outflows(self, accounts: Iterable[str], since: datetime, until: datetime) -> dict[str, list[Transfer]]:
        """Every account's outgoing transfers between ``since`` and ``until`` (inclusive), oldest first;
        an account without any maps to an empty list."""
        keys = sorted(set(accounts))
        pipe = self.redis.pipeline(transaction=False)
        for account in keys:
            pipe.zrangebyscore(PREFIX + account, since.timestamp(), until.timestamp(), withscores=True)
        found = {}
        for account, rows in zip(keys, await pipe.execute() if keys else []):
            found[account] = [_transfer(account, member, at) for member, at in rows]
        return found


def _transfer(payer: str, member: bytes, at: float) -> Transfer:
    event_id, payee, amount = member.decode().rsplit(_SEP, 2)
    return Transfer(event_id=event_id, payer=payer, payee=payee, amount_fen=int(amount), at=at)
