"""Redis state of the transfer-risk detector, and what it reads from elsewhere.

Transfers are partitioned by payer account, so an account's outflows have one
writer, while its inflows and its flag can come from any worker. Each part is
therefore stored so that concurrent and repeated writes agree:

- ``tr:out:{account}``: the JSON list of the account's kept outflows as
  ``[event_id, epoch, payee, amount_fen, channel, own]``, written whole, only by
  the worker that saw the account pay in the batch (its partition's owner).
- ``tr:in:{account}``: sorted set of inflows (score: epoch; member:
  ``event_id|payer|amount_fen|channel|own``); ``ZADD`` is an upsert, and entries
  older than the fan-in window before the newest, or beyond the cap, are trimmed.
- ``tr:flag:{account}``: until when the account is a suspected mule; only raised.
- ``blacklist:accounts``: a set of blacklisted accounts (the credit blacklist of
  plan sections (二) and (三) fills it; read only here).
- ``iv:reached:{phone}``: listed or flagged numbers that reached a phone, when and
  how long (written by victim tracing, :mod:`antifraud.state.interception`).

Keys expire ``ttl_seconds`` after their last write, so memory stays bounded.
Loading a batch (account states, blacklist membership of its payees, calls to
its payers' phones) and flushing it are one Lua script call each.
"""

from collections.abc import Iterable, Mapping

import orjson
from redis.asyncio import Redis

from antifraud.state.interception import REACHED
from antifraud.thresholds import TransferRiskThresholds
from detectors.transfer_risk import AccountState, Call, Context, Flow

BLACKLIST = "blacklist:accounts"

# ARGV[1] accounts, ARGV[2] payees, ARGV[3] phones (space-separated; a list may
# be empty). Returns lines: per account its outflows JSON, its inflow members
# (space-separated) and its flag; then the payees' blacklist bits ("0 1 0 ...");
# then per phone "number value number value ...".
_LOAD = f"""
local out = {{}}
for account in string.gmatch(ARGV[1], '%S+') do
  out[#out + 1] = redis.call('GET', 'tr:out:' .. account) or ''
  out[#out + 1] = table.concat(redis.call('ZRANGE', 'tr:in:' .. account, 0, -1), ' ')
  out[#out + 1] = redis.call('GET', 'tr:flag:' .. account) or ''
end
local bits = {{}}
for payee in string.gmatch(ARGV[2], '%S+') do
  bits[#bits + 1] = tostring(redis.call('SISMEMBER', '{BLACKLIST}', payee))
end
out[#out + 1] = table.concat(bits, ' ')
for phone in string.gmatch(ARGV[3], '%S+') do
  out[#out + 1] = table.concat(redis.call('HGETALL', '{REACHED}' .. phone), ' ')
end
return table.concat(out, '\\n')
"""

# ARGV[1] ttl, ARGV[2] inflow window, ARGV[3] inflow cap; ARGV[4] lines
# "account json" of outflows to SET; ARGV[5] lines "account epoch member epoch
# member ..." of inflows to ZADD; ARGV[6] lines "account flagged_until" to raise.
_FLUSH = """
local ttl, window, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for account, flows in string.gmatch(ARGV[4], '(%S+) ([^\\n]+)') do
  redis.call('SET', 'tr:out:' .. account, flows, 'EX', ttl)
end
for line in string.gmatch(ARGV[5], '[^\\n]+') do
  local key, at = nil, nil
  for word in string.gmatch(line, '%S+') do
    if key == nil then key = 'tr:in:' .. word
    elseif at == nil then at = word
    else
      redis.call('ZADD', key, at, word)
      at = nil
    end
  end
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (tonumber(newest) - window))
  redis.call('ZREMRANGEBYRANK', key, 0, -cap - 1)
  redis.call('EXPIRE', key, ttl)
end
for account, flagged in string.gmatch(ARGV[6], '(%S+) (%S+)') do
  local key = 'tr:flag:' .. account
  if tonumber(flagged) > tonumber(redis.call('GET', key) or '0') then
    redis.call('SET', key, flagged, 'EX', ttl)
  end
end
return 0
"""


