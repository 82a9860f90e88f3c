"""A population baseline: where a value stands among what ordinary entities do.

A fixed threshold (20 distinct callees a day) says nothing about how unusual a value is where the system
runs; a quantile against the population does. A :class:`Baseline` keeps, per feature, the quantiles of the
values a population showed (fitted from a reference period, so that the same input always gives the same
scores however many workers read it) and answers with the share of the population as far out as a value
or further. :func:`rarity` turns that share into how rare the value is, in powers of ten.
"""

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

QUANTILES = 1000
"""Points kept per feature: enough to tell one in a thousand apart."""


@dataclass(frozen=True)
class FeatureQuantiles:
    """A feature's population: its values at evenly spaced quantiles, and how many values were seen."""

    points: tuple[float, ...]
    count: int

    def share_at_least(self, value: float) -> float:
        """The population's share at or above ``value`` (1 for an empty population: nothing is rare)."""
        return 1 - bisect.bisect_left(self.points, value) / len(self.points) if self.points else 1.0

    def share_at_most(self, value: float) -> float:
        """The population's share at or below ``value`` (1 for an empty population)."""
        return bisect.bisect_right(self.points, value) / len(self.points) if self.points else 1.0


@dataclass(frozen=True)
class Baseline:
    """Per feature, the population's quantiles."""

    features: Mapping[str, FeatureQuantiles]

    @property
    def count(self) -> int:
        """Samples the baseline was fitted on (those of its most observed feature)."""
        return max((f.count for f in self.features.values()), default=0)

    def beyond(self, feature: str, value: float, low_is_unusual: bool = False) -> float:
        """The population's share as far as ``value`` or further: at or above it, or at or below it for a
        feature where a low value is the unusual one (a callback ratio). 1 for a feature never fitted."""
        known = self.features.get(feature)
        if known is None:
            return 1.0
        return known.share_at_most(value) if low_is_unusual else known.share_at_least(value)


def fit(samples: Iterable[Mapping[str, float]], quantiles: int = QUANTILES) -> Baseline:
    """A baseline from samples (one per entity and period: the features an entity showed)."""
    values: dict[str, list[float]] = {}
    for sample in samples:
        for name, value in sample.items():
            values.setdefault(name, []).append(float(value))
    features = {}
    for name, seen in sorted(values.items()):
        seen.sort()
        last = len(seen) - 1
        points = tuple(seen[round(last * k / (quantiles - 1))] for k in range(quantiles)) if last >= 0 else ()
        features[name] = FeatureQuantiles(points, len(seen))
    return Baseline(features)


@dataclass(frozen=True)
class Contribution:
    """One feature's part in a population-relative score."""

    feature: str
    value: float
    beyond: float
    """The population's share as far out as this value or further."""
    contribution: float
    """How rare that is, in powers of ten (:func:`rarity`)."""


def relative_score(values: Mapping[str, float], population: Baseline) -> tuple[float, list[Contribution]]:
    """How improbable an entity's features are together among the population's: the sum over features of
    how rare each value is (a feature named ``..._max`` is unusual when low, the others when high). Equal
    weights: nothing is tuned to one simulated world; each part shows its value, its place in the population
    and its contribution."""
    parts = []
    for name, value in values.items():
        beyond = population.beyond(name, value, low_is_unusual=name.endswith("_max"))
        parts.append(Contribution(name, value, beyond, rarity(beyond, population.count)))
    return round(sum(p.contribution for p in parts), 6), parts


def rarity(share_beyond: float, population: int) -> float:
    """How rare it is to go this far: ``-log10`` of the share of the population as far or further, never
    rarer than one in the population (a baseline of 1,000 cannot tell one in a million)."""
    floor = 1 / max(population, 1)
    return 0.0 - math.log10(min(1.0, max(share_beyond, floor)))  # 0.0 - : never -0.0
