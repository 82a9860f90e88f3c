"""A Lua script called over a Redis connection of its own, the calls of concurrent requests pipelined.

Why: redis-py spends about 100 µs of CPU per command on its connection pool, retry,
timeout and event machinery; for the pre-transfer check (one script call per HTTP
request, issue 8's 5 ms p99 at 1,000 requests a second) that was more than the check's
own work. Here a call appends its future, writes one EVALSHA, and one reader task
hands the replies out in order (Redis answers a connection's commands in the order
sent), so calls in flight at the same time share the socket reads.

The connection is made by redis-py from the client's pool settings (address, password,
database, TLS, timeouts), so it is configured like every other. A connection error, or
no reply within the pool's ``socket_timeout`` (when one is set), fails every call in
flight with redis-py's error and drops the connection; the next call connects again.
A call that failed on a broken connection is sent once more on a new one, as redis-py
retries, so a Redis restart costs no check; the scripts used here only read, so sending
one twice is harmless. A server that lost the script (a restart, ``SCRIPT FLUSH``) gets
it loaded again.
"""

import asyncio
from collections import deque

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError, NoScriptError, ResponseError, TimeoutError

_CLOSED = "the script's connection was closed"


def _evalsha(sha: str, numkeys: int, args: tuple[str | bytes, ...]) -> bytes:
    """``EVALSHA sha numkeys *args`` in RESP (redis-py's general ``pack_command`` costs more than the call)."""
    parts = [b"EVALSHA", sha.encode(), b"%d" % numkeys, *(a.encode() if isinstance(a, str) else a for a in args)]
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


class PipelinedScript:
    """``await script(*args)``: the script's reply, as ``EVALSHA sha numkeys *args`` returns it (the first
    ``numkeys`` arguments are its keys)."""

    def __init__(self, redis: Redis, source: str, numkeys: int = 0) -> None:
        self._redis = redis
        self._numkeys = numkeys
        self._source = source
        self._sha = ""
        self._connection: AbstractConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: deque[asyncio.Future[object]] = deque()
        """The calls sent on the current connection and not yet answered, oldest first."""
        self._sending = asyncio.Lock()
        """Held from a call's connection lookup to the end of its write, so calls and replies pair up in order."""
        self._timeout: float | None = None
        """The pool's ``socket_timeout``: how long a call waits for its reply."""
        self._closed = False

    async def __call__(self, *args: str | bytes) -> object:
        try:
            return await self._call(args)
        except NoScriptError:
            self._sha = await self._redis.script_load(self._source)
        except ConnectionError:  # e.g. Redis restarted since the last call: once more, on a new connection
            pass
        return await self._call(args)

    async def _call(self, args: tuple[str | bytes, ...]) -> object:
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[object] = loop.create_future()
        async with self._sending:
            connection = self._connection or await self._connect()
            self._waiting.append(reply)
            try:
                await connection.send_packed_command(_evalsha(self._sha, self._numkeys, args), check_health=False)
            except Exception as exc:  # redis-py's ConnectionError; it has closed the connection
                self._drop(exc)
        if self._timeout is None:
            return await reply
        timer = loop.call_later(self._timeout, self._expire, reply)
        try:
            return await reply
        finally:
            timer.cancel()

    def _expire(self, reply: asyncio.Future[object]) -> None:
        if not reply.done():
            self._drop(TimeoutError("Timeout reading from Redis"))

    async def _connect(self) -> AbstractConnection:
        """A new connection and its reader (under ``_sending``)."""
        if self._closed:
            raise ConnectionError(_CLOSED)
        if not self._sha:
            self._sha = await self._redis.script_load(self._source)
        connection = self._redis.connection_pool.make_connection()
        await connection.connect()
        # Reads wait on an idle connection, and writes go straight out: calls time themselves out (_expire).
        self._timeout, connection.socket_timeout = connection.socket_timeout, None
        self._connection, self._waiting = connection, deque()
        self._reader = asyncio.create_task(self._read(connection, self._waiting))
        return connection

    async def _read(self, connection: AbstractConnection, waiting: deque[asyncio.Future[object]]) -> None:
        """Hand each reply to the oldest call waiting on ``connection``; if it breaks, fail them all and close it."""
        try:
            while True:
                try:
                    reply: object = await connection.read_response(disconnect_on_error=False)
                except ResponseError as exc:  # an error reply (NOSCRIPT, a script error): that call's answer
                    reply = exc
                except Exception as exc:  # the connection broke, or its replies can no longer be told apart
                    broken = (
                        exc
                        if isinstance(exc, ConnectionError)
                        else ConnectionError(f"Error reading from Redis: {exc!r}")
                    )
                    self._drop(broken)
                    return
                if not waiting:  # cannot happen while replies and calls stay paired
                    self._drop(ConnectionError("a reply from Redis that no call waited for"))
                    return
                future = waiting.popleft()
                if future.done():  # the caller gave up (cancelled)
                    continue
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        finally:
            await connection.disconnect(nowait=True)

    def _drop(self, error: Exception) -> None:
        """Fail every call in flight with ``error`` and forget the connection (its reader closes it)."""
        reader, waiting = self._reader, self._waiting
        self._connection = self._reader = None
        self._waiting = deque()
        while waiting:
            future = waiting.popleft()
            if not future.done():
                future.set_exception(error)
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()

    async def aclose(self) -> None:
        """Fail the calls in flight and close the connection; later calls fail too."""
        reader = self._reader
        self._closed = True
        self._drop(ConnectionError(_CLOSED))
        if reader is not None:
            await asyncio.gather(reader, return_exceptions=True)
