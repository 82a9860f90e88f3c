"""``antifraud evaluate --seeds 1-5 --world wide``: detection judged over several simulated worlds and seeds.

One seed of one world says little: a threshold can sit just under what its one fraud team does. The sweep
simulates every (world, seed) pair, runs ``antifraud detect``'s path over it (with the world's cell
registry and an accounts' baseline fitted on the run's own transfers, without labels, as an operator fits one
on a recorded week; on one redis-server emptied between runs) and evaluates the alerts against the truth; per world
and target role it pools the runs: targets, alerted targets and false-positive entities summed over seeds
(so precision and recall weigh every target alike), and the lowest and highest recall of a single seed.
Roles a detector ranks (:mod:`antifraud.evaluation.ranking`) also get ROC-AUC and PR-AUC over the pooled
scores of all seeds.
"""

import asyncio
import random
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import redis.asyncio

from antifraud.alerts.models import Alert, Entity
from antifraud.evaluation.learn import fit_model
from antifraud.evaluation.models import EvaluationReport
from antifraud.evaluation.ranking import (
    EQUAL_WEIGHTS,
    Curves,
    Rarities,
    ScoredAccounts,
    curves,
    fraud_number_baseline,
    fraud_number_scores,
    scored_calls,
)
from antifraud.evaluation.scoring import evaluate
from antifraud.evaluation.table import columns, number
from antifraud.stack.embedded import EmbeddedStack
from antifraud.state.baseline import save_baseline
from antifraud.thresholds import Thresholds
from detectors import fraud_number
from detectors.learned import LinearModel
from detectors.transfer_risk import MULE_DETECTOR
from simulators.engine import Config, cells_path, default_counts, simulate
from simulators.ground_truth import GroundTruth, truth_path
from simulators.sinks import FileSink
from streams.offline import detect_file


@dataclass
class RolePool:
    """One target role in one world, over the seeds."""

    targets: int = 0
    alerted: int = 0
    false_positives: int = 0
    recalls: list[float] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.alerted / self.targets if self.targets else 0.0

    @property
    def precision(self) -> float | None:
        return self.alerted / (self.alerted + self.false_positives) if self.alerted + self.false_positives else None


RANKED_ROLES = {
    "fraud_call_team/fraud_number": "phone",
    "wangiri/one_ring_number": "phone",
    "fraud_call_team/mule": "account",
    "card_dealer/sold_card": "account",
}
"""The roles whose detector scores every entity it sees, and the kind of entity scored: the fraud-number
scores for phones, the mule scores for accounts (a sold card collects victims' money as a mule does)."""


@dataclass(frozen=True)
class Run:
    """One (world, seed): its evaluation, and the scores with the targets they are judged against."""

    world: str
    seed: int
    report: EvaluationReport
    scores: dict[str, dict[Entity, float]] = field(default_factory=dict)
    """Score name -> entity -> its score: for fraud numbers ``rules`` (the rules' thresholds with partial
    credit), ``population`` (how rare the features are among the city's callers) and, once a model is
    learned (:func:`learn_from_analysts`), ``learned``; for accounts ``rules`` (the worker's mule score)
    and ``population`` (how rare their money's moves are among the city's accounts)."""
    targets: dict[str, set[Entity]] = field(default_factory=dict)
    """Role (``scenario/role``) -> its targets."""
    rarities: dict[str, Rarities] = field(default_factory=dict)
    """Per kind of entity ranked (``phone``, ``account``), how rare each feature is at every scoring: what a
    learned model scores."""
    alerted: set[Entity] = field(default_factory=set)
    """The numbers and accounts the fraud-number and mule detectors alerted on (what analysts would decide)."""

    @property
    def fraud_targets(self) -> set[Entity]:
        return set().union(*self.targets.values())


def role_targets(truth: GroundTruth) -> dict[str, set[Entity]]:
    targets: dict[str, set[Entity]] = defaultdict(set)
    for scenario in truth.scenarios:
        for e in scenario.entities:
            if e.target:
                targets[f"{scenario.scenario}/{e.role}"].add(Entity(kind=e.kind, value=e.value))
    return dict(targets)


@dataclass(frozen=True)
class OperatingPoint:
    """A score threshold chosen on some seeds for a target precision, and what it gives on others."""

    fit_seeds: list[int]
    target_precision: float
    threshold: float | None
    """None: no threshold reached the target precision on the fitting seeds."""
    precision: float | None
    recall: float


