"""``antifraud``: the command line. ``worker`` runs the stream agents, ``demo`` the whole path."""

import argparse
import logging
import sys

from antifraud.config import ConfigError


def _worker(extra: list[str]) -> int:
    from streams.app import app  # imported here: building the app reads the environment

    sys.argv = ["antifraud", "worker", *extra]
    app.main()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from antifraud.demo import run_demo

    run_demo(sys.stdout, timeout=args.timeout)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="antifraud", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "worker",
        help="run the stream worker (extra arguments go to Faust, e.g. -l info)",
        description="Run the Faust worker. Configure with KAFKA_BOOTSTRAP, REDIS_URL and ANTIFRAUD_* variables.",
    )
    demo = sub.add_parser("demo", help="run the built-in stream through the embedded stack and print alerts")
    demo.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the worker (default 120)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "worker":
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python logs every connection at INFO
    try:
        if args.command == "worker":
            return _worker(extra)
        return _demo(args)
    except ConfigError as exc:
        parser.exit(2, f"antifraud: configuration error: {exc}\n")
