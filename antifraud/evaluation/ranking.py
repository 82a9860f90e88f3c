"""Ranking quality: every entity a detector sees gets a score, and ROC and precision-recall curves show how
well the scores put fraud targets above everyone else, whatever threshold an alert uses.

A detector's alerts say only who crossed its threshold; the figures here say whether any threshold could
do better. For fraud numbers two scores are taken at every call of every calling number over the
detector's own profile window (no distinct-callee gate), the highest per number over the file:
:func:`detectors.fraud_number.rank`, the rules' thresholds with partial credit;
:func:`detectors.baseline.relative_score`, how rare the features are against the population of
callers (a baseline fitted on the same period, without labels); and a model learned from analysts'
decisions (:mod:`detectors.learned`), which weighs those rarities. Positives are a role's targets; negatives
every other scored entity that is no fraud target of any kind (ordinary callers, benign look-alikes).
"""

from collections import defaultdict
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np

from antifraud.alerts.models import Entity
from antifraud.events.codec import InvalidEvent, decode_any
from antifraud.events.models import BankTransfer, CallRecord
from antifraud.thresholds import FraudNumberThresholds, TransferRiskThresholds
from detectors import fraud_number
from detectors.baseline import Baseline, fit, relative_score
from detectors.learned import LinearModel
from detectors.transfer_risk import MULE_FEATURES, Account, Flow, add_outflow, mule_features, mule_score, own
from streams.eventfile import read_lines

K = TypeVar("K", bound=Hashable)


Scored = tuple[str, float, dict[str, float]]
"""``(entity, time, features)``: an entity's features at one moment."""


def scored_calls(events: Path, limits: FraudNumberThresholds) -> Iterator[Scored]:
    """``(caller, time, features)`` at every call of every calling number in an events file (in event-time
    order), by the detector's profile window without the distinct-callee gate; who called a number back is
    every call to it up to then."""
    profiles: dict[str, fraud_number.Profile] = {}
    callers_of: dict[str, dict[str, float]] = defaultdict(dict)
    """number -> who called it -> their first call's time."""
    for call in _events(events, CallRecord):
        kept = fraud_number.out_call(call)
        callers_of[call.callee].setdefault(call.caller, kept.at)
        profile = profiles.setdefault(call.caller, fraud_number.Profile(limits))
        if not profile.add(kept) or profile.calls[-1] is not kept:
            continue
        values = profile.features(partial(_called_back, callers_of[call.caller], kept.at), gated=False)
        if values is not None:
            yield call.caller, kept.at, values


