"""Pre-transfer check latency: p50/p99 at a fixed request rate against ``antifraud web``.

The server is ``antifraud web --workers WORKERS`` in a child process over an
embedded Redis and broker, with Redis holding what the worker would keep for
20,000 payers (30 outflows each, a listed number's calls to one payer in ten, a
blacklisted payee in fifty, payee openings and bulk-opener flags). This process
is the load: an open-loop schedule of RATE requests a second for SECONDS seconds
over keep-alive HTTP/1.1 connections, each request a different payer and payee.
The client is asyncio protocol callbacks on uvloop (no task or stream per request),
so its own CPU, which the server shares the two cores with, stays small (Debian's
wrk runs closed loops only, which hide queueing delays).

Latency is measured client-side, from the moment a request was *due* by the
schedule to the moment its whole response was read: a request that waits for a
free connection or for a stalled server counts that wait (no coordinated
omission). The first WARMUP seconds are left out. The server's CPU time per request
(its processes' user + system time over the run, from /proc) is printed too: it
says how much of the machine the check needs, whatever else runs on it. On a
virtual machine it includes the cost of waking from idle, twice a request (the
request, Redis's reply): tens of microseconds each, more the idler the machine.
Run: ``.venv/bin/python benchmarks/bench_check.py [RATE] [SECONDS] [WORKERS]`` (default 1000 20 2).
"""

import asyncio
import json
import os
import random
import sys
import tempfile
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import cast

import uvloop
from redis.asyncio import Redis

from antifraud.stack.embedded import EmbeddedStack, audit_key
from antifraud.stack.process import free_port, spawn, stop
from antifraud.state import keys
from antifraud.state.accounts import FlaggedCodec, OpenedCodec
from antifraud.state.transfer_risk import CallCodec, InflowCodec, OutflowCodec
from antifraud.web.auth import token_sha256
from detectors.accounts import AccountInfo
from detectors.transfer_risk import Call, Flow
from streams import topics

PAYERS = 20_000
OUTFLOWS = 30
CONNECTIONS = 32
WARMUP = 2.0
TOKEN = "bench-token"
ID_NUMBER = "320585198609013410"


def payer(i: int) -> str:
    return f"6222{i:012d}"


def payee(i: int) -> str:
    return f"6228{i:012d}"


def phone(i: int) -> str:
    return f"139{i:08d}"


async def seed(redis_url: str) -> None:
    """What the worker would have written for PAYERS payers (through the stores' codecs), in pipelines."""
    client = Redis.from_url(redis_url)
    now = time.time()
    async with client.pipeline(transaction=False) as pipe:
        for i in range(PAYERS):
            flows = [
                Flow(
                    f"e{i}-{k}",
                    now - 86400 * (k + 1) / 2,
                    payee((i + k) % PAYERS),
                    200_000 + 1000 * k,
                    "counter",
                    False,
                )
                for k in reversed(range(OUTFLOWS))
            ]
            pipe.zadd(keys.TRANSFER_OUT.key(payer(i)), {OutflowCodec().encode(f): f.at for f in flows})
            inflow = Flow(f"e{i}-in", now - 3600, payer(i), 300_000, "counter", False)
            pipe.zadd(keys.INFLOWS.key(payee(i)), {InflowCodec().encode(inflow): inflow.at})
            opened = AccountInfo(now - 86400 * 5, f"id{i % 500}", "icbc", "B1", f"o{i}")
            pipe.zadd(keys.OPENED.key(payee(i)), {OpenedCodec().encode(opened): opened.opened_at})
            if i % 10 == 0:
                call = Call("17055550009", now - 1800, 1500, f"c{i}")
                pipe.zadd(keys.REACHED.key(phone(i)), {CallCodec().encode(call): call.at})
            if i % 50 == 0:
                pipe.sadd(keys.BLACKLIST.key(), payee(i))
            if i % 500 == 0:
                pipe.zadd(keys.BULK_OPENERS.key(f"id{i}"), {FlaggedCodec().encode(now): now})
            if len(pipe) > 5000:
                await pipe.execute()
        await pipe.execute()
    await client.aclose()


def requests(count: int, port: int) -> list[bytes]:
    """``count`` distinct pre-encoded check requests."""
    out = []
    for _ in range(count):
        i = random.randrange(PAYERS)
        body = json.dumps(
            {
                "channel": "counter",
                "branch_id": "B001",
                "payer_account": payer(i),
                "payer_name": "王芳",
                "payer_id_number": ID_NUMBER,
                "payee_account": payee(random.randrange(PAYERS)),
                "payee_name": "李强",
                "amount_fen": random.choice([50_000, 300_000, 3_000_000]),
                "payer_phone": phone(i),
            }
        ).encode()
        out.append(
            b"POST /api/check HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (port, TOKEN.encode(), len(body), body)
        )
    return out


