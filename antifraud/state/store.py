"""The two kinds of detector state, and how a batch reads and changes them.

- **Owned state** (:class:`OwnedStore`): per entity (a caller, an ID number, a payer account, a cell),
  written only by the worker that owns the entity's partition, which keeps it in memory between
  batches and writes it through to Redis at every checkpoint. Other entities' stages never touch it;
  they send the entity a timer (a message, ``streams/records.py``) instead.
- **Facts** (:class:`FactTable`): what one entity's events tell about another (an inflow into a payee,
  a call that reached a subscriber, a card opened for an ID number, a flag on an account), added by
  any worker, time-stamped with the event time of the event that added them, and read only ``delay``
  seconds of event time later (``[stream] cross_entity_delay_seconds``). With every worker holding
  back until every partition has passed a time less that delay (``streams/loop.py``), a fact a reader
  may see is always already written, whoever wrote it: two workers see what one sees.

A batch reads what it needs first (``ensure``: one script call per store for what is not in memory),
stages return their changes as data, the pipeline applies them (``apply``) so later pieces of the same
batch see them, and the checkpoint queues every store's writes in one transaction (``queue``), then
tells the stores whether it landed (``committed``) or the batch is dropped (``discard``).
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

from antifraud.state.keys import KeyFamily

S = TypeVar("S")
D = TypeVar("D")
D_in = TypeVar("D_in", contravariant=True)
F = TypeVar("F")


class Lua:
    """A Lua script that takes its keys through ``KEYS``: called on its own (``EVALSHA``, loading it when
    Redis lost it) or queued into a checkpoint's transaction as ``EVAL``, which cannot fail for a script
    Redis does not have (a ``NOSCRIPT`` inside ``MULTI`` would leave the rest of the transaction applied)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._sha = ""

    async def __call__(self, redis: Redis, keys: Sequence[str], args: Sequence[str | bytes | float | int]) -> Any:
        if self._sha:
            try:
                return await redis.evalsha(self._sha, len(keys), *keys, *args)
            except NoScriptError:
                pass
        self._sha = await redis.script_load(self.source)
        return await redis.evalsha(self._sha, len(keys), *keys, *args)

    def queue(self, pipe: Pipeline, keys: Sequence[str], args: Sequence[str | bytes | float | int]) -> None:
        pipe.eval(self.source, len(keys), *keys, *args)


class Store(Protocol):
    """What the pipeline and the checkpoint do with any store."""

    def apply(self, change: Any) -> None:
        """Take a stage's change into this batch's view (later pieces see it)."""

    def queue(self, pipe: Pipeline) -> None:
        """Queue this batch's writes into the checkpoint's transaction."""

    def committed(self) -> None:
        """The checkpoint landed: this batch's view is now the state."""

    def discard(self) -> None:
        """The batch is dropped (to be run again): forget its changes."""

    def forget(self) -> None:
        """The worker's partitions changed: forget what is held in memory."""


@dataclass(slots=True)
class Staged:
    """A change of one store, as a stage returns it (the pipeline applies it). Not frozen, nor are
    :class:`Owned` and :class:`Fact`: there is one per change, and a frozen dataclass's ``__init__`` costs
    several times a plain one's; nothing changes one once made."""

    store: Store
    change: object


class OwnedCodec(Protocol[S, D_in]):
    """How one kind of owned state is read from and written to Redis."""

    def empty(self) -> S:
        """The state of an entity Redis knows nothing about."""

    async def load(self, redis: Redis, keys: Sequence[str]) -> dict[str, S]:
        """The stored states of ``keys`` (those Redis has), in one round trip."""

    def write(self, pipe: Pipeline, deltas: Mapping[str, Sequence[D_in]]) -> None:
        """Queue the writes of each key's deltas, in order, into ``pipe`` (one script call)."""


@dataclass(slots=True)
class Owned(Generic[S, D]):
    """A stage's change of one owned entity: its new state, and the delta Redis needs to get there."""

    key: str
    state: S
    delta: D


