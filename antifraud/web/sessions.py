"""Server-side sessions in Redis: what a page's cookie stands for, ended at logout or after a timeout.

The cookie carries a random session id and nothing else; Redis keeps the session under the HMAC of that
id with ``ANTIFRAUD_SECRET_KEY`` (``antifraud/state/keys.py`` WEB_SESSION), so a copy of Redis gives no
usable cookie. A session ends when its user logs out (the key is deleted: the old cookie is worth
nothing), after ``idle_s`` without a request, or ``absolute_s`` after login whatever its use. Each
session has its own CSRF token, which every state-changing request made with the cookie must echo in
``X-CSRF-Token`` (``antifraud/web/auth.py``).
"""

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from antifraud.state.keys import LOGIN_FAILURES, WEB_SESSION
from antifraud.state.replies import texts


@dataclass(frozen=True)
class Session:
    name: str
    csrf: str


class SessionStore:
    def __init__(self, key: bytes, *, idle_s: float, absolute_s: float, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self.idle_s = idle_s
        self.absolute_s = absolute_s
        self.clock = clock

    def _redis_key(self, session_id: str) -> str:
        return WEB_SESSION.key(hmac.new(self._key, session_id.encode(), hashlib.sha256).hexdigest())

    async def open(self, redis: Redis, name: str) -> tuple[str, Session]:
        """A new session for ``name``: its id (for the cookie) and the session."""
        session_id, session = secrets.token_urlsafe(32), Session(name, secrets.token_urlsafe(32))
        now = self.clock()
        key = self._redis_key(session_id)
        pipe = redis.pipeline(transaction=True)
        pipe.hset(key, mapping={"name": name, "csrf": session.csrf, "created": now, "seen": now})
        pipe.expire(key, int(self.idle_s) + 1)
        await pipe.execute()
        return session_id, session

    async def read(self, redis: Redis, session_id: str) -> Session | None:
        """The live session of ``session_id`` (its idle timeout starts again), or None: unknown, logged out,
        idle too long or too old (an ended one is deleted)."""
        key = self._redis_key(session_id)
        raw = await redis.hmget(key, ["name", "csrf", "created", "seen"])
        if any(f is None for f in raw):
            return None
        name, csrf, created, seen = texts(raw)
        now = self.clock()
        if now - float(seen) > self.idle_s or now - float(created) > self.absolute_s:
            await redis.delete(key)
            return None
        pipe = redis.pipeline(transaction=True)
        pipe.hset(key, "seen", now)
        pipe.expire(key, int(self.idle_s) + 1)
        await pipe.execute()
        return Session(name, csrf)

    async def close(self, redis: Redis, session_id: str) -> None:
        await redis.delete(self._redis_key(session_id))


@dataclass(frozen=True)
class LoginThrottle:
    """Refused logins counted per subject (a client address, ``addr:...``, and an account, ``name:...``) in a
    window from the first; at ``limit`` every login from that address, or to that account, is answered 429
    until the window ends, so guessing a password costs hours, not seconds, from one address or many."""

    limit: int
    window_s: int

    async def retry_after(self, redis: Redis, *subjects: str) -> int | None:
        """Seconds until none of ``subjects`` is throttled, or None when none is now."""
        pipe = redis.pipeline(transaction=False)
        for subject in subjects:
            pipe.get(LOGIN_FAILURES.key(subject))
            pipe.ttl(LOGIN_FAILURES.key(subject))
        replies = await pipe.execute()
        waits = [
            max(int(ttl), 1)
            for count, ttl in zip(replies[::2], replies[1::2])
            if count is not None and int(count) >= self.limit
        ]
        return max(waits) if waits else None

    async def failed(self, redis: Redis, *subjects: str) -> None:
        """Count a refused login against each of ``subjects``."""
        pipe = redis.pipeline(transaction=True)
        for subject in subjects:
            pipe.set(LOGIN_FAILURES.key(subject), 0, ex=self.window_s, nx=True)  # the window starts at the first
            pipe.incr(LOGIN_FAILURES.key(subject))  # keeps the expiry
        await pipe.execute()
