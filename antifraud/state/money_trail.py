"""The index of outgoing transfers per account, for following a fraud victim's money.

``trail:out:{account}``: sorted set of the account's outgoing transfers by event
epoch, member ``"{event_id}\\x1f{payee}\\x1f{amount_fen}"``. A batch is written
with one pipeline: per payer, the transfers (``ZADD``: writing one twice changes
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


class TransferIndex:
    def __init__(self, redis: Redis, *, index_seconds: float) -> None:
        self.redis = redis
        self.index_seconds = index_seconds

    @classmethod
    def configured(cls, redis: Redis, limits: MoneyTrailThresholds) -> "TransferIndex":
        return cls(redis, index_seconds=limits.index_hours * 3600)

    async def record(self, transfers: Sequence[BankTransfer]) -> None:
        newest: dict[str, float] = {}
        pipe = self.redis.pipeline(transaction=False)
        for t in transfers:
            at = t.event_time.timestamp()
            pipe.zadd(PREFIX + t.payer_account, {_SEP.join((t.event_id, t.payee_account, str(t.amount_fen))): at})
            newest[t.payer_account] = max(at, newest.get(t.payer_account, at))
        for account, at in newest.items():
            pipe.zremrangebyscore(PREFIX + account, "-inf", f"({at - self.index_seconds!r}")
            pipe.expire(PREFIX + account, int(self.index_seconds))
        if newest:
            await pipe.execute()

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
