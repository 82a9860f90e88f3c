"""``antifraud stack``: the embedded broker and redis-server in the foreground, keeping their data in a
folder, for a worker, replays and the web app to use until Ctrl-C (the demo starts its own, throwaway)."""

import argparse
import signal
import threading
from pathlib import Path

from antifraud.stack.embedded import EmbeddedStack, StackError
from streams import topics


def _run(args: argparse.Namespace) -> int:
    stack = EmbeddedStack(
        workdir=args.data, durable=not args.memory, kafka_port=args.kafka_port, redis_port=args.redis_port
    )
    try:
        endpoints = stack.start()
    except StackError as error:
        print(f"antifraud stack: {error}")
        return 1
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    try:
        topics.ensure_topics(endpoints.kafka_bootstrap, args.partitions)
        kept = "memory only: lost when it stops" if args.memory else f"kept in {args.data} across restarts"
        print(
            f"export KAFKA_BOOTSTRAP={endpoints.kafka_bootstrap} REDIS_URL={endpoints.redis_url}\n"
            f"# topics, records and offsets: {kept}; Redis: {args.data / 'redis'} (AOF). Ctrl-C stops.",
            flush=True,
        )
        stopped.wait()
    finally:
        stack.stop()
    return 0


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1 to 65535, not {port}")
    return port


def add_command(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = sub.add_parser(
        "stack",
        help="run the embedded Kafka broker and redis-server until Ctrl-C, keeping their data",
        description="Start the embedded broker (Tansu) and a redis-server on fixed ports, their data in a folder, "
        "and print the KAFKA_BOOTSTRAP and REDIS_URL to give a worker. The broker keeps topics, records "
        "and committed offsets across restarts (in s3rver, installed by make) unless --memory.",
    )
    parser.add_argument(
        "--data", type=Path, default=Path(".antifraud-stack"), help="data folder (default .antifraud-stack)"
    )
    parser.add_argument("--kafka-port", type=_port, default=9092, help="broker port (default 9092)")
    parser.add_argument("--redis-port", type=_port, default=6380, help="redis-server port (default 6380)")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the topics it creates (default 4)")
    parser.add_argument("--memory", action="store_true", help="keep the broker's data in memory only (no node needed)")
    parser.set_defaults(run=_run)
