"""``antifraud simulate``: a synthetic city's events to a file or to Kafka, with ground truth."""

import argparse
import dataclasses
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from simulators.clock import LOCAL
from simulators.engine import DEFAULT_START, Config, cells_path, default_counts, default_params, simulate
from simulators.ground_truth import truth_path
from simulators.normal import Rates
from simulators.scenarios import SCENARIOS
from simulators.sinks import FileSink, KafkaSink, Sink
from simulators.worlds import WORLDS

EVERYDAY = "everyday"
"""The ``--set`` prefix of everyday rates (per resident per day), e.g. ``everyday.calls=5``."""


class Tee:
    """Both a file and Kafka."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = sinks
        self.wants_keys = any(s.wants_keys for s in sinks)

    def write(self, data: bytes, kinds: list[str], keys: list[bytes]) -> None:
        for sink in self.sinks:
            sink.write(data, kinds, keys)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def _start(text: str) -> datetime:
    """An ISO date or time; without a zone it is the city's local time (UTC+8)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=LOCAL)


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value.strip()


def _typed(owner: Any, field: str, value: str) -> Any:
    """``value`` parsed as the type of the dataclass field it sets."""
    fields = {f.name: f for f in dataclasses.fields(owner)}
    if field not in fields:
        raise ValueError(
            f"{type(owner).__module__.split('.')[-1]} has no parameter {field!r} (known: {', '.join(fields)})"
        )
    kind = type(getattr(owner, field))
    try:
        if kind is bool:
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return value.lower() in ("true", "1")
        parsed = kind(value)
    except ValueError:
        raise ValueError(f"{field}={value!r} is not a valid {kind.__name__}") from None
    if parsed < 0:
        raise ValueError(f"{field} cannot be negative")
    return parsed


def config_from(args: argparse.Namespace) -> Config:
    """The simulation asked for on the command line (raises ValueError on a bad value)."""
    if args.world not in WORLDS:
        raise ValueError(f"unknown world {args.world!r} (known: {', '.join(WORLDS)})")
    counts = default_counts(args.world)
    for name, value in args.count:
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r} (known: {', '.join(SCENARIOS)})")
        try:
            counts[name] = int(value)
        except ValueError:
            raise ValueError(f"--count {name}={value!r}: not an integer") from None
    params = default_params()
    fixed: set[str] = set()
    rates = Rates()
    for key, value in args.set:
        owner, _, field = key.partition(".")
        if owner == EVERYDAY:
            rates = dataclasses.replace(rates, **{field: _typed(rates, field, value)})
        elif owner in params:
            params[owner] = dataclasses.replace(params[owner], **{field: _typed(params[owner], field, value)})
            fixed.add(key)
        else:
            raise ValueError(f"--set {key}: expected {EVERYDAY}.FIELD or SCENARIO.FIELD")
    if args.people < 100:
        raise ValueError("--people must be at least 100")
    return Config(
        seed=args.seed,
        people=args.people,
        days=args.days,
        start=args.start,
        rates=rates,
        counts=counts,
        params=params,
        world=args.world,
        fixed=frozenset(fixed),
    )


def _run(args: argparse.Namespace) -> int:
    if args.output is None and args.kafka is None:
        sys.stderr.write("antifraud simulate: give -o/--output FILE, --kafka BOOTSTRAP, or both\n")
        return 2
    try:
        config = config_from(args)
        truth_file = args.truth or (truth_path(args.output) if args.output else None)
        for path in (args.output, truth_file):
            if path is not None and not path.parent.is_dir():
                raise ValueError(f"folder {path.parent} does not exist")
    except ValueError as exc:
        sys.stderr.write(f"antifraud simulate: {exc}\n")
        return 2
    sinks: list[Sink] = []
    if args.output:
        sinks.append(FileSink(args.output))
    if args.kafka:
        sinks.append(KafkaSink(args.kafka))
    registry = cells_path(truth_file) if truth_file else None
    truth = simulate(config, sinks[0] if len(sinks) == 1 else Tee(*sinks), registry, progress=not args.quiet)
    if truth_file:
        truth.write(truth_file)
    sys.stderr.write(
        f"{truth.event_count} events, {len(truth.scenarios)} scenarios"
        + (f"; truth {truth_file}, cell registry {registry}" if truth_file else "")
        + "\n"
    )
    return 0


def add_command(sub: argparse._SubParsersAction) -> None:
    sim = sub.add_parser(
        "simulate",
        help="simulate a city's events (with fraud and look-alikes) and their ground truth",
        description="Simulate a synthetic city deterministically: everyday life plus fraud and benign look-alike "
        "scenarios. Writes the events (gzip JSON lines), NAME.truth.json and the carrier's cell registry "
        "NAME.cells.json; or produces the events to Kafka.",
    )
    sim.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    sim.add_argument(
        "--world",
        default="sim",
        help="where each scenario instance's parameters are drawn: "
        + "; ".join(f"{w.name}: {w.description}" for w in WORLDS.values())
        + " (default sim)",
    )
    sim.add_argument("--people", type=int, default=Config.people, help=f"residents (default {Config.people})")
    sim.add_argument("--days", type=float, default=Config.days, help=f"simulated days (default {Config.days:g})")
    sim.add_argument(
        "--start",
        type=_start,
        default=DEFAULT_START,
        help=f"start, ISO date/time, local UTC+8 unless a zone is given (default {DEFAULT_START:%Y-%m-%d})",
    )
    sim.add_argument(
        "--count",
        type=_pair,
        action="append",
        default=[],
        metavar="SCENARIO=N",
        help="instances of a scenario (repeatable); scenarios and defaults: "
        + ", ".join(f"{k}={v}" for k, v in default_counts().items()),
    )
    sim.add_argument(
        "--set",
        type=_pair,
        action="append",
        default=[],
        metavar="SCENARIO.PARAM=VALUE",
        help=f"a scenario parameter or an everyday rate ({EVERYDAY}.calls=5), repeatable",
    )
    sim.add_argument("-o", "--output", type=Path, help="events file, .jsonl.gz (or .jsonl for plain text)")
    sim.add_argument("--kafka", metavar="BOOTSTRAP", help="produce the events to Kafka at this bootstrap address")
    sim.add_argument("--truth", type=Path, help="ground truth file (default: next to --output)")
    sim.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sim.set_defaults(run=_run)
