"""``antifraud evaluate --seeds 1-5 --world wide``: detection judged over several simulated worlds and seeds.

One seed of one world says little: a threshold can sit just under what its one fraud team does. The sweep
simulates every (world, seed) pair, runs ``antifraud detect``'s path over it (with the world's cell
registry, on one redis-server emptied between runs) and evaluates the alerts against the truth; per world
and target role it pools the runs: targets, alerted targets and false-positive entities summed over seeds
(so precision and recall weigh every target alike), and the lowest and highest recall of a single seed.
"""

import asyncio
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio

from antifraud.alerts.models import Alert
from antifraud.evaluation.models import EvaluationReport
from antifraud.evaluation.scoring import evaluate
from antifraud.evaluation.table import columns, number
from antifraud.stack.embedded import EmbeddedStack
from antifraud.thresholds import Thresholds
from simulators.engine import Config, cells_path, default_counts, simulate
from simulators.ground_truth import truth_path
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


@dataclass
class WorldPool:
    seeds: list[int] = field(default_factory=list)
    roles: dict[str, RolePool] = field(default_factory=lambda: defaultdict(RolePool))
    benign_false_positives: int = 0


def pool(reports: Sequence[tuple[str, int, EvaluationReport]]) -> dict[str, WorldPool]:
    """(world, seed, report) per run -> per world, the roles' figures summed over its seeds."""
    worlds: dict[str, WorldPool] = defaultdict(WorldPool)
    for world, seed, report in reports:
        into = worlds[world]
        into.seeds.append(seed)
        into.benign_false_positives += report.benign_false_positives
        for name, role in report.roles.items():
            figures = into.roles[name]
            figures.targets += role.targets
            figures.alerted += role.alerted_targets
            figures.false_positives += role.false_positive_entities
            figures.recalls.append(role.recall)
    return dict(worlds)


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
) -> list[tuple[str, int, EvaluationReport]]:
    """Simulate, detect and evaluate every (world, seed); the files live in a folder removed afterwards."""
    reports = []
    with tempfile.TemporaryDirectory(prefix="antifraud-sweep-") as folder, EmbeddedStack(kafka=False) as stack:
        for world in worlds:
            for seed in seeds:
                events = Path(folder) / f"{world}-{seed}.jsonl.gz"
                registry = cells_path(truth_path(events))
                config = Config(seed=seed, people=people, days=days, world=world, counts=default_counts(world))
                truth = simulate(config, FileSink(events), registry)
                cells = thresholds.fake_base_station.model_copy(update={"registry": str(registry)})
                alerts = asyncio.run(
                    _detect(events, stack.redis_url, thresholds.model_copy(update={"fake_base_station": cells}))
                )
                reports.append((world, seed, evaluate(truth, alerts, None)))
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
        lines.append("")
    return "\n".join(lines).rstrip()
