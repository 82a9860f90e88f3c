"""Evaluation of detection quality against simulated ground truth (definitions in :mod:`.scoring`)."""

from antifraud.evaluation.models import EvaluationReport
from antifraud.evaluation.scoring import EvaluationError, evaluate
from antifraud.evaluation.table import format_table

__all__ = ["EvaluationError", "EvaluationReport", "evaluate", "format_table"]
