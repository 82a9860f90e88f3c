"""Redis state of the fraud-number detector: per number its kept calls and quiet period (owned), and
who called it and which subscribers listed or flagged numbers reached (facts).

- ``fn:calls:{number}``: list of the kept outbound calls, appended per batch (``RPUSH``) and trimmed to
  ``max_calls_kept`` (``LTRIM``): writing a batch costs its new calls, whatever the number's history.
  On reading, the calls outside the profile window of the newest are dropped.
- ``fn:quiet:{number}``: until when the number gets no new alert.
- ``iv:warned:{number}``: the victims already warned about it (the per-number cap).

Keys expire two profile windows after their last write. Only the worker owning the caller's partition
writes them; :class:`antifraud.state.store.OwnedStore` keeps the profiles in memory between batches.
"""

from collections.abc import Mapping, Sequence

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from antifraud.state.keys import FRAUD_NUMBER_CALLS, FRAUD_NUMBER_QUIET, WARNED
from antifraud.state.store import Lua
from antifraud.thresholds import FraudNumberThresholds
from detectors.fraud_number import NumberChange, OutCall, Profile

# KEYS: per number its calls list and its quiet key. Per number two strings: the calls joined by \x1e,
# and the quiet epoch ('' when none).
_LOAD = Lua("""
local out = {}
for k = 1, #KEYS, 2 do
  out[#out + 1] = table.concat(redis.call('LRANGE', KEYS[k], 0, -1), '\\30')
  out[#out + 1] = redis.call('GET', KEYS[k + 1]) or ''
end
return out
""")

# KEYS: per number its calls list and its quiet key; ARGV[1] ttl, ARGV[2] cap, then per number: the
# quiet epoch ('' to leave it), n, n calls.
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


def _encode(call: OutCall) -> str:
    return f"{call.at!r} {call.event_id} {call.callee} {call.duration_s} {int(call.international)} {call.imei}"


def _decode(raw: str) -> OutCall:
    at, event_id, callee, duration, intl, imei = raw.split(" ")
    return OutCall(float(at), event_id, callee, int(duration), intl == "1", imei)


class ProfileCodec:
    """Profiles in and out of Redis (``antifraud.state.store.OwnedCodec``)."""

    def __init__(self, limits: FraudNumberThresholds) -> None:
        self.limits = limits
        self.ttl_seconds = 2 * limits.profile_window_seconds

    def empty(self) -> Profile:
        return Profile(self.limits)

    async def load(self, redis: Redis, keys: Sequence[str]) -> dict[str, Profile]:
        redis_keys = [k for number in keys for k in (FRAUD_NUMBER_CALLS.key(number), FRAUD_NUMBER_QUIET.key(number))]
        rows = await _LOAD(redis, redis_keys, [])
        profiles = {}
        for number, calls, quiet in zip(keys, rows[::2], rows[1::2]):
            if calls or quiet:
                kept = [_decode(c) for c in calls.decode().split("\x1e")] if calls else []
                profiles[number] = Profile(self.limits, kept, float(quiet) if quiet else 0.0)
        return profiles

    def write(self, pipe: Pipeline, deltas: Mapping[str, Sequence[NumberChange]]) -> None:
        keys: list[str] = []
        args: list[str | float | int] = [self.ttl_seconds, self.limits.max_calls_kept]
        for number in sorted(deltas):
            quiet = [c.alerted_until for c in deltas[number] if c.alerted_until is not None]
            added = [call for change in deltas[number] for call in change.added]
            keys += [FRAUD_NUMBER_CALLS.key(number), FRAUD_NUMBER_QUIET.key(number)]
            args += [repr(quiet[-1]) if quiet else "", len(added), *(_encode(c) for c in added)]
        _WRITE.queue(pipe, keys, args)


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
