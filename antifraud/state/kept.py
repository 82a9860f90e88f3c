"""Owned state kept as a log per entity: its newest items within a time window, at most ``cap`` of them,
and until when it gets no new alert (a fraud number's calls, a payer's outflows).

- ``{items}{entity}``: sorted set, score the item's event time, member the item's other fields (its
  event id first). Writing a batch adds its new items, then drops those past the window before the
  newest and the oldest beyond ``cap``: the cost of a write is the batch's items, whatever the history.
  A sorted set orders items by (time, member), as the detectors order them by (time, event id), so a
  late item is kept or dropped in Redis exactly as in memory.
- ``{quiet}{entity}``: string, the epoch until which the entity gets no new alert.

Both expire ``ttl_seconds`` after the last write. Event ids hold no control characters
(``antifraud/events/models.py``), so ``\\x1f`` separates a member's fields and sorts below all of them.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Generic, Protocol, TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from antifraud.state.keys import KeyFamily
from antifraud.state.store import ADD_SCORED, SCORED_ROWS, Lua, pack_scored, parse_scored

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
S = TypeVar("S")

SEP = "\x1f"
"""Separates the fields of a stored member."""


class ItemCodec(Protocol[T]):
    def at(self, item: T) -> float:
        """The item's event time (its score)."""

    def encode(self, item: T) -> str:
        """The member: the item's event id, then its other fields, joined by :data:`SEP`."""

    def decode(self, member: str, at: float) -> T: ...


class LogChange(Protocol[T_co]):
    """A detector's change of one entity's log."""

    @property
    def added(self) -> Sequence[T_co]: ...

    @property
    def quiet_until(self) -> float | None: ...


# KEYS: per entity its items and its quiet key. Per entity two strings: its items as "score member" pairs
# joined by \x1e (SCORED_ROWS), and its quiet epoch ('' when none).
_LOAD = Lua(
    SCORED_ROWS
    + """
local out = {}
for k = 1, #KEYS, 2 do
  out[#out + 1] = scored(KEYS[k])
  out[#out + 1] = redis.call('GET', KEYS[k + 1]) or ''
end
return out
"""
)

# KEYS: per entity its items and its quiet key; ARGV[1] ttl, ARGV[2] window, ARGV[3] cap, then per entity:
# the quiet epoch ('' to leave it) and its new items' (score, member) pairs packed (ADD_SCORED).
_WRITE = Lua(
    ADD_SCORED
    + """
local ttl, window, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local i = 4
for k = 1, #KEYS, 2 do
  if ARGV[i] ~= '' then redis.call('SET', KEYS[k + 1], ARGV[i], 'EX', ttl) end
  add_scored(KEYS[k], ARGV[i + 1], nil)
  local added = ARGV[i + 1] ~= ''
  i = i + 2
  if added then
    local newest = redis.call('ZRANGE', KEYS[k], -1, -1, 'WITHSCORES')[2]
    redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', tonumber(newest) - window)
    redis.call('ZREMRANGEBYRANK', KEYS[k], 0, -cap - 1)
    redis.call('EXPIRE', KEYS[k], ttl)
  end
end
return 0
"""
)


class KeptLog(Generic[T, S]):
    """An :class:`~antifraud.state.store.OwnedCodec` for a log and its quiet key; ``build`` makes an
    entity's state from its stored items (oldest first) and quiet epoch, applying the same window and
    cap as the detector."""

    def __init__(
        self,
        items: KeyFamily,
        quiet: KeyFamily,
        codec: ItemCodec[T],
        build: Callable[[list[T], float], S],
        *,
        window_seconds: float,
        cap: int,
        ttl_seconds: int,
    ) -> None:
        self.items = items
        self.quiet = quiet
        self.codec = codec
        self.build = build
        self.window_seconds = window_seconds
        self.cap = cap
        self.ttl_seconds = ttl_seconds

    def keys(self, entity: str) -> list[str]:
        return [self.items.key(entity), self.quiet.key(entity)]

    def empty(self) -> S:
        return self.build([], 0.0)

    def parse(self, entities: Sequence[str], rows: Sequence[bytes]) -> dict[str, S]:
        """The states Redis has, from two strings per entity as :data:`_LOAD` returns them."""
        decode = self.codec.decode
        found = {}
        for entity, items, quiet in zip(entities, rows[::2], rows[1::2]):
            if items or quiet:
                found[entity] = self.build(
                    [decode(m, at) for at, m in parse_scored(items)], float(quiet) if quiet else 0.0
                )
        return found

    async def load(self, redis: Redis, keys: Sequence[str]) -> dict[str, S]:
        return self.parse(keys, await _LOAD(redis, [k for entity in keys for k in self.keys(entity)], []))

    def write(self, pipe: Pipeline, deltas: Mapping[str, Sequence[LogChange[T]]]) -> None:
        keys: list[str] = []
        args: list[str | float | int] = [self.ttl_seconds, repr(float(self.window_seconds)), self.cap]
        for entity in sorted(deltas):
            quiet = [c.quiet_until for c in deltas[entity] if c.quiet_until is not None]
            added = [item for change in deltas[entity] for item in change.added]
            keys += self.keys(entity)
            args += [
                repr(quiet[-1]) if quiet else "",
                pack_scored((self.codec.at(item), self.codec.encode(item)) for item in added),
            ]
        _WRITE.queue(pipe, keys, args)
