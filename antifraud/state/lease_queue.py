"""Work due at a time, taken by one worker at a time under a lease, retried after a backoff.

Forwarding deliveries (:mod:`antifraud.forwarding.service`) and a confirmed case's
follow-ups (:mod:`antifraud.case.followups`) are both kept this way:

- each item is a hash ``{prefix}{id}`` (its document and whatever else it carries);
- ``due`` is a sorted set of the ids still to be attempted, by the epoch of their next attempt.

Claiming reads the due ids, then one script, given their hashes in ``KEYS``, takes those still due,
pushes each ``lease`` seconds ahead so no other worker takes it meanwhile (a worker that dies
mid-attempt leaves it to the next one once the lease ends), and drops ids whose hash is gone. The caller records
the outcome with :meth:`LeaseQueue.schedule` in its own transaction: due again at the
next attempt, or out of the queue.

What an attempt's failure means is one taxonomy for every kind (:class:`RetryPolicy`): transient, tried
again after a backoff until the attempts are spent; permanent, or spent, parked for a person (failed,
out of the queue, the reason on record, until someone retries it).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from antifraud.state.replies import texts

# KEYS[1] the due set, KEYS[2...] the candidates' hashes; ARGV[1] now (epoch), ARGV[2] the lease's end
# (epoch), ARGV[3] how many fields, then the fields to return, then the candidates' ids in KEYS' order. A
# candidate another worker claimed meanwhile (no longer due) is left alone. Returns one array of fields per
# item taken (a missing field as an empty string).
_CLAIM = """
local n = tonumber(ARGV[3])
local fields = {unpack(ARGV, 4, 3 + n)}
local out = {}
for k = 2, #KEYS do
  local id = ARGV[2 + n + k]
  local due = redis.call('ZSCORE', KEYS[1], id)
  if due and tonumber(due) <= tonumber(ARGV[1]) then
    local item = redis.call('HMGET', KEYS[k], unpack(fields))
    if item[1] then
      redis.call('ZADD', KEYS[1], ARGV[2], id)
      for i = 1, #fields do item[i] = item[i] or '' end
      out[#out + 1] = item
    else
      redis.call('ZREM', KEYS[1], id)
    end
  end
end
return out
"""


def backoff_seconds(attempt: int, *, base: float, cap: float, jitter: float) -> float:
    """Delay before the attempt after failed attempt number ``attempt`` (1-based): exponential, capped,
    with "equal jitter" (half fixed, half scaled by ``jitter`` in [0, 1)) so that items failing
    together do not all come back at the same instant."""
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return ceiling / 2 + ceiling / 2 * jitter


@dataclass(frozen=True)
class RetryPolicy:
    """When leased work that failed is tried again: a transient failure after a capped, jittered
    exponential backoff (:func:`backoff_seconds`) until ``max_attempts`` attempts have failed; a permanent
    one (retrying cannot help: a 4xx answer, data a model refuses) at once parked, as is one whose attempts
    are spent. An error nobody classified is transient: it may pass, but never more than ``max_attempts``
    times."""

    max_attempts: int
    backoff_s: float
    backoff_max_s: float

    def next_attempt(self, attempts: int, *, permanent: bool, now: datetime, jitter: float) -> datetime | None:
        """After failed attempt number ``attempts`` (1-based): when to try again, or None to park it."""
        if permanent or attempts >= self.max_attempts:
            return None
        return now + timedelta(
            seconds=backoff_seconds(attempts, base=self.backoff_s, cap=self.backoff_max_s, jitter=jitter)
        )


@dataclass(frozen=True)
class LeaseQueue:
    """Where a kind of item lives (keys in the module docstring); ``fields[0]`` is the item's document."""

    due: str
    prefix: str
    fields: tuple[str, ...] = ("doc",)

    def key(self, item_id: str) -> str:
        return f"{self.prefix}{item_id}"

    def schedule(self, pipe: Pipeline, item_id: str, at: datetime | None) -> None:
        """Inside the caller's transaction: due at ``at``, or out of the queue (None: done or given up)."""
        if at is None:
            pipe.zrem(self.due, item_id)
        else:
            pipe.zadd(self.due, {item_id: at.timestamp()})

    async def claim(self, redis: Redis, now: datetime, *, limit: int, lease_s: float) -> list[list[bytes]]:
        """Take up to ``limit`` due items for ``lease_s`` seconds: each one's ``fields``, in order."""
        ids = texts(await redis.zrangebyscore(self.due, "-inf", now.timestamp(), start=0, num=limit))
        if not ids:
            return []
        claim = redis.register_script(_CLAIM)
        args: list[str | float] = [now.timestamp(), now.timestamp() + lease_s, len(self.fields), *self.fields, *ids]
        found = await claim(keys=[self.due, *map(self.key, ids)], args=args)
        return [list(item) for item in found]

    async def docs(self, redis: Redis, ids: list[str]) -> list[bytes]:
        """The documents of the items ``ids`` that exist, in order."""
        if not ids:
            return []
        pipe = redis.pipeline(transaction=False)
        for item_id in ids:
            pipe.hget(self.key(item_id), self.fields[0])
        return [raw for raw in await pipe.execute() if raw is not None]
