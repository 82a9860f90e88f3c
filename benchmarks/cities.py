"""The simulated city the stream benchmarks run on, or an events file given instead."""

import argparse
import subprocess
import sys
from pathlib import Path


def add_city_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--people", type=int, default=4000)
    parser.add_argument("--days", type=float, default=3.5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--events", type=Path, help="an events file instead of a simulated city")


def city_events(args: argparse.Namespace, folder: Path) -> Path:
    """``--events``, or a city simulated into ``folder`` by ``--seed``, ``--people`` and ``--days``."""
    if args.events is not None:
        return Path(args.events)
    events = folder / "city.jsonl.gz"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "antifraud",
            "simulate",
            "--seed",
            str(args.seed),
            "--people",
            str(args.people),
            "--days",
            str(args.days),
            "-o",
            str(events),
            "-q",
        ],
        check=True,
    )
    return events
