"""Owned state of a payee account's side of the ATM hold: the held holds paying it and the alerts
flagging it (``antifraud.holds.policy.PayeeSide``), each told to it by a message.

``hpay:{account}`` hash: ``h:{hold_id}`` -> the hold (JSON), ``f:{alert_id}`` -> the flag (JSON).
Rewritten whole by the account's owner after each batch that changed it (a side holds a day's held
holds and a few flags); it expires two hold periods after its last write.
"""

from collections.abc import Mapping, Sequence

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from antifraud.holds.models import Hold, PayeeFlag
from antifraud.holds.policy import PayeeSide
from antifraud.state.keys import PAYEE_HOLDS
from antifraud.state.store import Lua

# KEYS: the accounts. Per key its fields and values, alternating.
_LOAD = Lua("""
local out = {}
for k = 1, #KEYS do out[k] = redis.call('HGETALL', KEYS[k]) end
return out
""")

# KEYS: the accounts; ARGV[1] ttl, then per key n and n field/value pairs (the whole side).
_WRITE = Lua("""
local ttl = tonumber(ARGV[1])
local i = 2
for k = 1, #KEYS do
  redis.call('DEL', KEYS[k])
  local n = tonumber(ARGV[i])
  i = i + 1
  for j = 1, n do
    redis.call('HSET', KEYS[k], ARGV[i], ARGV[i + 1])
    i = i + 2
  end
  if n > 0 then redis.call('EXPIRE', KEYS[k], ttl) end
end
return 0
""")


class PayeeSideCodec:
    def __init__(self, ttl_seconds: int) -> None:
        self.ttl_seconds = ttl_seconds

    def empty(self) -> PayeeSide:
        return PayeeSide()

    async def load(self, redis: Redis, keys: Sequence[str]) -> dict[str, PayeeSide]:
        rows = await _LOAD(redis, [PAYEE_HOLDS.key(k) for k in keys], [])
        sides = {}
        for key, row in zip(keys, rows):
            if not row:
                continue
            parts = [p.decode() for p in row]
            holds, flags = {}, {}
            for field, value in zip(parts[::2], parts[1::2]):
                if field.startswith("h:"):
                    holds[field[2:]] = Hold.model_validate_json(value)
                else:
                    flags[field[2:]] = PayeeFlag.model_validate_json(value)
            sides[key] = PayeeSide(holds, flags)
        return sides

    def write(self, pipe: Pipeline, deltas: Mapping[str, Sequence[PayeeSide]]) -> None:
        keys = sorted(deltas)
        args: list[str | int] = [self.ttl_seconds]
        for key in keys:
            side = deltas[key][-1]
            fields = [(f"h:{i}", h.model_dump_json()) for i, h in side.holds.items()]
            fields += [(f"f:{i}", f.model_dump_json()) for i, f in side.flags.items()]
            args.append(len(fields))
            for field, value in fields:
                args += [field, value]
        _WRITE.queue(pipe, [PAYEE_HOLDS.key(k) for k in keys], args)
