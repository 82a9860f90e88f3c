"""The account registry: which accounts were opened lately, when, by whom, where.

Built from card-opening events so the banking detectors can tell a newly
opened payee (the sold card a fraud ring uses, DOMAIN.md item 8) from an
account in use for years. ``acct:{account}`` holds
``"{epoch}\\x1f{holder id_number}\\x1f{bank}\\x1f{branch_id}\\x1f{event_id}"`` and
expires ``horizon_days`` after it is written, so memory stays bounded by the
openings of the horizon. A batch is read with one ``MGET`` and written with one
pipeline of ``SET ... EX``; the value follows from the event alone, so writing
it twice changes nothing (replay safe).

Read API for other detectors::

    registry = AccountRegistry(redis, horizon_days=365)
    infos = await registry.opened(payee_accounts)          # only accounts the registry knows
    if (info := infos.get(payee)) and info.opened_within(transfer_epoch, days=30): ...

:class:`BulkOpeners` remembers the ID numbers flagged for bulk card opening
(``bulkopener:{id_number}`` -> the epoch of the first alert), so card trade can
treat a flagged holder's cards as likely sold from their first receipt.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from antifraud.events.models import CardOpening

PREFIX = "acct:"
FLAG_PREFIX = "bulkopener:"
DAY = 86400.0
_SEP = "\x1f"


@dataclass(frozen=True)
class AccountInfo:
    """An account's opening: when (epoch seconds), the holder's ID number, the bank and branch, the event."""

    opened_at: float
    holder_id_number: str
    bank: str
    branch_id: str
    event_id: str

    def opened_within(self, at: float, days: float) -> bool:
        """Opened at or before ``at`` and at most ``days`` before it: "newly opened" at that time."""
        return self.opened_at <= at <= self.opened_at + days * DAY

    def age_days(self, at: float) -> float:
        return (at - self.opened_at) / DAY


def info_of(opening: CardOpening) -> AccountInfo:
    return AccountInfo(opening.event_time.timestamp(), opening.id_number, opening.bank, opening.branch_id,
                       opening.event_id)


def _encode(info: AccountInfo) -> str:
    return _SEP.join([repr(info.opened_at), info.holder_id_number, info.bank, info.branch_id, info.event_id])


def decode_info(raw: bytes) -> AccountInfo:
    at, holder, bank, branch, event_id = raw.decode().split(_SEP, 4)
    return AccountInfo(float(at), holder, bank, branch, event_id)


class AccountRegistry:
    """Account -> :class:`AccountInfo` in Redis, bounded by ``horizon_days``."""

    def __init__(self, redis: Redis, *, horizon_days: int) -> None:
        self.redis = redis
        self.ttl_seconds = int(horizon_days * DAY)

    async def opened(self, accounts: Iterable[str]) -> dict[str, AccountInfo]:
        """The known openings of ``accounts`` (one round trip); unknown accounts are left out."""
        keys = sorted(set(accounts))
        if not keys:
            return {}
        rows = await self.redis.mget([PREFIX + account for account in keys])
        return {account: decode_info(raw) for account, raw in zip(keys, rows) if raw is not None}

    async def record(self, openings: Sequence[CardOpening]) -> None:
        """Write the batch's openings in one pipeline; repeating it is harmless."""
        if not openings:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for opening in openings:
                pipe.set(PREFIX + opening.account, _encode(info_of(opening)), ex=self.ttl_seconds)
            await pipe.execute()


class BulkOpeners:
    """ID number -> when it was first flagged for bulk card opening, in Redis for ``ttl_days``.

    The first flag written is kept (``SET NX``) and its expiry refreshed on every flag, so a
    replayed or later alert never moves the time a receipt is judged against (replay safe).
    """

    def __init__(self, redis: Redis, *, ttl_days: int) -> None:
        self.redis = redis
        self.ttl_seconds = int(ttl_days * DAY)

    async def flagged(self, id_numbers: Iterable[str]) -> dict[str, float]:
        """The flag times of ``id_numbers`` (one round trip); unflagged IDs are left out."""
        keys = sorted(set(id_numbers))
        if not keys:
            return {}
        rows = await self.redis.mget([FLAG_PREFIX + id_number for id_number in keys])
        return {id_number: float(raw) for id_number, raw in zip(keys, rows) if raw is not None}

    async def flag(self, first_flagged: Mapping[str, float]) -> None:
        """Flag the IDs not yet flagged, refresh every expiry, in one pipeline."""
        if not first_flagged:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for id_number, at in first_flagged.items():
                pipe.set(FLAG_PREFIX + id_number, repr(at), nx=True, ex=self.ttl_seconds)
                pipe.expire(FLAG_PREFIX + id_number, self.ttl_seconds)
            await pipe.execute()
