"""``antifraud evaluate``: how well the alerts of a run match its ground truth.

Alerts come from a JSON-lines file or from the whole alerts topic; the report
goes to stdout as a table (identifiers masked) or as one JSON object.
"""

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from antifraud.alerts.models import Alert
from antifraud.config import Settings
from antifraud.evaluation.inputs import InputError, read_alerts_file, read_alerts_topic, read_event_facts, read_truth
from antifraud.evaluation.models import EvaluationReport
from antifraud.evaluation.scoring import EvaluationError, evaluate
from antifraud.evaluation.table import format_table
from antifraud.thresholds import load_thresholds
from simulators.worlds import WORLDS


def _positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise ValueError(raw)
    return value


_positive_float.__name__ = "positive number"  # argparse names the type in its error message


def _seeds(raw: str) -> list[int]:
    """``1-5`` or ``1,4,9``."""
    first, dash, last = raw.partition("-")
    try:
        seeds = list(range(int(first), int(last) + 1)) if dash else [int(x) for x in raw.split(",")]
    except ValueError:
        raise ValueError(raw) from None
    if not seeds or min(seeds) < 0:
        raise ValueError(raw)
    return seeds


_seeds.__name__ = "seed range (like 1-5 or 1,4,9)"


def _alert_source(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Callable[[], list[Alert]]:
    """How the alerts will be read, settled before any input is opened."""
    alerts_path: Path | None = args.alerts
    if alerts_path is not None:
        return lambda: read_alerts_file(alerts_path)
    settings = Settings.from_env()
    bootstrap = args.bootstrap or (settings.kafka_bootstrap if "kafka_bootstrap" in settings.model_fields_set else None)
    if not bootstrap:
        parser.error(
            "give the alerts: --alerts FILE, or --bootstrap HOST:PORT (or KAFKA_BOOTSTRAP) for the alerts topic"
        )
    return lambda: read_alerts_topic(bootstrap, idle=args.idle)


def _report(args: argparse.Namespace, parser: argparse.ArgumentParser) -> EvaluationReport:
    read_alerts = _alert_source(args, parser)
    try:
        truth = read_truth(args.truth)
        alerts = read_alerts()
        events = read_event_facts(args.events, truth) if args.events is not None else None
    except InputError as exc:
        parser.error(str(exc))
    try:
        return evaluate(truth, alerts, events)
    except EvaluationError as exc:
        parser.error(f"--events {args.events}: {exc}")


def _sweep(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from antifraud.evaluation.sweep import (  # imports the stream layer
        choose_operating_points,
        format_pool,
        learn_from_analysts,
        pool,
        run_sweep,
    )

    if args.truth is not None or args.alerts is not None or args.bootstrap is not None:
        parser.error("--seeds simulates and detects by itself: it takes no --truth, --alerts or --bootstrap")
    worlds = args.world or list(WORLDS)
    unknown = sorted(set(worlds) - set(WORLDS))
    if unknown:
        parser.error(f"unknown world {unknown[0]!r} (known: {', '.join(WORLDS)})")
    if args.people < 100 or args.days <= 0:
        parser.error("--people must be at least 100 and --days positive")
    if args.target_precision > 1:
        parser.error("--target-precision is a share: at most 1")
    if not 0 <= args.learn <= 1:
        parser.error("--learn is a share of the fraud numbers and mules: from 0 to 1")
    fit_seeds = args.fit_seeds or []
    if set(fit_seeds) & set(args.seeds):
        parser.error("--fit-seeds and --seeds must not share a seed: thresholds are reported on seeds not fitted on")
    logging.getLogger().setLevel(logging.WARNING)  # a line per alert over a dozen runs would bury the table
    thresholds = load_thresholds(Settings.from_env().thresholds_path)
    runs = run_sweep(worlds, sorted({*args.seeds, *fit_seeds}), args.people, args.days, thresholds)
    if fit_seeds and args.learn > 0:
        learn_from_analysts(runs, fit_seeds, args.learn)
    pooled = pool([r for r in runs if r.seed in args.seeds])
    if fit_seeds:
        choose_operating_points(pool([r for r in runs if r.seed in fit_seeds]), pooled, args.target_precision)
    plots = []
    if args.plots is not None:
        from antifraud.evaluation.plots import write_curves  # matplotlib is slow to import; only when asked

        plots = [write_curves(world, p.ranking, args.plots) for world, p in pooled.items() if p.ranking]
    if args.json:
        data: dict[str, Any] = {"worlds": {world: p.to_json() for world, p in pooled.items()}}
        if plots:
            data["plots"] = [str(p) for p in plots]
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(format_pool(pooled))
        for path in plots:
            print(f"plot written: {path}")
    return 0


def _run(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.evaluate_parser
    if args.seeds is not None:
        return _sweep(args, parser)
    if args.world:
        parser.error("--world needs --seeds: the worlds are simulated, one run per seed")
    if args.truth is None:
        parser.error("give --truth PATH (one run's ground truth), or --seeds to simulate and detect by itself")
    report = _report(args, parser)
    plots = []
    if args.plots is not None:
        from antifraud.evaluation.plots import write_plots  # matplotlib is slow to import; only when asked

        plots = write_plots(report, args.plots)
    if args.json:
        data = report.to_json(show_entities=args.show_entities)
        if plots:
            data["plots"] = [str(p) for p in plots]
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(format_table(report, show_entities=args.show_entities))
        for path in plots:
            print(f"plot written: {path}")
    return 0


def add_command(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "evaluate",
        help="score alerts against a simulated stream's ground truth",
        description="Compare alerts with the ground truth: precision, recall and time to detect per scenario type, "
        "figures per detector, and false positives on benign look-alike scenarios.",
    )
    parser.add_argument("--truth", type=Path, metavar="PATH", help="ground truth JSON (NAME.truth.json)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--alerts", type=Path, metavar="FILE", help="alerts as JSON lines, plain or gzip")
    source.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        help="read the whole alerts topic from this Kafka (default: KAFKA_BOOTSTRAP when --alerts is not given)",
    )
    parser.add_argument(
        "--idle",
        type=_positive_float,
        default=2.0,
        metavar="SECONDS",
        help="stop reading the topic after this long without a new alert (default 2)",
    )
    parser.add_argument(
        "--events",
        type=Path,
        metavar="FILE",
        help="the events file (gzip JSON lines), for how many scenario events happened before detection",
    )
    sweep = parser.add_argument_group(
        "over simulated worlds and seeds", "simulate, detect and evaluate each (world, seed); figures pooled per world"
    )
    sweep.add_argument("--seeds", type=_seeds, metavar="A-B", help="the seeds to run, like 1-5 or 1,4,9")
    sweep.add_argument(
        "--world",
        action="append",
        metavar="NAME",
        help=f"a world to simulate (repeatable; default all: {', '.join(WORLDS)})",
    )
    sweep.add_argument(
        "--fit-seeds",
        type=_seeds,
        metavar="A-B",
        help="seeds to choose each ranked role's score threshold on (for --target-precision), reported on --seeds",
    )
    sweep.add_argument(
        "--target-precision",
        type=_positive_float,
        default=0.9,
        metavar="P",
        help="the precision a chosen threshold must reach on the fitting seeds (default 0.9)",
    )
    sweep.add_argument(
        "--learn",
        type=float,
        default=0.2,
        metavar="SHARE",
        help="with --fit-seeds: learn models from analysts' decisions on the fitting seeds (this share of their "
        "fraud numbers, and of their mules and sold cards, confirmed; their other fraud-number and mule alerts "
        "dismissed) and rank --seeds by them too (default 0.2; 0: no model)",
    )
    sweep.add_argument("--people", type=int, default=4000, help="residents per city (default 4000)")
    sweep.add_argument("--days", type=float, default=3.5, help="simulated days per run (default 3.5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--plots", type=Path, metavar="DIR", help="write PNG charts into DIR")
    parser.add_argument(
        "--show-entities",
        action="store_true",
        help="show full phone, account and ID numbers (masked in the table and absent from the JSON otherwise)",
    )
    parser.set_defaults(run=_run, evaluate_parser=parser)
