"""Redis state of the transfer-risk detector: each account's own side (owned) and what other entities'
events say about accounts and phones (facts).

- ``tr:outflows:{account}`` and ``tr:quiet:{account}``: the account's outflows within ``history_days`` (at most
  ``max_outflows_kept``) and until when it gets no new mule alert, as a log (``antifraud/state/kept.py``).
- ``tr:in:{account}`` (facts): inflows of at least ``min_amount_fen``, added by each payer's owner.
- ``flag:{account}`` (facts): alerts on the account (transfer risk, mule, card trade), with until when
  each makes it a suspect.
- ``iv:reached:{phone}`` (facts): calls of listed or flagged numbers to the phone (the fraud-number
  stage adds them).
- ``blacklist:accounts``: the credit blacklist's accounts (read only here).

Keys expire, so memory stays bounded; the formats are in ``antifraud/state/keys.py``.
"""

from collections.abc import Iterable

from redis.asyncio import Redis

from antifraud.state.kept import KeptLog
from antifraud.state.keys import BLACKLIST, TRANSFER_OUT, TRANSFER_QUIET
from antifraud.thresholds import TransferRiskThresholds
from detectors.transfer_risk import Account, Call, Flag, Flow, add_outflow

_SEP = "\x1f"


class OutflowCodec:
    """An outflow as stored: ``event_id payee amount channel own`` (``antifraud.state.kept``)."""

    def at(self, flow: Flow) -> float:
        return flow.at

    def encode(self, flow: Flow) -> str:
        return _SEP.join((flow.event_id, flow.other, str(flow.amount_fen), flow.channel, str(int(flow.own))))

    def decode(self, member: str, at: float) -> Flow:
        event_id, other, amount, channel, own = member.split(_SEP)
        return Flow(event_id, at, other, int(amount), channel, own == "1")


_OUTFLOW = OutflowCodec()


class InflowCodec:
    """``tr:in`` members: the payment as the payee sees it (``other``: the payer), stored as an outflow is."""

    def encode(self, flow: Flow) -> str:
        return _OUTFLOW.encode(flow)

    def decode(self, key: str, member: str, at: float) -> Flow:
        return _OUTFLOW.decode(member, at)


class FlagCodec:
    def encode(self, flag: Flag) -> str:
        return _SEP.join((flag.alert_id, flag.detector, repr(flag.score), repr(flag.until)))

    def decode(self, key: str, member: str, at: float) -> Flag:
        alert_id, detector, score, until = member.split(_SEP)
        return Flag(alert_id, detector, float(score), at, float(until))


class CallCodec:
    """``iv:reached`` members: the number, the call's duration and its event id (unique per call)."""

    def encode(self, call: Call) -> str:
        return _SEP.join((call.number, str(call.duration_s), call.event_id))

    def decode(self, key: str, member: str, at: float) -> Call:
        number, duration, event_id = member.split(_SEP)
        return Call(number, at, int(duration), event_id)


def account_codec(limits: TransferRiskThresholds) -> KeptLog[Flow, Account]:
    """Accounts' own sides in and out of Redis (an ``antifraud.state.store.OwnedCodec``)."""

    def build(outflows: list[Flow], quiet: float) -> Account:
        account = Account(quiet_until=quiet)
        for flow in outflows:
            add_outflow(account, flow, limits)
        return account

    return KeptLog(
        TRANSFER_OUT,
        TRANSFER_QUIET,
        OutflowCodec(),
        build,
        window_seconds=limits.history_days * 86400,
        cap=limits.max_outflows_kept,
        ttl_seconds=limits.history_days * 86400,
    )


async def blacklisted(redis: Redis, accounts: Iterable[str]) -> frozenset[str]:
    """The credit-blacklisted ones among ``accounts`` (one round trip)."""
    names = sorted(set(accounts))
    if not names:
        return frozenset()
    bits = await redis.smismember(BLACKLIST.key(), names)
    return frozenset(name for name, bit in zip(names, bits) if bit)