class OwnedStore(Generic[S, D]):
    """Owned state: in memory between batches (bounded by ``max_cached``), written through at every
    checkpoint. Only the partition's owner writes it, so what is in memory stays what Redis holds; on a
    rebalance the loop calls :meth:`forget` and states are read again.

    A state may be advanced in place by its detector (a fraud number's window), so a batch that is
    dropped (:meth:`discard`) forgets every state it read: Redis has them as they were."""

    def __init__(self, redis: Redis, codec: OwnedCodec[S, D], *, max_cached: int = 200_000) -> None:
        self.redis = redis
        self.codec = codec
        self.max_cached = max_cached
        self._cache: dict[str, S] = {}
        self._touched: set[str] = set()
        self._deltas: dict[str, list[D]] = {}

    async def ensure(self, keys: Iterable[str]) -> None:
        """Read the states of ``keys`` not in memory yet (one script call)."""
        missing = sorted({k for k in keys if k not in self._cache})
        if not missing:
            return
        found = await self.codec.load(self.redis, missing)
        for key in missing:
            self._cache[key] = found[key] if key in found else self.codec.empty()

    def get(self, key: str) -> S:
        """The entity's state as of the batch so far (call :meth:`ensure` first)."""
        self._touched.add(key)
        try:
            return self._cache[key]
        except KeyError:
            raise KeyError("a state was read before it was ensured") from None

    def states(self, keys: Iterable[str]) -> dict[str, S]:
        return {key: self.get(key) for key in keys}

    def apply(self, change: Any) -> None:
        assert isinstance(change, Owned)
        self._touched.add(change.key)
        self._cache[change.key] = change.state
        self._deltas.setdefault(change.key, []).append(change.delta)

    def stage(self, key: str, state: S, delta: D) -> Staged:
        """The :class:`Staged` change a stage returns for one entity."""
        return Staged(self, Owned(key, state, delta))

    def queue(self, pipe: Pipeline) -> None:
        if self._deltas:
            self.codec.write(pipe, self._deltas)

    def committed(self) -> None:
        self._touched.clear()
        self._deltas.clear()
        if len(self._cache) > self.max_cached:  # oldest first: Redis still has them
            for key in list(self._cache)[: len(self._cache) - self.max_cached // 2]:
                del self._cache[key]

    def discard(self) -> None:
        for key in self._touched:
            self._cache.pop(key, None)
        self._touched.clear()
        self._deltas.clear()

    def forget(self) -> None:
        """Drop everything held in memory (the worker's partitions changed)."""
        self.discard()
        self._cache.clear()


@dataclass(slots=True)
class Fact(Generic[F]):
    """One fact about an entity: its event time, its member (unique, stable) and its value."""

    at: float
    member: str
    value: F


class FactCodec(Protocol[F]):
    def encode(self, value: F) -> str:
        """The member stored in Redis (unique per fact: it carries the event id or the writer)."""

    def decode(self, key: str, member: str, at: float) -> F:
        """The fact stored as ``member`` at ``at`` about the entity ``key``."""


SCORED_ROWS = """
local function scored(key)
  local row = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  local parts = {}
  for j = 1, #row, 2 do parts[#parts + 1] = row[j + 1] .. ' ' .. row[j] end
  return table.concat(parts, '\\30')
end
"""
"""Lua: ``scored(key)``, a sorted set as one string, its "score member" pairs joined by \\x1e (members never
hold it), lowest first; :func:`parse_scored` reads it. Scripts that read sorted sets start with it."""


ADD_SCORED = """
local function add_scored(key, packed, flag)
  for pair in string.gmatch(packed, '[^\\30]+') do
    local sp = string.find(pair, ' ', 1, true)
    if flag then redis.call('ZADD', key, flag, string.sub(pair, 1, sp - 1), string.sub(pair, sp + 1))
    else redis.call('ZADD', key, string.sub(pair, 1, sp - 1), string.sub(pair, sp + 1)) end
  end
end
"""
"""Lua: ``add_scored(key, packed, flag)``, the (score, member) pairs :func:`pack_scored` packed into one argument
added to a sorted set (``flag``: a ZADD flag such as 'LT', or nil). One argument per key instead of two per
member: redis-py's cost is per argument."""


def pack_scored(pairs: Iterable[tuple[float, str]]) -> str:
    """(score, member) pairs as one string for ``add_scored`` (members never hold \\x1e)."""
    return "\x1e".join(f"{at!r} {member}" for at, member in pairs)


def parse_scored(row: bytes | None) -> list[tuple[float, str]]:
    """The (score, member) pairs of a ``scored`` string."""
    if not row:
        return []
    found = []
    for pair in row.decode().split("\x1e"):
        score, member = pair.split(" ", 1)
        found.append((float(score), member))
    return found


# KEYS: the entities' keys. Per key its facts as one ``scored`` string.
_READ_FACTS = Lua(
    SCORED_ROWS
    + """
local out = {}
for k = 1, #KEYS do out[k] = scored(KEYS[k]) end
return out
"""
)

# KEYS: the entities' keys, then ARGV[1] keep (seconds), ARGV[2] ttl, ARGV[3] '1' to keep the earliest
# score of a member (ZADD LT), then per key its (score, member) pairs packed (ADD_SCORED). Per key: add,
# drop what is older than keep before its newest, renew the expiry.
_ADD_FACTS = Lua(
    ADD_SCORED
    + """
local keep, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local flag = nil
if ARGV[3] == '1' then flag = 'LT' end
for k = 1, #KEYS do
  add_scored(KEYS[k], ARGV[3 + k], flag)
  local newest = redis.call('ZRANGE', KEYS[k], -1, -1, 'WITHSCORES')[2]
  if newest then redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', '(' .. (tonumber(newest) - keep)) end
  redis.call('EXPIRE', KEYS[k], ttl)
end
return 0
"""
)


class FactTable(Generic[F]):
    """Facts about entities: a sorted set per entity (score: event time), added to by any worker and read
    ``delay`` seconds of event time later.

    ``keep_seconds`` is how far back readers look; what is older than that (plus ``margin_seconds``,
    how far one worker may run ahead of another) before an entity's newest fact is trimmed, and a key
    expires ``ttl_seconds`` after its last write. ``earliest`` keeps one fact per member, at its
    earliest time (who called a number, first). Facts are read whole per entity at a batch's start and
    not kept between batches: other workers add to them.
    """

    def __init__(
        self,
        redis: Redis,
        family: KeyFamily,
        codec: FactCodec[F],
        *,
        delay: float,
        keep_seconds: float,
        margin_seconds: float,
        ttl_seconds: int,
        earliest: bool = False,
    ) -> None:
        self.redis = redis
        self.family = family
        self.codec = codec
        self.delay = delay
        self.keep_seconds = keep_seconds
        self.trim_seconds = keep_seconds + margin_seconds
        self.ttl_seconds = ttl_seconds
        self.earliest = earliest
        self._loaded: dict[str, list[Fact[F]]] = {}
        self._added: dict[str, dict[str, Fact[F]]] = {}

    async def ensure(self, keys: Iterable[str]) -> None:
        """Read the facts of ``keys`` not read in this batch yet (one script call)."""
        missing = sorted({k for k in keys if k not in self._loaded})
        if not missing:
            return
        rows = await _READ_FACTS(self.redis, [self.family.key(k) for k in missing], [])
        decode = self.codec.decode
        for key, row in zip(missing, rows):
            self._loaded[key] = [Fact(at, member, decode(key, member, at)) for at, member in parse_scored(row)]

    def visible(self, key: str, at: float) -> list[F]:
        """What is known about ``key`` at event time ``at``: the facts no newer than ``at - delay``, oldest
        first (call :meth:`ensure` first)."""
        until = at - self.delay
        try:
            loaded = self._loaded[key]
        except KeyError:
            raise KeyError("facts were read before they were ensured") from None
        facts = {f.member: f for f in loaded}
        for fact in self._added.get(key, {}).values():
            known = facts.get(fact.member)
            if known is None or not self.earliest or fact.at < known.at:
                facts[fact.member] = fact
        return [f.value for f in sorted(facts.values(), key=lambda f: (f.at, f.member)) if f.at <= until]

    def add(self, key: str, at: float, value: F) -> Staged:
        """The :class:`Staged` change a stage returns for one new fact."""
        return Staged(self, (key, Fact(at, self.codec.encode(value), value)))

    def apply(self, change: Any) -> None:
        key, fact = change
        added = self._added.setdefault(key, {})
        known = added.get(fact.member)
        if known is None or not self.earliest or fact.at < known.at:
            added[fact.member] = fact

    def queue(self, pipe: Pipeline) -> None:
        if not self._added:
            return
        keys = sorted(self._added)
        args: list[str | float | int] = [self.trim_seconds, self.ttl_seconds, "1" if self.earliest else "0"]
        args += [pack_scored((fact.at, fact.member) for fact in self._added[key].values()) for key in keys]
        _ADD_FACTS.queue(pipe, [self.family.key(k) for k in keys], args)

    def committed(self) -> None:
        self.discard()

    def discard(self) -> None:
        self._loaded.clear()
        self._added.clear()

    def forget(self) -> None:
        self.discard()


def keyed(values: Iterable[tuple[str, Any]]) -> dict[str, list[Any]]:
    """Group ``(key, value)`` pairs by key, keeping their order."""
    grouped: dict[str, list[Any]] = {}
    for key, value in values:
        grouped.setdefault(key, []).append(value)
    return grouped
