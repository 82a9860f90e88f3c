"""``antifraud``: the command line.

Each subcommand lives beside what it drives and registers itself through an
``add_command(subparsers)`` function that sets ``run`` (args -> exit code).
"""

import argparse
import logging
import os
import sys
from collections.abc import Callable

from antifraud import blocklist
from antifraud.audit.cli import add_command as add_audit
from antifraud.config import ConfigError
from antifraud.credit.cli import add_command as add_blacklist
from antifraud.evaluation.cli import add_command as add_evaluate
from antifraud.evaluation.fit import add_command as add_baseline
from antifraud.evaluation.learn import add_command as add_model
from antifraud.holds.cli import add_command as add_holds
from antifraud.stack.cli import add_command as add_stack
from antifraud.web.cli import add_command as add_web
from antifraud.web.users_cli import add_command as add_users
from simulators.cli import add_command as add_simulate
from streams import offline, record, replay


def _worker(args: argparse.Namespace) -> int:
    if args.role is not None:
        os.environ["ANTIFRAUD_WORKER_ROLE"] = args.role
    from streams.app import app  # imported here: building the app reads the environment

    sys.argv = ["antifraud", "worker", *args.faust_args]
    app.main()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from antifraud.demo import run_demo

    run_demo(sys.stdout, seed=args.seed, people=args.people, days=args.days, timeout=args.timeout)
    return 0


def _add_core_commands(sub: argparse._SubParsersAction) -> None:
    worker = sub.add_parser(
        "worker",
        help="run the stream worker (extra arguments go to Faust, e.g. -l info)",
        description="Run the Faust worker. Configure with KAFKA_BOOTSTRAP, REDIS_URL and ANTIFRAUD_* variables.",
    )
    worker.add_argument(
        "--role",
        choices=["stream", "jobs", "all"],
        help="stream: the input loop and the alerts agent; jobs: deliveries, follow-ups, the outbox relay, the "
        "audit seal and the sweeps; all: both (default: ANTIFRAUD_WORKER_ROLE, else all)",
    )
    worker.set_defaults(run=_worker, passthrough=True)
    demo = sub.add_parser(
        "demo",
        help="simulate a small city through the embedded stack, print alerts and the evaluation",
        description="Start the embedded stack and a worker, stream a simulated city through them, "
        "print alerts as they happen, then a summary and the evaluation against the ground truth.",
    )
    demo.add_argument("--seed", type=int, default=1, help="simulator seed (default 1)")
    demo.add_argument("--people", type=int, default=2000, help="residents of the simulated city (default 2000)")
    demo.add_argument("--days", type=float, default=2.0, help="simulated days (default 2)")
    demo.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the worker (default 300)")
    demo.set_defaults(run=_demo)


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_core_commands,
    add_stack,
    add_simulate,
    replay.add_command,
    record.add_command,
    offline.add_command,
    blocklist.add_command,
    add_holds,
    add_blacklist,
    add_evaluate,
    add_baseline,
    add_model,
    add_audit,
    add_web,
    add_users,
]
"""Registration functions of every subcommand, in help order."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="antifraud", description="Anti-fraud stream monitor for telecom and banking.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add_command in COMMANDS:
        add_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passthrough", False):
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    args.faust_args = extra
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python logs every connection at INFO
    try:
        return int(args.run(args))
    except ConfigError as exc:
        parser.exit(2, f"antifraud: configuration error: {exc}\n")
