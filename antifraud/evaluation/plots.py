"""PNG charts of an evaluation: precision and recall per scenario type, and time to detect; for a sweep over
worlds, each world's ROC and precision-recall curves of the ranked roles.

Figures are drawn on the Agg canvas directly, never through pyplot, so no
display or global backend state is involved (works on servers and in tests).
"""

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from antifraud.evaluation.models import EvaluationReport
from antifraud.evaluation.ranking import Curves

PRECISION_RECALL_PNG = "precision_recall.png"
TIME_TO_DETECT_PNG = "time_to_detect.png"


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    FigureCanvasAgg(figure).print_figure(str(path), format="png")
    return path


def _precision_recall(report: EvaluationReport, path: Path) -> Path:
    names = list(report.scenarios)
    x = np.arange(len(names))
    figure = Figure(figsize=(max(6.0, 1.4 * len(names) + 2), 4.5))
    axes = figure.add_subplot()
    for offset, label, values in (
        (-0.2, "precision", [s.precision for s in report.scenarios.values()]),
        (0.2, "recall", [s.recall for s in report.scenarios.values()]),
    ):
        bars = axes.bar(x + offset, [v or 0.0 for v in values], width=0.4, label=label)
        axes.bar_label(bars, labels=["n/a" if v is None else f"{v:.2f}" for v in values], fontsize=8)
    axes.set_xticks(x, names, rotation=20, ha="right")
    axes.set_ylim(0, 1.25)
    axes.set_ylabel("fraction")
    axes.set_title("Precision and recall per scenario type")
    axes.legend(loc="upper right", ncols=2)
    return _save(figure, path)


def _time_to_detect(report: EvaluationReport, path: Path) -> Path:
    names = list(report.scenarios)
    seconds = [
        [i.seconds_to_detect for i in report.instances if i.scenario == name and i.seconds_to_detect is not None]
        for name in names
    ]
    figure = Figure(figsize=(max(6.0, 1.4 * len(names) + 2), 4.5))
    axes = figure.add_subplot()
    positions = [p for p, values in enumerate(seconds, 1) if values]
    if positions:
        axes.boxplot([seconds[p - 1] for p in positions], positions=positions, showmeans=True)
    else:
        axes.text(0.5, 0.5, "no scenario instance detected", transform=axes.transAxes, ha="center")
    axes.set_xticks(range(1, len(names) + 1), [f"{n}\n({len(s)} detected)" for n, s in zip(names, seconds)])
    axes.set_ylabel("seconds from scenario start to first alert")
    axes.set_title("Time to detect per scenario type")
    return _save(figure, path)


def write_plots(report: EvaluationReport, directory: Path) -> list[Path]:
    """Write the charts into ``directory`` (created if needed); return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    return [
        _precision_recall(report, directory / PRECISION_RECALL_PNG),
        _time_to_detect(report, directory / TIME_TO_DETECT_PNG),
    ]


def write_curves(world: str, ranking: dict[str, Curves], directory: Path) -> Path:
    """ROC and precision-recall curves of one world's ranked roles, side by side, as ``curves-WORLD.png``."""
    directory.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(11.0, 4.8))
    roc, pr = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    for role, c in ranking.items():
        auc = "n/a" if c.roc_auc is None else f"{c.roc_auc:.3f}"
        roc.plot([0.0, *c.fpr], [0.0, *c.tpr], drawstyle="steps-post", label=f"{role} (AUC {auc})")
        ap = "n/a" if c.pr_auc is None else f"{c.pr_auc:.3f}"
        pr.plot(c.recall, c.precision, drawstyle="steps-post", label=f"{role} (AP {ap})")
    roc.plot([0, 1], [0, 1], linestyle=":", color="grey")
    roc.set_xlabel("false positive rate")
    roc.set_ylabel("true positive rate (recall)")
    roc.set_title(f"ROC, world {world}")
    pr.set_xlabel("recall")
    pr.set_ylabel("precision")
    pr.set_ylim(0, 1.05)
    pr.set_title(f"Precision-recall, world {world}")
    for axes in (roc, pr):
        axes.legend(loc="lower right", fontsize=8)
    return _save(figure, directory / f"curves-{world}.png")
