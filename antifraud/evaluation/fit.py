"""``antifraud baseline fit EVENTS -o FILE [--population numbers|accounts]``: a population baseline from
recorded events.

Give it a recent week of the input (``antifraud record call-records week.jsonl.gz``, or bank-transfers) and
name the file in ``[fraud_number] baseline`` (numbers: each alert's reasons then say how far out in that
population each value is) or ``[transfer_risk] baseline`` (accounts: mules are then also judged by how rare
their money moves are). No labels are used: one sample per calling number, or account, and day, its
features at its last call, or transfer, of the day.
"""

import argparse
import sys
from pathlib import Path

from antifraud.config import Settings
from antifraud.evaluation.ranking import ScoredAccounts, fraud_number_baseline, scored_calls
from antifraud.state.baseline import save_baseline
from antifraud.thresholds import load_thresholds
from streams.eventfile import EventFileError


def _fit(args: argparse.Namespace) -> int:
    if not args.events.is_file():
        sys.stderr.write(f"antifraud baseline fit: no events file {args.events}\n")
        return 2
    if not args.output.parent.is_dir():
        sys.stderr.write(f"antifraud baseline fit: folder {args.output.parent} does not exist\n")
        return 2
    thresholds = load_thresholds(Settings.from_env().thresholds_path)
    try:
        if args.population == "accounts":
            baseline = ScoredAccounts.of(args.events, thresholds.transfer_risk).baseline()
        else:
            baseline = fraud_number_baseline(list(scored_calls(args.events, thresholds.fraud_number)))
    except EventFileError as exc:
        sys.stderr.write(f"antifraud baseline fit: {exc}\n")
        return 2
    records, samples = POPULATIONS[args.population]
    if baseline.count == 0:
        sys.stderr.write(f"antifraud baseline fit: {args.events} has no {records} to fit on\n")
        return 2
    version = save_baseline(baseline, args.output, fitted_on=args.events.name)
    print(f"{baseline.count} samples ({samples}) from {args.events}; baseline {version[:12]} in {args.output}")
    return 0


POPULATIONS = {"numbers": ("call records", "numbers x days"), "accounts": ("bank transfers", "accounts x days")}
"""Population -> what it is fitted on, what one sample is."""


def add_command(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "baseline",
        help="fit a population baseline (calling numbers, or accounts) from recorded events",
        description="Population baselines: where a number's call features stand among every calling number's, "
        "or an account's money moves among every account's.",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    fit = actions.add_parser(
        "fit",
        help="fit the baseline from an events file",
        description="One sample per calling number, or account, and day (its features at its last call, or "
        "transfer, of the day), no labels; name the file in [fraud_number] baseline, or [transfer_risk] baseline.",
    )
    fit.add_argument("events", type=Path, help="events file (gzip or plain JSON lines), e.g. a recorded week")
    fit.add_argument("-o", "--output", type=Path, required=True, help="baseline file to write (JSON)")
    fit.add_argument(
        "--population",
        choices=sorted(POPULATIONS),
        default="numbers",
        help="calling numbers (for [fraud_number] baseline) or accounts (for [transfer_risk] baseline); "
        "default numbers",
    )
    fit.set_defaults(run=_fit)
