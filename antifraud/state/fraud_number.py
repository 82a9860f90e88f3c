"""Redis state of the fraud-number detector: per number, its latest calls and who called it.

- ``fn:out:{number}``: one string, the JSON ``[alerted_until, [[event_id, epoch, callee,
  duration, international, imei], ...]]`` of the kept outbound calls. Only the
  worker that owns the caller's partition writes it, and it writes the whole
  state computed from the prior one, so writing it twice changes nothing.
- ``fn:in:{number}`` sorted set: caller -> epoch of their earliest call kept. Any
  worker records the callers of any callee (Redis is shared); ``ZADD LT`` keeps
  the earliest, so a replayed or reordered batch writes the same value.

Keys expire two profile windows after their last write and inbound entries older
than that are trimmed, so memory stays bounded. The Python client's cost per
command dominates (STACK-NOTES.md), so loading and flushing a batch are one Lua
script call each, whatever the number of callers and callees.
"""

from collections.abc import Iterable

import orjson
from redis.asyncio import Redis

from detectors.fraud_number import FraudNumberResult, NumberState, OutCall, next_state

# The client's cost grows with every argument and reply element, so the scripts
# take and return one string each: lines, space-separated fields. (Keys are built
# inside the scripts: this needs one Redis instance, not a cluster.)

# ARGV[1]: the numbers, space-separated. Returns, per number, two lines: its
# out string (empty if none) and its inbound set as "caller epoch caller epoch ...".
_LOAD = """
local out = {}
for number in string.gmatch(ARGV[1], '%S+') do
  out[#out + 1] = redis.call('GET', 'fn:out:' .. number) or ''
  out[#out + 1] = table.concat(redis.call('ZRANGE', 'fn:in:' .. number, 0, -1, 'WITHSCORES'), ' ')
end
return table.concat(out, '\\n')
"""

# ARGV[1] ttl; ARGV[2] lines "number json" to SET; ARGV[3] lines
# "callee caller epoch caller epoch ..." to merge into inbound sets (ZADD LT keeps
# the earliest), trimming entries a ttl older than the newest.
_FLUSH = """
local ttl = tonumber(ARGV[1])
for number, state in string.gmatch(ARGV[2], '(%S+) ([^\\n]+)') do
  redis.call('SET', 'fn:out:' .. number, state, 'EX', ttl)
end
for line in string.gmatch(ARGV[3], '[^\\n]+') do
  local key, caller = nil, nil
  for word in string.gmatch(line, '%S+') do
    if key == nil then key = 'fn:in:' .. word
    elseif caller == nil then caller = word
    else
      redis.call('ZADD', key, 'LT', word, caller)
      caller = nil
    end
  end
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (tonumber(newest) - ttl))
  redis.call('EXPIRE', key, ttl)
end
return 0
"""


def _encode(state: NumberState) -> bytes:
    calls = [[c.event_id, c.at, c.callee, c.duration_s, c.international, c.imei] for c in state.calls]
    return orjson.dumps([state.alerted_until, calls])


def _decode(raw: bytes | None, inbound: bytes) -> NumberState:
    alerted_until, calls = orjson.loads(raw) if raw else (0.0, [])
    parts = inbound.split()
    called_by = {parts[i].decode(): float(parts[i + 1]) for i in range(0, len(parts), 2)}
    return NumberState(
        calls=tuple(OutCall(at, event_id, callee, duration, intl, imei) for event_id, at, callee, duration, intl, imei in calls),
        called_by=called_by,
        alerted_until=alerted_until,
    )


class FraudNumberStore:
    def __init__(self, redis: Redis, *, profile_window_seconds: int) -> None:
        self.redis = redis
        self.ttl_seconds = 2 * profile_window_seconds
        self._load = redis.register_script(_LOAD)
        self._flush = redis.register_script(_FLUSH)

    async def load(self, numbers: Iterable[str]) -> dict[str, NumberState]:
        numbers = list(numbers)
        if not numbers:
            return {}
        lines = (await self._load(args=[" ".join(numbers)])).split(b"\n")
        return {
            number: _decode(raw, inbound)
            for number, raw, inbound in zip(numbers, lines[::2], lines[1::2])
            if raw or inbound
        }

    async def apply(self, prior: dict[str, NumberState], result: FraudNumberResult) -> None:
        """Write every changed number's state and every callee's new callers in one script call."""
        states = b"\n".join(
            number.encode() + b" " + _encode(next_state(prior.get(number, NumberState()), change, {}))
            for number, change in result.changes.items()
            if change.added or change.dropped or change.alerted_until is not None
        )
        inbound = "\n".join(
            callee + "".join(f" {caller} {at!r}" for caller, at in callers.items())
            for callee, callers in result.called_by.items()
        )
        if states or inbound:
            await self._flush(args=[self.ttl_seconds, states, inbound])
