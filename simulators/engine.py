"""A whole simulation: build the city, run the scenarios, then write everyday life slice by
slice with the scenarios' events merged in, ordered, numbered and rendered; return the truth.

Deterministic: every random stream is derived from the seed and a fixed path
(the city, scenario type and instance, slice number), never from the clock.
"""

import ctypes
import json
import platform
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from simulators.batch import NORMAL, EventBatch
from simulators.city import City, build_city
from simulators.clock import DAY, HOUR, LOCAL, epoch, iso
from simulators.ground_truth import GroundTruth, ScenarioTruth, TruthEntity
from simulators.normal import Rates, everyday
from simulators.render import KEY_FIELD, SCHEMAS, rows
from simulators.scenarios import SCENARIOS
from simulators.scenarios.common import Context, Outcome
from simulators.sinks import Sink
from simulators.text import as_strings, digits, squeeze
from simulators.worlds import WORLDS

DEFAULT_START = datetime(2026, 3, 2, tzinfo=LOCAL)
"""A fixed start, so that the same arguments always give the same file."""
SLICE_EVENTS = 200_000
"""Roughly the most events one slice holds (memory stays bounded at any city size)."""
_SLICE_SECONDS = (3600, 1800, 1200, 900, 600, 300, 120, 60)
_KINDS = tuple(SCHEMAS)


def default_counts(world: str = "sim") -> dict[str, int]:
    """Instances per scenario: its default count, or the world's."""
    return {name: s.default_count for name, s in SCENARIOS.items()} | dict(WORLDS[world].counts)


def default_params() -> dict[str, Any]:
    return {name: s.params() for name, s in SCENARIOS.items()}


@dataclass(frozen=True)
class Config:
    seed: int = 1
    people: int = 10_000
    days: float = 7.0
    start: datetime = DEFAULT_START
    rates: Rates = field(default_factory=Rates)
    counts: Mapping[str, int] = field(default_factory=default_counts)
    params: Mapping[str, Any] = field(default_factory=default_params)
    world: str = "sim"
    """Where each scenario instance's parameters are drawn (:mod:`simulators.worlds`)."""
    fixed: frozenset[str] = frozenset()
    """``SCENARIO.FIELD`` parameters set by hand: never drawn from the world's ranges."""

    def __post_init__(self) -> None:
        if self.world not in WORLDS:
            raise ValueError(f"unknown world {self.world!r} (known: {', '.join(WORLDS)})")
        if self.seed < 0:
            raise ValueError("the seed must be a non-negative integer")
        if self.days <= 0:
            raise ValueError("days must be positive")
        if self.start.tzinfo is None:
            raise ValueError("the start time needs a timezone")
        unknown = sorted(set(self.counts) - set(SCENARIOS))
        if unknown:
            raise ValueError(f"unknown scenario {unknown[0]!r} (known: {', '.join(SCENARIOS)})")
        if any(c < 0 for c in self.counts.values()):
            raise ValueError("scenario counts cannot be negative")

    def describe(self) -> dict[str, Any]:
        """The parameters as plain JSON values, for the truth file."""
        return {
            "people": self.people,
            "days": self.days,
            "start": self.start.isoformat(),
            "rates": asdict(self.rates),
            "counts": dict(self.counts),
            "world": self.world,
            "scenario_params": {k: asdict(v) for k, v in self.params.items()},
        }


def rng_for(seed: int, *path: int) -> np.random.Generator:
    """An independent random stream for one part of the simulation."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *path])))


@dataclass(frozen=True)
class Scheduled:
    """The scenarios' events, per kind sorted by time, and who was in each scenario."""

    by_kind: dict[str, EventBatch]
    names: list[tuple[str, str, bool]]
    """(scenario_id, scenario type, benign) per scenario index."""
    outcomes: list[Outcome]
    params: list[dict[str, Any]]
    """The parameters each scenario instance ran with (drawn from the world's ranges)."""

    def slice(self, t0: int, t1: int) -> list[EventBatch]:
        out = []
        for batch in self.by_kind.values():
            lo, hi = np.searchsorted(batch.time, [t0, t1])
            if hi > lo:
                out.append(batch.take(slice(lo, hi)))
        return out


def _shown(entities: list[TruthEntity], batches: list[EventBatch]) -> list[TruthEntity]:
    """The entities less the targets no kept event shows (a mule no victim paid, one paid after the period
    ends): a detector cannot flag what the stream never shows, so they are no targets of this run."""
    shown: set[bytes] = set()
    for batch in batches:
        for column in batch.cols.values():
            if column.dtype.kind == "S":
                shown.update(np.unique(column).tolist())
    return [e for e in entities if not e.target or e.value.encode() in shown]