@dataclass
class WorldPool:
    seeds: list[int] = field(default_factory=list)
    roles: dict[str, RolePool] = field(default_factory=lambda: defaultdict(RolePool))
    ranking: dict[str, Curves] = field(default_factory=dict)
    """``ROLE by SCORE`` -> how that score ranks that role's targets."""
    operating: dict[str, OperatingPoint] = field(default_factory=dict)
    """As :attr:`ranking`, when thresholds were fitted on other seeds (:func:`choose_operating_points`)."""
    benign_false_positives: int = 0

    def to_json(self) -> dict[str, Any]:
        """The figures as plain JSON values (``antifraud evaluate --seeds ... --json``)."""
        return {
            "seeds": self.seeds,
            "benign_false_positives": self.benign_false_positives,
            "roles": {
                role: {
                    "targets": f.targets,
                    "alerted_targets": f.alerted,
                    "false_positive_entities": f.false_positives,
                    "precision": f.precision,
                    "recall": f.recall,
                    "recall_per_seed": f.recalls,
                }
                for role, f in sorted(self.roles.items())
            },
            "ranking": {
                role: {"positives": c.positives, "negatives": c.negatives, "roc_auc": c.roc_auc, "pr_auc": c.pr_auc}
                for role, c in self.ranking.items()
            },
            "operating_points": {role: asdict(op) for role, op in self.operating.items()},
        }


def pool(runs: Sequence[Run]) -> dict[str, WorldPool]:
    """Per world, the roles' figures summed over its seeds, and the ranked roles' curves over all its seeds'
    scores (an entity is told apart by its seed: the cities differ)."""
    worlds: dict[str, WorldPool] = defaultdict(WorldPool)
    for run in runs:
        into = worlds[run.world]
        into.seeds.append(run.seed)
        into.benign_false_positives += run.report.benign_false_positives
        for name, role in run.report.roles.items():
            figures = into.roles[name]
            figures.targets += role.targets
            figures.alerted += role.alerted_targets
            figures.false_positives += role.false_positive_entities
            figures.recalls.append(role.recall)
    for world, into in worlds.items():
        runs_of = [r for r in runs if r.world == world]
        others = {(r.seed, e) for r in runs_of for e in r.fraud_targets}
        for ranked, kind in RANKED_ROLES.items():
            positives = {(r.seed, e) for r in runs_of for e in r.targets.get(ranked, ())}
            for name in sorted({n for r in runs_of for n in r.scores}):
                scores = {(r.seed, e): v for r in runs_of for e, v in r.scores.get(name, {}).items() if e.kind == kind}
                if positives and scores:
                    into.ranking[f"{ranked} by {name}"] = curves(scores, positives, others)
    return dict(worlds)


def choose_operating_points(fitted: dict[str, WorldPool], pooled: dict[str, WorldPool], target: float) -> None:
    """For each world and ranked role, the threshold that reaches ``target`` precision with the most recall
    on the fitting seeds (``fitted``), and the precision and recall it gives on the reported seeds."""
    for world, into in pooled.items():
        for role, reported in into.ranking.items():
            fit = fitted.get(world)
            curve = fit.ranking.get(role) if fit is not None else None
            threshold = curve.threshold_for(target) if curve is not None else None
            precision, recall = reported.at(threshold) if threshold is not None else (None, 0.0)
            seeds = fit.seeds if fit is not None else []
            into.operating[role] = OperatingPoint(seeds, target, threshold, precision, recall)


def analysts_labels(run: Run, share: float, kind: str = "phone") -> dict[str, bool]:
    """What analysts would have decided in one run about entities of ``kind``: ``share`` of its targets of
    the ranked roles of that kind (fraud numbers, or mules and sold cards; drawn by the run's seed)
    confirmed, and every alert of theirs on an entity that is no fraud target dismissed."""
    draw = random.Random(run.seed)
    targets = sorted({e.value for role, k in RANKED_ROLES.items() if k == kind for e in run.targets.get(role, ())})
    labels = {e.value: False for e in run.alerted if e.kind == kind and e not in run.fraud_targets}
    labels.update((n, True) for n in targets if draw.random() < share)
    return labels


def learn_from_analysts(
    runs: Sequence[Run], fit_seeds: Sequence[int], share: float
) -> dict[tuple[str, str], LinearModel]:
    """Per world and kind of entity ranked, a model fitted on its fitting seeds' runs with
    :func:`analysts_labels`, its ``learned`` score added to every run of the world (the reported seeds' are
    held out: nothing of them was labelled)."""
    models = {}
    for world, kind in sorted({(r.world, kind) for r in runs for kind in r.rarities}):
        fitting = [
            (r, r.rarities[kind]) for r in runs if r.world == world and r.seed in fit_seeds and kind in r.rarities
        ]
        rows, labels = [], []
        for run, table in fitting:
            decided = analysts_labels(run, share, kind)
            rows.append(table.rows[table.daily])
            labels += [decided.get(table.callers[n], False) for n in table.daily]
        if not fitting or not any(labels):
            continue  # nothing confirmed: no model for this world
        features = fitting[0][1].features
        model = models[world, kind] = fit_model(np.vstack(rows), labels, features=features)
        for run in runs:
            if run.world == world and kind in run.rarities:
                run.scores["learned"] = run.scores.get("learned", {}) | run.rarities[kind].best(model)
    return models


