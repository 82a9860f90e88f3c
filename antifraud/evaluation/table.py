"""The evaluation report as text for a terminal, identifiers masked unless asked otherwise."""

from collections.abc import Sequence

from antifraud.alerts.models import Entity
from antifraud.evaluation.models import EvaluationReport
from antifraud.privacy import mask_entity

LIST_LIMIT = 10
"""Longest list (undetected instances, benign false positives) printed in full; the JSON has all."""


def number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def columns(
    header: Sequence[str], rows: Sequence[Sequence[str]], text_columns: frozenset[int] = frozenset({0})
) -> list[str]:
    """Text columns left-aligned, numbers right-aligned, two spaces apart."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return [
        "  ".join(
            cell.ljust(w) if i in text_columns else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))
        ).rstrip()
        for row in (header, *rows)
    ]


def _shortlist(items: Sequence[str]) -> str:
    shown = ", ".join(items[:LIST_LIMIT])
    return shown + (f" and {len(items) - LIST_LIMIT} more" if len(items) > LIST_LIMIT else "")


def _who(entity: Entity, show_entities: bool) -> str:
    return f"{entity.kind} {entity.value if show_entities else mask_entity(entity.kind, entity.value)}"


def format_table(report: EvaluationReport, *, show_entities: bool = False) -> str:
    """Scenario types, detectors and benign false positives as aligned text."""
    counts = report.alerts
    lines = [
        (
            f"alerts: {counts.received} read, {counts.distinct} distinct ({counts.duplicates} duplicate), "
            f"{report.alerted_entities} entities alerted, {report.false_positive_entities} of them false positives"
        ),
        "",
    ]
    header = [
        "scenario type",
        "instances",
        "detected",
        "targets",
        "alerted",
        "precision",
        "recall",
        "median s",
        "p90 s",
        "median events",
    ]
    rows = [
        [
            name,
            str(s.instances),
            str(s.detected_instances),
            str(s.targets),
            str(s.alerted_targets),
            number(s.precision, 3),
            number(s.recall, 3),
            number(s.median_seconds_to_detect, 1),
            number(s.p90_seconds_to_detect, 1),
            number(s.median_events_to_detect, 1),
        ]
        for name, s in report.scenarios.items()
    ]
    lines += columns(header, rows)
    undetected = [i for s in report.scenarios.values() for i in s.undetected]
    if undetected:
        lines.append(f"undetected instances: {_shortlist(undetected)}")
    if not report.events_known:
        lines.append("(events to detect need the events file: --events)")

    lines.append("")
    header = [
        "target role",
        "targets",
        "alerted",
        "precision",
        "recall",
        "median s",
        "median own events",
        "before acting",
    ]
    rows = [
        [
            name,
            str(r.targets),
            str(r.alerted_targets),
            number(r.precision, 3),
            number(r.recall, 3),
            number(r.median_seconds_to_detect, 1),
            number(r.median_own_events_to_detect, 1),
            number(r.detected_before_acting, 3),
        ]
        for name, r in report.roles.items()
    ]
    lines += columns(header, rows)

    lines.append("")
    header = ["detector", "alerts", "entities", "TP", "FP", "precision", "caught"]
    rows = [
        [
            name,
            str(d.alerts),
            str(d.alerted_entities),
            str(d.true_positive_entities),
            str(d.false_positive_entities),
            number(d.precision, 3),
            ", ".join(f"{t} {n}" for t, n in d.caught_targets.items()) or "-",
        ]
        for name, d in report.detectors.items()
    ]
    lines += columns(header, rows, frozenset({0, 6})) if rows else ["detectors: no alerts"]

    lines += ["", f"benign false positives: {report.benign_false_positives}"]
    for name, entities in report.benign_false_positive_entities.items():
        if entities:
            lines.append(f"  {name}: {len(entities)}: {_shortlist([_who(e, show_entities) for e in entities])}")
    return "\n".join(lines)
