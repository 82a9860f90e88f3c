"""A Lua script pipelined over a connection of its own, against a real redis-server."""

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

from antifraud.stack.process import free_port
from antifraud.state.pipelined import PipelinedScript

ECHO = "return ARGV[1] .. ':' .. redis.call('INCR', 'calls')"
FAIL_ON_X = "if ARGV[1] == 'x' then return redis.error_reply('no x here') end return ARGV[1]"
SLOW = """
local function now() local t = redis.call('TIME') return t[1] + t[2] / 1e6 end
local deadline = now() + tonumber(ARGV[1])
while now() < deadline do end
return ARGV[1]
"""
"""Replies after ARGV[1] seconds (a busy server: Redis runs one script at a time)."""


def test_concurrent_calls_each_get_their_own_reply_in_one_connection(redis_url: str) -> None:
    async def run() -> tuple[list[object], int]:
        client = Redis.from_url(redis_url)
        script = PipelinedScript(client, ECHO)
        replies = await asyncio.gather(*(script(f"call-{i}") for i in range(200)))
        clients = len(await client.client_list())  # this client's pool connection, and the script's own
        await script.aclose()
        await client.aclose()
        return replies, clients

    replies, clients = asyncio.run(run())
    assert [r.split(b":")[0] for r in replies] == [f"call-{i}".encode() for i in range(200)]  # type: ignore[union-attr]
    assert sorted(int(r.split(b":")[1]) for r in replies) == list(range(1, 201))  # type: ignore[union-attr]
    assert clients == 2


def test_an_error_reply_fails_only_its_own_call(redis_url: str) -> None:
    async def run() -> list[object]:
        client = Redis.from_url(redis_url)
        script = PipelinedScript(client, FAIL_ON_X)
        replies = await asyncio.gather(script("a"), script("x"), script("b"), return_exceptions=True)
        await script.aclose()
        await client.aclose()
        return replies

    first, failed, last = asyncio.run(run())
    assert (first, last) == (b"a", b"b")
    assert isinstance(failed, ResponseError) and "no x here" in str(failed)


def test_a_flushed_script_is_loaded_again(redis_url: str) -> None:
    async def run() -> tuple[object, object]:
        client = Redis.from_url(redis_url)
        script = PipelinedScript(client, FAIL_ON_X)
        before = await script("a")
        await client.script_flush()
        after = await script("b")
        await script.aclose()
        await client.aclose()
        return before, after

    assert asyncio.run(run()) == (b"a", b"b")


def test_a_killed_connection_is_made_again_and_the_call_retried(redis_url: str) -> None:
    async def run() -> tuple[object, object]:
        client = Redis.from_url(redis_url)
        script = PipelinedScript(client, FAIL_ON_X)
        before = await script("a")
        await client.client_kill_filter(_type="normal", skipme=True)  # the script's connection
        after = await script("b")
        await script.aclose()
        await client.aclose()
        return before, after

    assert asyncio.run(run()) == (b"a", b"b")


def test_no_redis_is_a_connection_error() -> None:
    async def run() -> None:
        client = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
        script = PipelinedScript(client, FAIL_ON_X)
        try:
            await script("a")
        finally:
            await script.aclose()
            await client.aclose()

    with pytest.raises(ConnectionError):
        asyncio.run(run())


def test_a_reply_later_than_the_socket_timeout_fails_the_call_and_the_next_call_is_answered(redis_url: str) -> None:
    async def run() -> tuple[BaseException | object, object]:
        client = Redis.from_url(f"{redis_url}?socket_timeout=0.2")
        script = PipelinedScript(client, SLOW)
        late = (await asyncio.gather(script("0.5"), return_exceptions=True))[0]
        await asyncio.sleep(0.5)  # the server finishes the slow call
        prompt = await script("0")
        await script.aclose()
        await client.aclose()
        return late, prompt

    late, prompt = asyncio.run(run())
    assert isinstance(late, TimeoutError), late
    assert prompt == b"0"


def test_closing_fails_calls_in_flight_instead_of_leaving_them_waiting(redis_url: str) -> None:
    async def run() -> BaseException | object:
        client = Redis.from_url(redis_url)
        script = PipelinedScript(client, SLOW)
        in_flight = asyncio.ensure_future(script("0.3"))
        await asyncio.sleep(0.1)
        await script.aclose()
        outcome = (await asyncio.gather(in_flight, return_exceptions=True))[0]
        await client.aclose()
        return outcome

    outcome = asyncio.run(run())
    assert isinstance(outcome, ConnectionError) and "closed" in str(outcome), outcome
