"""The index of outgoing transfers per account, for following a fraud victim's money.

``trail:out:{account}``: sorted set of the account's outgoing transfers by event epoch (facts the
payer's owner adds, ``antifraud/state/store.py``), member
``"{event_id}\\x1f{payee}\\x1f{amount_fen}\\x1f{held}"``, ``held`` being ``1`` for a transfer the 24-hour
ATM hold keeps back. Members older than ``index_hours`` before the account's newest are trimmed, and
the key expires ``index_hours`` after its last write. Reading the outflows of any number of accounts
is one pipeline (:class:`TransferIndex`, for the CLI, the web app and case follow-ups).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis

from antifraud.state.keys import TRAIL
from antifraud.thresholds import MoneyTrailThresholds
from detectors.money_trail import Transfer

_SEP = "\x1f"


@dataclass(frozen=True)
class TrailEntry:
    transfer: Transfer
    held: bool
    """An ATM transfer to another name: its funds wait 24 hours at the bank."""


class TrailCodec:
    def encode(self, entry: TrailEntry) -> str:
        t = entry.transfer
        return _SEP.join((t.event_id, t.payee, str(t.amount_fen), "1" if entry.held else "0"))

    def decode(self, key: str, member: str, at: float) -> TrailEntry:
        return _entry(key, member, at)


def _entry(payer: str, member: str, at: float) -> TrailEntry:
    event_id, payee, amount, held = member.rsplit(_SEP, 3)
    return TrailEntry(Transfer(event_id=event_id, payer=payer, payee=payee, amount_fen=int(amount), at=at), held == "1")


class TransferIndex:
    """Reads the index (the stream writes it)."""

    def __init__(self, redis: Redis, *, index_seconds: float) -> None:
        self.redis = redis
        self.index_seconds = index_seconds

    @classmethod
    def configured(cls, redis: Redis, limits: MoneyTrailThresholds) -> "TransferIndex":
        return cls(redis, index_seconds=limits.index_hours * 3600)

    async def outflows(self, accounts: Iterable[str], since: datetime, until: datetime) -> dict[str, list[Transfer]]:
        """Every account's outgoing transfers between ``since`` and ``until`` (inclusive), oldest first;
        an account without any maps to an empty list."""
        keys = sorted(set(accounts))
        pipe = self.redis.pipeline(transaction=False)
        for account in keys:
            pipe.zrangebyscore(TRAIL.key(account), since.timestamp(), until.timestamp(), withscores=True)
        found = {}
        for account, rows in zip(keys, await pipe.execute() if keys else []):
            found[account] = [_entry(account, member.decode(), at).transfer for member, at in rows]
        return found