def run_scenarios(config: Config, city: City, t0: int, t1: int) -> Scheduled:
    """Every scenario instance, its events kept to the simulated period; empty ones dropped."""
    batches: list[EventBatch] = []
    names: list[tuple[str, str, bool]] = []
    outcomes: list[Outcome] = []
    drawn: list[dict[str, Any]] = []
    world = WORLDS[config.world]
    for type_index, (name, kind) in enumerate(SCENARIOS.items()):
        fixed = frozenset(f.partition(".")[2] for f in config.fixed if f.partition(".")[0] == name)
        for instance in range(config.counts.get(name, 0)):
            ctx = Context(city, rng_for(config.seed, 1, type_index, instance), t0, t1)
            base = config.params.get(name, kind.params())
            params = world.draw(name, base, rng_for(config.seed, 3, type_index, instance), fixed)
            outcome = kind.generate(ctx, params)
            kept = [b.take((b.time >= t0) & (b.time < t1)) for b in outcome.batches]
            kept = [b.tagged(len(names)) for b in kept if len(b)]
            outcome.entities = _shown(outcome.entities, kept)
            if kept:
                batches += kept
                names.append((f"{name}-{instance + 1}", name, kind.benign))
                outcomes.append(outcome)
                drawn.append(asdict(params))
    by_kind: dict[str, EventBatch] = {}
    for kind_name in _KINDS:
        same = [b for b in batches if b.kind == kind_name]
        if same:
            merged = EventBatch.concat(same)
            by_kind[kind_name] = merged.take(np.argsort(merged.time, kind="stable"))
    return Scheduled(by_kind, names, outcomes, drawn)


def slice_seconds(config: Config) -> int:
    """Slices of an hour, or shorter for a big city (always dividing an hour)."""
    r = config.rates
    per_day = r.calls + r.sms + r.service_sms + r.transfers + r.cell_observations
    peak_hour = config.people * per_day / 24 * 2
    return next((s for s in _SLICE_SECONDS if peak_hour * s / HOUR <= SLICE_EVENTS), _SLICE_SECONDS[-1])


@dataclass
class Written:
    """What a slice contributed to the truth: scenario events' numbers and times."""

    scenario: list[np.ndarray] = field(default_factory=list)
    seq: list[np.ndarray] = field(default_factory=list)
    time: list[np.ndarray] = field(default_factory=list)


def event_ids(seed: int, seq: np.ndarray) -> np.ndarray:
    """``e{seed}-{seq:010d}`` as an ASCII matrix: unique in a file, increasing with position."""
    prefix = np.frombuffer(f"e{seed}-".encode(), dtype=np.uint8)
    return np.concatenate([np.broadcast_to(prefix, (len(seq), len(prefix))), digits(seq, 10)], axis=1)


def write_slice(batches: list[EventBatch], seed: int, first_seq: int, sink: Sink, written: Written) -> int:
    """Order the slice's events by (event time, event id), number them, render and hand them on.

    Each kind is rendered to a matrix whose rows are scattered to their place in
    one slice-wide matrix, squeezed once: no per-line Python objects.
    """
    per_kind = [EventBatch.concat(same) for k in _KINDS if (same := [b for b in batches if b.kind == k and len(b)])]
    if not per_kind:
        return 0
    time = np.concatenate([b.time for b in per_kind])
    since = time - time.min()
    # A slice is an hour at most: 16-bit offsets are sorted by radix, ten times faster than int64.
    order = np.argsort(since.astype(np.uint16) if since.max() < 1 << 16 else since, kind="stable")
    position = np.empty(len(time), dtype=np.int64)
    position[order] = np.arange(len(time))
    matrices = []
    offset = 0
    for batch in per_kind:
        place = position[offset : offset + len(batch)]
        matrices.append((place, rows(batch, event_ids(seed, first_seq + place))))
        tagged = batch.scenario != NORMAL
        written.scenario.append(batch.scenario[tagged])
        written.seq.append(first_seq + place[tagged])
        written.time.append(batch.time[tagged])
        offset += len(batch)
    slab = np.zeros((len(time), max(m.shape[1] for _, m in matrices)), dtype=np.uint8)
    for place, matrix in matrices:
        slab[place, : matrix.shape[1]] = matrix
    kinds: list[str] = []
    keys: list[bytes] = []
    if sink.wants_keys:
        for batch in per_kind:
            kinds += [batch.kind] * len(batch)
            keys += batch.cols[KEY_FIELD[batch.kind]].tolist()
        ranked = order.tolist()
        kinds, keys = [kinds[i] for i in ranked], [keys[i] for i in ranked]
    sink.write(squeeze(slab), kinds, keys)
    return len(time)


