"""``antifraud baseline fit EVENTS -o FILE``: the fraud-number population baseline from recorded calls.

Give it a recent week of the input (``antifraud record call-records week.jsonl.gz``) and name the file in
``[fraud_number] baseline``: each alert's reasons then say how far out in that population each value is.
No labels are used: one sample per calling number and day, its features at its last call of the day.
"""

import argparse
import sys
from pathlib import Path

from antifraud.config import Settings
from antifraud.evaluation.ranking import fraud_number_baseline, scored_calls
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
    limits = load_thresholds(Settings.from_env().thresholds_path).fraud_number
    try:
        baseline = fraud_number_baseline(list(scored_calls(args.events, limits)))
    except EventFileError as exc:
        sys.stderr.write(f"antifraud baseline fit: {exc}\n")
        return 2
    if baseline.count == 0:
        sys.stderr.write(f"antifraud baseline fit: {args.events} has no call records to fit on\n")
        return 2
    version = save_baseline(baseline, args.output, fitted_on=args.events.name)
    print(f"{baseline.count} samples (numbers x days) from {args.events}; baseline {version[:12]} in {args.output}")
    return 0


def add_command(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "baseline",
        help="fit the fraud-number population baseline from recorded calls",
        description="Population baselines: where a number's call features stand among every calling number's.",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    fit = actions.add_parser(
        "fit",
        help="fit the baseline from an events file",
        description="One sample per calling number and day (its features at its last call of the day), no "
        "labels; name the file in [fraud_number] baseline.",
    )
    fit.add_argument("events", type=Path, help="events file (gzip or plain JSON lines), e.g. a recorded week")
    fit.add_argument("-o", "--output", type=Path, required=True, help="baseline file to write (JSON)")
    fit.set_defaults(run=_fit)
