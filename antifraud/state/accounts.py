"""The account registry and the bulk openers: what card openings tell the banking stages (facts).

- ``acct:{account}``: the account's opening (``antifraud/state/keys.py``: holder, bank, branch, event id;
  the score is the opening's time), kept for the registry's horizon, so the banking detectors can tell
  a newly opened payee (the sold card a fraud ring uses, DOMAIN.md item 8) from an account in use for
  years.
- ``bulkopener:{id_number}``: when the ID number was first flagged for bulk card opening (one member,
  its earliest time kept), so card trade treats a flagged holder's cards as likely sold from their
  first receipt.

Both are added by the card-opening stage and read by the transfer stages the cross-entity delay later
(``antifraud/state/store.py``).
"""

from typing import cast

from redis.asyncio import Redis

from antifraud.state.keys import OPENED
from detectors.accounts import AccountInfo

_SEP = "\x1f"
FLAGGED = "flagged"
"""The one member of a bulk opener's set."""


class OpenedCodec:
    def encode(self, info: AccountInfo) -> str:
        return _SEP.join((info.holder_id_number, info.bank, info.branch_id, info.event_id))

    def decode(self, key: str, member: str, at: float) -> AccountInfo:
        holder, bank, branch, event_id = member.split(_SEP)
        return AccountInfo(at, holder, bank, branch, event_id)


class FlaggedCodec:
    """A bulk opener's flag: the value is the time it was first flagged."""

    def encode(self, at: float) -> str:
        return FLAGGED

    def decode(self, key: str, member: str, at: float) -> float:
        return at


async def opening(redis: Redis, account: str) -> AccountInfo | None:
    """The account's opening, if the registry knows it (for the pre-transfer check)."""
    rows = cast(list[tuple[bytes, float]], await redis.zrange(OPENED.key(account), -1, -1, withscores=True))
    return OpenedCodec().decode(account, rows[0][0].decode(), float(rows[0][1])) if rows else None