def decode_call(raw: bytes) -> Call:
    """An ``iv:reached`` hash value: ``last_at,longest_s``."""
    at, longest = raw.split(b",")
    return Call(float(at), int(longest))


def _member(flow: Flow) -> str:
    return f"{flow.event_id}|{flow.at!r}|{flow.other}|{flow.amount_fen}|{flow.channel}|{int(flow.own)}"


def _inflow(member: bytes) -> Flow:
    event_id, at, payer, amount, channel, own = member.decode().split("|")
    return Flow(event_id, float(at), payer, int(amount), channel, own == "1")


def _outflows(flows: tuple[Flow, ...]) -> bytes:
    return orjson.dumps([[f.event_id, f.at, f.other, f.amount_fen, f.channel, f.own] for f in flows])


def decode_state(outflows: bytes, inflows: bytes, flag: bytes) -> AccountState:
    """An account's state from its ``tr:out`` value, ``tr:in`` members (space-separated) and ``tr:flag`` value."""
    return AccountState(
        outflows=tuple(Flow(*f) for f in orjson.loads(outflows)) if outflows else (),
        inflows=tuple(sorted((_inflow(m) for m in inflows.split()), key=lambda f: (f.at, f.event_id))),
        flagged_until=float(flag) if flag else 0.0,
    )


class TransferRiskStore:
    def __init__(self, redis: Redis, *, ttl_seconds: int, inflow_window_seconds: int, max_inflows: int) -> None:
        self.ttl_seconds = ttl_seconds
        self.inflow_window_seconds = inflow_window_seconds
        self.max_inflows = max_inflows
        self._load = redis.register_script(_LOAD)
        self._flush = redis.register_script(_FLUSH)

    @classmethod
    def configured(cls, redis: Redis, limits: TransferRiskThresholds) -> "TransferRiskStore":
        return cls(redis, ttl_seconds=limits.history_days * 86400,
                   inflow_window_seconds=limits.fan_in_window_seconds, max_inflows=limits.max_inflows_kept)

    async def load(self, accounts: Iterable[str], payees: Iterable[str], phones: Iterable[str]
                   ) -> tuple[dict[str, AccountState], Context]:
        """Account states, and the payees blacklisted and the phones reached by flagged numbers, in one call."""
        accounts, payees, phones = sorted(set(accounts)), sorted(set(payees)), sorted(set(phones))
        if not accounts:
            return {}, Context()
        lines = (await self._load(args=[" ".join(accounts), " ".join(payees), " ".join(phones)])).split(b"\n")
        n = 3 * len(accounts)
        states = {
            account: decode_state(*lines[3 * i : 3 * i + 3])
            for i, account in enumerate(accounts)
            if any(lines[3 * i : 3 * i + 3])
        }
        blacklisted = frozenset(p for p, bit in zip(payees, lines[n].split()) if bit == b"1")
        reached = {}
        for phone, line in zip(phones, lines[n + 1 :]):
            parts = line.split()
            if parts:
                reached[phone] = {parts[i].decode(): decode_call(parts[i + 1]) for i in range(0, len(parts), 2)}
        return states, Context(blacklisted, reached)

    async def apply(self, states: Mapping[str, AccountState], payers: Iterable[str]) -> None:
        """Write the batch's changes in one script call: outflows of its ``payers`` (this worker's
        partition), every changed account's inflows (upserts) and flag (only raised)."""
        if not states:
            return
        payers = set(payers)
        outflows = b"\n".join(
            a.encode() + b" " + _outflows(s.outflows) for a, s in sorted(states.items()) if a in payers
        )
        inflows = "\n".join(
            a + "".join(f" {f.at!r} {_member(f)}" for f in s.inflows) for a, s in sorted(states.items()) if s.inflows
        )
        flags = "\n".join(f"{a} {s.flagged_until!r}" for a, s in sorted(states.items()) if s.flagged_until)
        await self._flush(args=[self.ttl_seconds, self.inflow_window_seconds, self.max_inflows,
                                outflows, inflows, flags])