async def _detect(events: Path, redis_url: str, thresholds: Thresholds) -> list[Alert]:
    alerts: list[Alert] = []
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        await detect_file(events, client, thresholds, lambda raw: alerts.append(Alert.model_validate_json(raw)))
        await client.flushdb()
    finally:
        await client.aclose()
    return alerts


def run_sweep(
    worlds: Sequence[str], seeds: Sequence[int], people: int, days: float, thresholds: Thresholds
) -> list[Run]:
    """Simulate, detect and evaluate every (world, seed); the files live in a folder removed afterwards."""
    reports = []
    with tempfile.TemporaryDirectory(prefix="antifraud-sweep-") as folder, EmbeddedStack(kafka=False) as stack:
        for world in worlds:
            for seed in seeds:
                events = Path(folder) / f"{world}-{seed}.jsonl.gz"
                registry = cells_path(truth_path(events))
                config = Config(seed=seed, people=people, days=days, world=world, counts=default_counts(world))
                truth = simulate(config, FileSink(events), registry)
                accounts = ScoredAccounts.of(events, thresholds.transfer_risk)
                population = Path(folder) / f"{world}-{seed}.accounts.json"  # as an operator fits it on a week
                accounts_baseline = accounts.baseline()
                save_baseline(accounts_baseline, population, fitted_on=events.name)
                run = thresholds.model_copy(
                    update={
                        "fake_base_station": thresholds.fake_base_station.model_copy(
                            update={"registry": str(registry)}
                        ),
                        "transfer_risk": thresholds.transfer_risk.model_copy(update={"baseline": str(population)}),
                    }
                )
                alerts = asyncio.run(_detect(events, stack.redis_url, run))
                limits = thresholds.fraud_number
                scored = list(scored_calls(events, limits))  # the file read once for the baseline and the scores
                rarities = {
                    "phone": Rarities.of(scored, fraud_number_baseline(scored)),
                    "account": accounts.rarities(accounts_baseline),
                }
                ranked = accounts.scores(rarities["account"])
                scores = {
                    "rules": fraud_number_scores(scored, limits) | ranked["rules"],
                    "population": rarities["phone"].best(EQUAL_WEIGHTS) | ranked["population"],
                }
                alerted = {a.entity for a in alerts if a.detector in (fraud_number.DETECTOR, MULE_DETECTOR)}
                report = evaluate(truth, alerts, None)
                reports.append(Run(world, seed, report, scores, role_targets(truth), rarities, alerted))
                events.unlink()
    return reports


def format_pool(worlds: dict[str, WorldPool]) -> str:
    """Per world, each role's pooled precision and recall and its range of per-seed recall."""
    lines = []
    for name, world in worlds.items():
        lines.append(
            f"world {name}, seeds {', '.join(map(str, world.seeds))}: "
            f"{world.benign_false_positives} benign look-alikes alerted"
        )
        rows = [
            [
                role,
                str(f.targets),
                str(f.alerted),
                str(f.false_positives),
                number(f.precision, 3),
                number(f.recall, 3),
                f"{min(f.recalls):.3f}-{max(f.recalls):.3f}",
            ]
            for role, f in sorted(world.roles.items())
        ]
        lines += columns(["target role", "targets", "alerted", "FP", "precision", "recall", "recall/seed"], rows)
        if world.ranking:
            lines.append("")
            header = ["ranked by score", "positives", "negatives", "ROC-AUC", "PR-AUC"]
            table = [
                [role, str(c.positives), str(c.negatives), number(c.roc_auc, 3), number(c.pr_auc, 3)]
                for role, c in world.ranking.items()
            ]
            if world.operating:
                point = next(iter(world.operating.values()))
                fit = ",".join(map(str, point.fit_seeds))
                header += [f"threshold (seeds {fit}, P>={point.target_precision:g})", "precision", "recall"]
                for row, role in zip(table, world.ranking):
                    op = world.operating[role]
                    row += [number(op.threshold, 3), number(op.precision, 3), number(op.recall, 3)]
            lines += columns(header, table)
        lines.append("")
    return "\n".join(lines).rstrip()
