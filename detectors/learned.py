"""A score learned from analysts' decisions: a weighting of how rare an entity's features are.

The population score (:func:`detectors.baseline.relative_score`) weighs every feature's rarity alike;
confirmed and dismissed cases say which rarities tell fraud apart where the system runs. A
:class:`LinearModel` is a logistic regression over those rarities (fitted by ``antifraud model fit``),
so its score is a sum an analyst can read: each feature's weight times how rare its value is, plus a
constant. It runs in shadow: alerting stays by the rules; the score and each feature's part in it ride
on the alert's reasons, and ``antifraud evaluate`` reports how it ranks against the rules.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from detectors.baseline import Baseline, Contribution, relative_score


@dataclass(frozen=True)
class Part:
    """One feature's part in a learned score."""

    placed: Contribution
    """Its value and place in the population (how rare, in powers of ten)."""
    weight: float
    part: float
    """``weight`` times the rarity: what it adds to the score (negative: it speaks for an ordinary entity)."""


@dataclass(frozen=True)
class LinearModel:
    """Log-odds = ``intercept`` + the sum over features of ``weights[feature]`` x its rarity."""

    weights: Mapping[str, float]
    intercept: float

    def score(self, values: Mapping[str, float], population: Baseline) -> tuple[float, list[Part]]:
        """The score (log-odds of a model fitted with the classes balanced: it orders entities, it is no
        probability) and each feature's part; a feature the model has no weight for adds nothing."""
        parts = [
            Part(p, self.weights.get(p.feature, 0.0), round(self.weights.get(p.feature, 0.0) * p.contribution, 6))
            for p in relative_score(values, population)[1]
        ]
        return round(self.intercept + sum(p.part for p in parts), 6), parts
