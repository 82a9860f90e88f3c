"""Redis state of the transfer-risk detector: each account's own side (owned) and what other entities'
events say about accounts and phones (facts).

- ``tr:out:{account}``: list of the account's outflows, appended per batch (``RPUSH``) and trimmed to
  ``max_outflows_kept``; on reading, those past ``history_days`` before the newest are dropped.
- ``tr:quiet:{account}``: until when the account gets no new mule alert.
- ``tr:in:{account}`` (facts): inflows of at least ``min_amount_fen``, added by each payer's owner.
- ``flag:{account}`` (facts): alerts on the account (transfer risk, mule, card trade), with until when
  each makes it a suspect.
- ``iv:reached:{phone}`` (facts): calls of listed or flagged numbers to the phone (the fraud-number
  stage adds them).
- ``blacklist:accounts``: the credit blacklist's accounts (read only here).

Keys expire, so memory stays bounded; the formats are in ``antifraud/state/keys.py``.
"""

from collections.abc import Iterable, Mapping, Sequence

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from antifraud.state.keys import BLACKLIST, TRANSFER_OUT, TRANSFER_QUIET
from antifraud.state.store import Lua
from antifraud.thresholds import TransferRiskThresholds
from detectors.transfer_risk import Account, AccountChange, Call, Flag, Flow, add_outflow

_SEP = "\x1f"


def encode_outflow(flow: Flow) -> str:
    return _SEP.join((flow.event_id, repr(flow.at), flow.other, str(flow.amount_fen), flow.channel, str(int(flow.own))))


def decode_outflow(raw: str) -> Flow:
    event_id, at, other, amount, channel, own = raw.split(_SEP)
    return Flow(event_id, float(at), other, int(amount), channel, own == "1")


class InflowCodec:
    """``tr:in`` members: the payment as the payee sees it (``other``: the payer); the score is its time."""

    def encode(self, flow: Flow) -> str:
        return _SEP.join((flow.event_id, flow.other, str(flow.amount_fen), flow.channel, str(int(flow.own))))

    def decode(self, key: str, member: str, at: float) -> Flow:
        event_id, other, amount, channel, own = member.split(_SEP)
        return Flow(event_id, at, other, int(amount), channel, own == "1")


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


# KEYS: per account its outflows list and its quiet key. Per account two strings: the outflows joined
# by \x1e, and the quiet epoch ('' when none).
_LOAD = Lua("""
local out = {}
for k = 1, #KEYS, 2 do
  out[#out + 1] = table.concat(redis.call('LRANGE', KEYS[k], 0, -1), '\\30')
  out[#out + 1] = redis.call('GET', KEYS[k + 1]) or ''
end
return out
""")

# KEYS: per account its outflows list and its quiet key; ARGV[1] ttl, ARGV[2] cap, then per account:
# the quiet epoch ('' to leave it), n, n outflows.
_WRITE = Lua("""
local ttl, cap = tonumber(ARGV[1]), tonumber(ARGV[2])
local i = 3
for k = 1, #KEYS, 2 do
  if ARGV[i] ~= '' then redis.call('SET', KEYS[k + 1], ARGV[i], 'EX', ttl) end
  local n = tonumber(ARGV[i + 1])
  i = i + 2
  for j = 1, n do
    redis.call('RPUSH', KEYS[k], ARGV[i])
    i = i + 1
  end
  if n > 0 then
    redis.call('LTRIM', KEYS[k], -cap, -1)
    redis.call('EXPIRE', KEYS[k], ttl)
  end
end
return 0
""")


def account_of(outflows: Iterable[Flow], quiet: bytes | None, limits: TransferRiskThresholds) -> Account:
    """An account's own side from its stored outflows (any order) and quiet epoch."""
    account = Account(quiet_until=float(quiet) if quiet else 0.0)
    for flow in sorted(outflows, key=lambda f: (f.at, f.event_id)):
        add_outflow(account, flow, limits)
    return account


def account_keys(account: str) -> list[str]:
    return [TRANSFER_OUT.key(account), TRANSFER_QUIET.key(account)]


def parse_accounts(names: Sequence[str], rows: Sequence[bytes], limits: TransferRiskThresholds) -> dict[str, Account]:
    """The accounts Redis has, from :data:`_LOAD`'s (or the check's) two strings per account."""
    found = {}
    for name, outflows, quiet in zip(names, rows[::2], rows[1::2]):
        if outflows or quiet:
            flows = [decode_outflow(f) for f in outflows.decode().split("\x1e")] if outflows else []
            found[name] = account_of(flows, quiet, limits)
    return found


class AccountCodec:
    """Accounts' own sides in and out of Redis (``antifraud.state.store.OwnedCodec``)."""

    def __init__(self, limits: TransferRiskThresholds) -> None:
        self.limits = limits
        self.ttl_seconds = limits.history_days * 86400

    def empty(self) -> Account:
        return Account()

    async def load(self, redis: Redis, keys: Sequence[str]) -> dict[str, Account]:
        rows = await _LOAD(redis, [k for name in keys for k in account_keys(name)], [])
        return parse_accounts(keys, rows, self.limits)

    def write(self, pipe: Pipeline, deltas: Mapping[str, Sequence[AccountChange]]) -> None:
        keys: list[str] = []
        args: list[str | float | int] = [self.ttl_seconds, self.limits.max_outflows_kept]
        for name in sorted(deltas):
            quiet = [c.quiet_until for c in deltas[name] if c.quiet_until is not None]
            added = [flow for change in deltas[name] for flow in change.added]
            keys += account_keys(name)
            args += [repr(quiet[-1]) if quiet else "", len(added), *(encode_outflow(f) for f in added)]
        _WRITE.queue(pipe, keys, args)


async def blacklisted(redis: Redis, accounts: Iterable[str]) -> frozenset[str]:
    """The credit-blacklisted ones among ``accounts`` (one round trip)."""
    names = sorted(set(accounts))
    if not names:
        return frozenset()
    bits = await redis.smismember(BLACKLIST.key(), names)
    return frozenset(name for name, bit in zip(names, bits) if bit)
