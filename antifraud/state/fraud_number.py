"""Redis state of the fraud-number detector: per number its kept calls and quiet period (owned), and
who called it and which subscribers listed or flagged numbers reached (facts).

- ``fn:kept:{number}`` and ``fn:quiet:{number}``: the number's calls in its profile window (at most
  ``max_calls_kept``) and until when it gets no new alert, as a log (``antifraud/state/kept.py``).
- ``iv:warned:{number}``: the victims already warned about it (the per-number cap).

Keys expire two profile windows after their last write. Only the worker owning the caller's partition
writes them; :class:`antifraud.state.store.OwnedStore` keeps the profiles in memory between batches.
"""

from collections.abc import Mapping, Sequence

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from antifraud.state.kept import SEP, KeptLog
from antifraud.state.keys import FRAUD_NUMBER_CALLS, FRAUD_NUMBER_QUIET, WARNED
from antifraud.state.store import Lua
from antifraud.thresholds import FraudNumberThresholds
from detectors.fraud_number import OutCall, Profile


class KeptCallCodec:
    """A kept call as stored: ``event_id callee duration international imei`` (``antifraud.state.kept``)."""

    def at(self, call: OutCall) -> float:
        return call.at

    def encode(self, call: OutCall) -> str:
        return SEP.join((call.event_id, call.callee, str(call.duration_s), str(int(call.international)), call.imei))

    def decode(self, member: str, at: float) -> OutCall:
        event_id, callee, duration, intl, imei = member.split(SEP)
        return OutCall(at, event_id, callee, int(duration), intl == "1", imei)


def profile_codec(limits: FraudNumberThresholds) -> KeptLog[OutCall, Profile]:
    """Profiles in and out of Redis (an ``antifraud.state.store.OwnedCodec``)."""
    return KeptLog(
        FRAUD_NUMBER_CALLS,
        FRAUD_NUMBER_QUIET,
        KeptCallCodec(),
        lambda calls, quiet: Profile(limits, calls, quiet),
        window_seconds=limits.profile_window_seconds,
        cap=limits.max_calls_kept,
        ttl_seconds=2 * limits.profile_window_seconds,
    )


# KEYS: the numbers' warned sets. Per key its members joined by \x1e.
_LOAD_WARNED = Lua("""
local out = {}
for k = 1, #KEYS do out[k] = table.concat(redis.call('SMEMBERS', KEYS[k]), '\\30') end
return out
""")

# KEYS: the numbers' warned sets; ARGV[1] ttl, then per key n and n victims.
_WRITE_WARNED = Lua("""
local ttl = tonumber(ARGV[1])
local i = 2
for k = 1, #KEYS do
  local n = tonumber(ARGV[i])
  i = i + 1
  for j = 1, n do
    redis.call('SADD', KEYS[k], ARGV[i])
    i = i + 1
  end
  redis.call('EXPIRE', KEYS[k], ttl)
end
return 0
""")


class WarnedCodec:
    """The victims already warned about each number (``antifraud.state.store.OwnedCodec``)."""

    def __init__(self, ttl_seconds: int) -> None:
        self.ttl_seconds = ttl_seconds

    def empty(self) -> frozenset[str]:
        return frozenset()

    async def load(self, redis: Redis, keys: Sequence[str]) -> dict[str, frozenset[str]]:
        rows = await _LOAD_WARNED(redis, [WARNED.key(k) for k in keys], [])
        return {k: frozenset(row.decode().split("\x1e")) for k, row in zip(keys, rows) if row}

    def write(self, pipe: Pipeline, deltas: Mapping[str, Sequence[frozenset[str]]]) -> None:
        keys = sorted(deltas)
        args: list[str | int] = [self.ttl_seconds]
        for number in keys:
            victims = sorted(set().union(*deltas[number]))
            args += [len(victims), *victims]
        _WRITE_WARNED.queue(pipe, [WARNED.key(k) for k in keys], args)


class CalledByCodec:
    """``fn:in`` members: a caller of the number (one member each, at its earliest call)."""

    def encode(self, called: tuple[str, float]) -> str:
        return called[0]

    def decode(self, key: str, member: str, at: float) -> tuple[str, float]:
        return member, at