def daily(scored: Iterable[Scored]) -> dict[tuple[str, int], int]:
    """Per (number, day): the index in ``scored`` of the number's last scored call that day."""
    return {(caller, int(at // 86400)): n for n, (caller, at, _) in enumerate(scored)}


def fraud_number_baseline(scored: Sequence[Scored]) -> Baseline:
    """The population of callers (:func:`scored_calls` of an events file): one sample per number and day,
    its features at its last call of the day. No labels are used: fitting on the period scored is fair."""
    return fit(scored[n][2] for n in daily(scored).values())


def fraud_number_scores(scored: Iterable[Scored], limits: FraudNumberThresholds) -> dict[Entity, float]:
    """Each calling number's highest :func:`detectors.fraud_number.rank` over :func:`scored_calls`."""
    best: dict[str, float] = {}
    for caller, _, values in scored:
        score = fraud_number.rank(values, limits)
        best[caller] = max(best.get(caller, score), score)
    return {Entity(kind="phone", value=number): value for number, value in best.items()}


RANKED_FEATURES = ("distinct_callees", *fraud_number.FEATURES)
"""The features a fraud-number score sees, in the columns of :class:`Rarities`."""

EQUAL_WEIGHTS = LinearModel(dict.fromkeys(RANKED_FEATURES, 1.0), 0.0)
"""The population score (:func:`detectors.baseline.relative_score`): every feature's rarity alike."""


@dataclass(frozen=True)
class Rarities:
    """How rare each feature is (:func:`detectors.baseline.rarity`) at every scoring of an events file (each
    call of a number, or each transfer of an account): what the population score sums and a learned model
    weighs, kept as a matrix so that a model fitted later scores a whole run at once."""

    callers: list[str]
    """The entity scored at each row (a calling number, or an account)."""
    rows: np.ndarray
    """One row per scoring, one column per feature."""
    daily: list[int]
    """The rows of each entity's last scoring of each day: the samples a model is fitted on."""
    features: tuple[str, ...] = RANKED_FEATURES
    """The columns' features."""
    kind: str = "phone"
    """What is scored: ``phone`` (fraud numbers) or ``account`` (mules)."""

    @classmethod
    def of(
        cls,
        scored: Sequence[Scored],
        population: Baseline,
        features: tuple[str, ...] = RANKED_FEATURES,
        kind: str = "phone",
    ) -> "Rarities":
        rows = np.zeros((len(scored), len(features)))
        column = {name: k for k, name in enumerate(features)}
        for n, (_, _, values) in enumerate(scored):
            for part in relative_score(values, population)[1]:
                rows[n, column[part.feature]] = part.contribution
        return cls([caller for caller, _, _ in scored], rows, sorted(daily(scored).values()), features, kind)

    def best(self, model: LinearModel) -> dict[Entity, float]:
        """Each entity's highest score by ``model`` over its scorings."""
        weights = np.array([model.weights.get(name, 0.0) for name in self.features])
        best: dict[str, float] = {}
        for caller, score in zip(self.callers, (self.rows @ weights + model.intercept).tolist()):
            best[caller] = max(best.get(caller, score), score)
        return {Entity(kind=self.kind, value=value): round(score, 6) for value, score in best.items()}


@dataclass(frozen=True)
class ScoredAccounts:
    """Every account in an events file scored at each transfer in other names it made or received, as the
    worker checks an account for a mule: its :func:`detectors.transfer_risk.mule_features` and the rules'
    mule score then; and the amounts of those transfers (the population a passed-on amount is judged
    against)."""

    scored: list[Scored]
    rules: list[float]
    amounts: list[int]

    @classmethod
    def of(cls, events: Path, limits: TransferRiskThresholds) -> "ScoredAccounts":
        inflows: dict[str, list[Flow]] = defaultdict(list)
        accounts: dict[str, Account] = defaultdict(Account)
        scored: list[Scored] = []
        rules: list[float] = []
        amounts: list[int] = []
        for transfer in _events(events, BankTransfer):
            at = transfer.event_time.timestamp()
            name, payee = transfer.payer_account, transfer.payee_account
            flow = Flow(transfer.event_id, at, payee, transfer.amount_fen, transfer.channel, own(transfer))
            add_outflow(accounts[name], flow, limits)
            kept = transfer.amount_fen >= limits.min_amount_fen  # an inflow the worker keeps, and checks
            if kept:  # kept for the longest window read, as the worker's fact table keeps them
                since = at - max(limits.fan_in_window_seconds, limits.pass_on_window_seconds)
                inflows[payee] = [f for f in inflows[payee] if f.at > since] + [flow._replace(other=name)]
            if flow.own:
                continue
            amounts.append(transfer.amount_fen)
            for account in (name, payee) if kept else (name,):  # as the worker checks: the payer, the payee paid
                scored.append((account, at, mule_features(inflows[account], accounts[account].outflows, at, limits)))
                rules.append(mule_score(inflows[account], accounts[account], at, limits)[0])
        return cls(scored, rules, amounts)

    def baseline(self) -> Baseline:
        """The population: one sample per account and day (its features at its last transfer of the day),
        the passed-on amount judged against every transfer's amount. No labels are used."""
        samples = [
            {k: v for k, v in self.scored[n][2].items() if k != "passed_amount_yuan"}
            for n in daily(self.scored).values()
        ]
        return fit([*samples, *({"passed_amount_yuan": a / 100} for a in self.amounts)])

    def rarities(self, population: Baseline) -> Rarities:
        """How rare each mule feature is at each scoring, against ``population`` (:meth:`baseline`)."""
        return Rarities.of(self.scored, population, MULE_FEATURES, "account")

    def scores(self, rarities: Rarities | None = None) -> dict[str, dict[Entity, float]]:
        """Each account's highest score over its transfers: ``rules`` (the worker's mule score) and
        ``population`` (how rare its features are together, :func:`detectors.baseline.relative_score`)."""
        rules: dict[str, float] = {}
        for (name, _, _), rule in zip(self.scored, self.rules):
            rules[name] = max(rules.get(name, rule), rule)
        every = LinearModel(dict.fromkeys(MULE_FEATURES, 1.0), 0.0)
        return {
            "rules": {Entity(kind="account", value=a): v for a, v in rules.items()},
            "population": (rarities or self.rarities(self.baseline())).best(every),
        }


E = TypeVar("E", CallRecord, BankTransfer)


def _events(events: Path, kind: type[E]) -> Iterator[E]:
    """The events of one kind in an events file, in its order; lines that are no valid event are skipped."""
    for _, line in read_lines(events):
        try:
            event = decode_any(line)
        except InvalidEvent:
            continue
        if isinstance(event, kind):
            yield event


def _called_back(callers: Mapping[str, float], at: float, callees: Iterable[str]) -> int:
    return sum(1 for c in callees if callers.get(c, at + 1) <= at)


@dataclass(frozen=True)
class Curves:
    """How one score ranks one role's targets (positives) against the other entities (negatives)."""

    positives: int
    negatives: int
    roc_auc: float | None
    """The chance a random positive scores above a random negative (ties count half); None without both."""
    pr_auc: float | None
    """Average precision: precision at each positive's rank, averaged over all positives (a positive never
    scored counts as never found)."""
    thresholds: list[float]
    """Each distinct score, highest first; the lists below give the figures of alerting at or above it."""
    fpr: list[float]
    tpr: list[float]
    precision: list[float]
    recall: list[float]

    def threshold_for(self, target_precision: float) -> float | None:
        """The lowest threshold whose precision reaches the target (the most recall at that precision);
        None when no threshold does."""
        chosen = None
        for threshold, precision in zip(self.thresholds, self.precision):
            if precision >= target_precision:
                chosen = threshold
        return chosen

    def at(self, threshold: float) -> tuple[float | None, float]:
        """Precision (None when nothing scores that high) and recall of alerting at or above ``threshold``."""
        reached = [i for i, t in enumerate(self.thresholds) if t >= threshold]
        if not reached:
            return None, 0.0
        return self.precision[reached[-1]], self.recall[reached[-1]]


def curves(scores: Mapping[K, float], positives: Iterable[K], excluded: Iterable[K] = ()) -> Curves:
    """ROC and precision-recall of ``scores`` for ``positives``; entities in ``excluded`` (other fraud
    targets) count neither way. A positive with no score is ranked below every scored entity."""
    wanted = set(positives)
    skip = set(excluded) - wanted
    floor = min(scores.values(), default=0.0) - 1.0
    entities = [e for e in scores if e not in skip] + [e for e in wanted if e not in scores]
    value = np.array([scores.get(e, floor) for e in entities], dtype=float)
    label = np.array([e in wanted for e in entities], dtype=bool)
    n_pos, n_neg = int(label.sum()), int((~label).sum())
    if n_pos == 0:
        return Curves(0, n_neg, None, None, [], [], [], [], [])
    order = np.argsort(-value, kind="stable")
    value, label = value[order], label[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(value)), len(value) - 1]
    tp = np.cumsum(label)[last_of_tie]
    fp = np.cumsum(~label)[last_of_tie]
    precision = tp / (tp + fp)
    recall = tp / n_pos
    pr_auc = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    roc_auc = None
    if n_neg:
        fpr, tpr = np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos]
        roc_auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    return Curves(
        n_pos,
        n_neg,
        roc_auc,
        pr_auc,
        value[last_of_tie].tolist(),
        (fp / max(n_neg, 1)).tolist(),
        (tp / n_pos).tolist(),
        precision.tolist(),
        recall.tolist(),
    )