class _Connection(asyncio.Protocol):
    """One keep-alive connection of the load: sends a request, reads its whole response, reports it."""

    def __init__(self, done: Callable[["_Connection", bool], None], lost: Callable[[Exception | None], None]) -> None:
        self.done = done
        self.lost = lost
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.due = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost(exc)

    def send(self, request: bytes, due: float) -> None:
        assert self.transport is not None
        self.due = due
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].lower()
        at = head.index(b"content-length: ") + len(b"content-length: ")
        line_end = head.find(b"\r\n", at)
        length = int(head[at : line_end if line_end >= 0 else len(head)])
        if len(self.buffer) < end + 4 + length:
            return
        self.buffer = self.buffer[end + 4 + length :]
        self.done(self, head.startswith(b"http/1.1 200"))


async def load(port: int, rate: float, seconds: float) -> tuple[list[float], int, float]:
    """Send at ``rate``/s for ``seconds``; returns latencies (s) after warm-up, errors, elapsed.

    Callbacks on asyncio protocols rather than a task and stream per request, so the
    client's own CPU (it shares the machine with the server) stays small.
    """
    loop = asyncio.get_running_loop()
    bodies = requests(5000, port)
    latencies: list[float] = []
    errors = 0
    free: deque[_Connection] = deque()
    waiting: deque[tuple[int, float]] = deque()
    total = int(rate * seconds)
    answered = loop.create_future()
    count = 0
    start = 0.0

    def done(connection: _Connection, ok: bool) -> None:
        nonlocal errors, count
        if connection.due - start >= WARMUP:
            latencies.append(time.perf_counter() - connection.due)
        errors += not ok
        count += 1
        if count == total:
            answered.set_result(None)
        elif waiting:  # a request that found every connection busy goes next, timed from when it was due
            n, due = waiting.popleft()
            connection.send(bodies[n % len(bodies)], due)
        else:
            free.append(connection)

    def lost(exc: Exception | None) -> None:
        if not answered.done():
            answered.set_exception(ConnectionError(f"the server closed a connection ({exc or 'EOF'})"))

    connections = [
        (await loop.create_connection(lambda: _Connection(done, lost), "127.0.0.1", port))[1]
        for _ in range(CONNECTIONS)
    ]
    free.extend(connections)
    start = time.perf_counter() + 0.1
    for n in range(total):
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if free:
            free.popleft().send(bodies[n % len(bodies)], due)
        else:
            waiting.append((n, due))
    await answered
    elapsed = time.perf_counter() - start
    for connection in connections:
        assert connection.transport is not None
        connection.transport.close()
    return latencies, errors, elapsed


def cpu_seconds(root: int) -> float:
    """CPU time (user + system) of a process and its descendants so far, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    family, total = {root}, 0.0
    while True:
        grown = family | {pid for pid, (ppid, _) in stats.items() if ppid in family}
        if grown == family:
            break
        family = grown
    for pid in family:
        total += stats.get(pid, (0, 0.0))[1]
    return total


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def main(rate: float, seconds: float, workers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, EmbeddedStack(workdir=Path(tmp)) as endpoints:
        topics.ensure_topics(endpoints.kafka_bootstrap, 2)
        asyncio.run(seed(endpoints.redis_url))
        port = free_port()
        users = {
            "users": [{"name": "bench", "role": "teller", "branch_id": "B001", "token_sha256": token_sha256(TOKEN)}]
        }
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap,
            "REDIS_URL": endpoints.redis_url,
            "ANTIFRAUD_SECRET_KEY": "b" * 32,
            "ANTIFRAUD_USERS": json.dumps(users),
            "ANTIFRAUD_AUDIT_KEY": audit_key(),
        }
        server = spawn(
            [sys.executable, "-m", "antifraud", "web", "--port", str(port), "--workers", str(workers)],
            log_path=Path(tmp) / "web.log",
            env=env,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=1)
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit(f"antifraud web did not start; log {Path(tmp) / 'web.log'}") from None
                    time.sleep(0.2)
            load_before = os.getloadavg()[0]
            cpu_before = cpu_seconds(server.pid)
            client_before = time.process_time()
            latencies, errors, elapsed = uvloop.run(load(port, rate, seconds))
            server_cpu = cpu_seconds(server.pid) - cpu_before
            client_cpu = time.process_time() - client_before
        finally:
            stop(server)
    latencies.sort()
    sent = int(rate * seconds)
    print(
        f"pre-transfer check, {PAYERS} payers in Redis, {workers} uvicorn process(es), {CONNECTIONS} keep-alive connections"
        f" (machine load average {load_before:.2f} before the run, {os.cpu_count()} CPUs)"
    )
    print(
        f"  {sent} requests at {rate:.0f}/s scheduled, {sent / elapsed:.0f}/s achieved, {errors} errors;"
        f" CPU per request: server {server_cpu / sent * 1e6:.0f} us, this client {client_cpu / sent * 1e6:.0f} us"
    )
    print(f"  latency after {WARMUP:.0f} s warm-up ({len(latencies)} requests, client-side, from the scheduled time):")
    print(
        "  "
        + "  ".join(f"p{int(q * 100)} {percentile(latencies, q) * 1000:.2f} ms" for q in (0.5, 0.9, 0.99))
        + f"  max {latencies[-1] * 1000:.2f} ms"
    )


if __name__ == "__main__":
    random.seed(1)
    arguments = [float(a) for a in sys.argv[1:4]]
    rate, seconds, workers = arguments + [1000.0, 20.0, 2.0][len(arguments) :]
    main(rate, seconds, int(workers))