def _truth(
    config: Config, scheduled: Scheduled, written: Written, t0: int, t1: int, count: int, extra_params: dict[str, Any]
) -> GroundTruth:
    scenario = np.concatenate(written.scenario) if written.scenario else np.empty(0, np.int32)
    seq = np.concatenate(written.seq) if written.seq else np.empty(0, np.int64)
    time = np.concatenate(written.time) if written.time else np.empty(0, np.int64)
    order = np.lexsort((seq, scenario))
    scenario, seq, time = scenario[order], seq[order], time[order]
    bounds = np.searchsorted(scenario, np.arange(len(scheduled.names) + 1))
    truths = []
    for index, ((scenario_id, name, benign), outcome, params) in enumerate(
        zip(scheduled.names, scheduled.outcomes, scheduled.params)
    ):
        lo, hi = bounds[index], bounds[index + 1]
        truths.append(
            ScenarioTruth(
                scenario_id=scenario_id,
                scenario=name,
                benign=benign,
                start=iso(int(time[lo])),
                end=iso(int(time[lo:hi].max())),
                entities=outcome.entities,
                event_ids=[x.decode() for x in as_strings(event_ids(config.seed, seq[lo:hi])).tolist()],
                params=params,
            )
        )
    return GroundTruth(
        seed=config.seed,
        params={**config.describe(), **extra_params},
        start=iso(t0),
        end=iso(t1),
        event_count=count,
        scenarios=truths,
    )


def cell_registry(city: City, scheduled: Scheduled) -> list[dict[str, object]]:
    """The carrier's registered cells: the city's and any commissioned during the period."""
    return city.cells.registry() + [c for o in scheduled.outcomes for c in o.new_cells]


def cells_path(truth_file: Path) -> Path:
    """``city.truth.json`` -> ``city.cells.json``: the registry lives next to the truth."""
    name = truth_file.name
    return truth_file.with_name((name[: -len(".truth.json")] if name.endswith(".truth.json") else name) + ".cells.json")


def write_registry(path: Path, registry: list[dict[str, object]]) -> None:
    path.write_text(json.dumps({"cells": registry}, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
"""glibc's ``mallopt`` parameters."""


@cache
def _reuse_freed_memory() -> None:
    """Keep the slices' arrays on glibc's heap, reused from slice to slice.

    A slice allocates and frees tens of MB of arrays. By default glibc maps the big ones
    fresh and hands freed memory back to the kernel, so every slice pays again for page
    faults that zero it 4 KB at a time: on the benchmark 250,000 faults and 0.6 s of
    system time, against 22,000 and 0.1 s with the heap taking arrays up to 32 MB and
    keeping up to 256 MB free (the process stays at the same peak size). Other C
    libraries are left alone.
    """
    if platform.libc_ver()[0] == "glibc":
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 256 << 20)


def simulate(config: Config, sink: Sink, registry_path: Path | None = None, progress: bool = False) -> GroundTruth:
    """Run the simulation into ``sink``; write the cell registry if asked; return the ground truth."""
    _reuse_freed_memory()
    t0 = epoch(config.start)
    t1 = t0 + int(round(config.days * DAY))
    city = build_city(rng_for(config.seed, 0), config.people)
    scheduled = run_scenarios(config, city, t0, t1)
    step = slice_seconds(config)
    edges = list(range(t0, t1, step)) if t0 % step == 0 else [t0, *range(t0 - t0 % step + step, t1, step)]
    written = Written()
    count = 0
    with tqdm(total=len(edges), unit="slice", file=sys.stderr, disable=not progress) as bar:
        for number, a in enumerate(edges):
            b = edges[number + 1] if number + 1 < len(edges) else t1
            life = everyday(city, rng_for(config.seed, 2, number), a, b, config.rates)
            count += write_slice(life + scheduled.slice(a, b), config.seed, count + 1, sink, written)
            bar.update()
            bar.set_postfix(events=count, refresh=False)
    sink.close()
    extra: dict[str, Any] = {}
    if registry_path is not None:
        write_registry(registry_path, cell_registry(city, scheduled))
        extra["cell_registry"] = registry_path.name
    return _truth(config, scheduled, written, t0, t1, count, extra)
