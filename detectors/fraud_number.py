"""Fraud-number score: how much a number's outbound calls look like cold-calling.

Per number the state is its :class:`Profile`: the outbound calls inside the profile window (a day,
at most ``max_calls_kept``) with running counts, so a call is added and the window moved in constant
time however long the number's history. Each new call is scored over the calls up to it: burst
volume, distinct callees, short-call, one-ring, international and night shares, handset (IMEI)
changes, the callback and repeat-callee ratios. Features past their threshold add their weight; a
number with enough distinct callees whose score reaches ``alert_score`` is alerted once per profile
window (a quiet period follows).

Who called a number back is what other numbers' calls say: a fact each call adds about its callee
(``fn:in``), seen the cross-entity delay later (``antifraud/state/store.py``), so the callback ratio
counts callbacks at least that long before the scored call, whichever worker handled them.

An alert's id follows from the call that crossed the score; a call already in the window is not
scored again, so an input with a duplicated call gives the same alerts.
"""

import bisect
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from antifraud.alerts.models import Alert, Audience, Entity, Reason
from antifraud.events.models import CallRecord
from antifraud.thresholds import FeatureRule, FraudNumberThresholds
from detectors.baseline import Baseline, Contribution, relative_score
from detectors.learned import LinearModel, Part

DETECTOR = "fraud_number"
MAX_EVIDENCE = 50
FEATURES = (
    "burst_calls",
    "short_call_share",
    "one_ring_share",
    "international_share",
    "night_share",
    "imei_changes",
    "callback_ratio_max",
    "repeat_callee_ratio_max",
)
"""Scored features; a name ending ``_max`` must stay at or under its threshold."""


@dataclass(slots=True)
class OutCall:
    """One outbound call as the state keeps it (not frozen: one is made per call, and a frozen dataclass's
    ``__init__`` costs several times a plain one's; nothing changes one once made)."""

    at: float
    """Epoch seconds when the call ended."""
    event_id: str
    callee: str
    duration_s: int
    international: bool
    imei: str


def out_call(call: CallRecord) -> OutCall:
    return OutCall(
        call.event_time.timestamp(), call.event_id, call.callee, call.duration_s, call.international, call.imei
    )


def _is_night(at: float, limits: FraudNumberThresholds) -> bool:
    hour = ((at + limits.utc_offset_hours * 3600) % 86400) // 3600
    if limits.night_start_hour > limits.night_end_hour:
        return hour >= limits.night_start_hour or hour < limits.night_end_hour
    return limits.night_start_hour <= hour < limits.night_end_hour


class Profile:
    """A number's calls in the profile window, oldest first, with running counts over them.

    Calls come in time order (:meth:`add`); the window keeps those no older than
    ``profile_window_seconds`` before the newest and at most ``max_calls_kept``. A call older than the
    newest (a late record) rebuilds the window, which is rare and costs its length once.
    """

    def __init__(
        self, limits: FraudNumberThresholds, calls: Iterable[OutCall] = (), alerted_until: float = 0.0
    ) -> None:
        self.limits = limits
        self.alerted_until = alerted_until
        self._reset(sorted(calls, key=lambda c: (c.at, c.event_id)))

    def _reset(self, calls: list[OutCall]) -> None:
        self.calls: list[OutCall] = []
        self.times: list[float] = []
        self._changed: list[bool] = []
        """Per call: its IMEI differs from the call before it."""
        self.lo = 0
        self.ids: set[str] = set()
        self.callees: Counter[str] = Counter()
        self.short = self.ring = self.intl = self.night = self.imei_changes = 0
        for call in calls:
            self._append(call)
            self._evict(call.at)

    @property
    def window(self) -> list[OutCall]:
        return self.calls[self.lo :]

    def __len__(self) -> int:
        return len(self.calls) - self.lo

    def _flags(self, call: OutCall) -> tuple[int, int, int, int]:
        limits = self.limits
        return (
            call.duration_s < limits.short_call_seconds,
            call.duration_s <= limits.one_ring_seconds,
            call.international,
            _is_night(call.at, limits),
        )

    def _append(self, call: OutCall) -> None:
        changed = len(self) > 0 and self.calls[-1].imei != call.imei
        self.calls.append(call)
        self.times.append(call.at)
        self._changed.append(changed)
        self.ids.add(call.event_id)
        self.callees[call.callee] += 1
        short, ring, intl, night = self._flags(call)
        self.short += short
        self.ring += ring
        self.intl += intl
        self.night += night
        self.imei_changes += changed

    def _drop_oldest(self) -> None:
        call = self.calls[self.lo]
        short, ring, intl, night = self._flags(call)
        self.short -= short
        self.ring -= ring
        self.intl -= intl
        self.night -= night
        self.ids.discard(call.event_id)
        self.callees[call.callee] -= 1
        if not self.callees[call.callee]:
            del self.callees[call.callee]
        self.lo += 1
        if self.lo < len(self.calls):  # the pair (dropped, next) left the window
            self.imei_changes -= self._changed[self.lo]
        if self.lo > 64 and self.lo * 2 > len(self.calls):
            del self.calls[: self.lo], self.times[: self.lo], self._changed[: self.lo]
            self.lo = 0

    def _evict(self, now: float) -> None:
        horizon = now - self.limits.profile_window_seconds
        while len(self) and (self.times[self.lo] <= horizon or len(self) > self.limits.max_calls_kept):
            self._drop_oldest()

    def add(self, call: OutCall) -> bool:
        """Take a new call into the window; False if it is there already (a duplicated record)."""
        if call.event_id in self.ids:
            return False
        if len(self) and (call.at, call.event_id) < (self.calls[-1].at, self.calls[-1].event_id):
            self._reset(sorted([*self.window, call], key=lambda c: (c.at, c.event_id)))
            return True
        self._append(call)
        self._evict(call.at)
        return True

    def features(self, called_back: Callable[[Iterable[str]], int], *, gated: bool = True) -> dict[str, float] | None:
        """Feature values over the window ending at its newest call; None below the distinct-callee gate
        (or, with ``gated=False``, for an empty window only: a number is ranked however few its calls).
        ``called_back`` counts which of the given callees had called the number back by then; it costs a
        look-up per distinct callee, so with the gate the callback ratio is left out when the other features
        score too little for it to make an alert."""
        limits = self.limits
        count = len(self)
        distinct = len(self.callees)
        if count == 0 or gated and (count < limits.min_distinct_callees or distinct < limits.min_distinct_callees):
            return None
        now = self.times[-1]
        burst_lo = bisect.bisect_right(self.times, now - limits.burst_window_seconds, self.lo)
        values = {
            "distinct_callees": distinct,
            "burst_calls": len(self.times) - burst_lo,
            "short_call_share": self.short / count,
            "one_ring_share": self.ring / count,
            "international_share": self.intl / count,
            "night_share": self.night / count,
            "imei_changes": self.imei_changes,
            "repeat_callee_ratio_max": 1 - distinct / count,
        }
        if not gated or score(values, limits) + limits.callback_ratio_max.weight + _ROUNDING >= limits.alert_score:
            values["callback_ratio_max"] = called_back(self.callees) / distinct
        return values


def rules(limits: FraudNumberThresholds) -> dict[str, FeatureRule]:
    return {name: getattr(limits, name) for name in FEATURES}


_ROUNDING = 1e-6
"""More than :func:`score`'s rounding can move a sum."""


_AT_MOST = frozenset(name for name in FEATURES if name.endswith("_max"))


def score(values: Mapping[str, float], limits: FraudNumberThresholds) -> float:
    """Sum of the weights of the features past their thresholds (a feature left out counts nothing). It runs
    up to twice per call scored, so it reads each rule off ``limits`` instead of building :func:`rules`."""
    total = 0.0
    for name in FEATURES:
        value = values.get(name)
        if value is None:
            continue
        rule = getattr(limits, name)
        if value <= rule.threshold if name in _AT_MOST else value >= rule.threshold:
            total += rule.weight
    return round(total, 4)


def rank(values: Mapping[str, float], limits: FraudNumberThresholds) -> float:
    """A score that orders every number, not only those past the gate: the distinct callees toward the gate
    (weight 1) and each rule's weight times how far its value goes toward the threshold (a share of it, at
    most all); a ``_max`` rule's value counts from 1 down to its threshold. Numbers past every threshold
    score ``1 + sum of weights``; the rule score (:func:`score`) stays what an alert needs."""
    total = min(1.0, values["distinct_callees"] / limits.min_distinct_callees)
    for name, rule in rules(limits).items():
        if name not in values:
            continue
        if name.endswith("_max"):
            credit = (1 - values[name]) / (1 - rule.threshold) if rule.threshold < 1 else 1.0
        else:
            credit = values[name] / rule.threshold if rule.threshold > 0 else 1.0
        total += rule.weight * min(1.0, max(0.0, credit))
    return round(total, 6)


def _alert(
    number: str,
    profile: Profile,
    values: Mapping[str, float],
    total: float,
    limits: FraudNumberThresholds,
    population: Baseline | None,
    model: LinearModel | None,
) -> Alert:
    newest = profile.calls[-1]
    window_end = datetime.fromtimestamp(newest.at, timezone.utc)
    learned: tuple[float, list[Part]] | None = None
    placed: dict[str, tuple[Contribution, float | None]] = {}
    if population is not None and model is not None:
        learned = model.score(values, population)
        placed = {p.placed.feature: (p.placed, p.part) for p in learned[1]}
    elif population is not None:
        placed = {p.feature: (p, None) for p in relative_score(values, population)[1]}

    def reason(feature: str, value: float, threshold: float) -> Reason:
        if feature not in placed:
            return Reason(feature=feature, value=value, threshold=threshold)
        place, part = placed[feature]
        return Reason(
            feature=feature,
            value=value,
            threshold=threshold,
            population_share=round(place.beyond, 6),
            rarity=round(place.contribution, 4),
            learned_part=None if part is None else round(part, 4),
        )

    reasons = [reason("distinct_callees", values["distinct_callees"], limits.min_distinct_callees)]
    reasons += [reason(name, round(values[name], 4), rule.threshold) for name, rule in rules(limits).items()]
    reasons.append(Reason(feature="score", value=total, threshold=limits.alert_score))
    if learned is not None:  # in shadow: shown beside the rules' score, never what raises the alert
        reasons.append(Reason(feature="learned_score", value=round(learned[0], 4), threshold=0.0))
    return Alert.create(
        detector=DETECTOR,
        entity=Entity(kind="phone", value=number),
        trigger=newest.event_id,
        window_start=window_end - timedelta(seconds=limits.profile_window_seconds),
        window_end=window_end,
        severity="high" if total >= limits.alert_score + 0.25 else "medium",
        score=total,
        reasons=reasons,
        evidence_event_ids=[c.event_id for c in profile.window[-MAX_EVIDENCE:]],
        audience=[Audience(kind="police")],
    )


@dataclass
class NumberChange:
    """What to write back for one number: the calls added, and the new quiet period if one began."""

    added: list[OutCall] = field(default_factory=list)
    quiet_until: float | None = None


@dataclass
class FraudNumberResult:
    alerts: list[Alert]
    changes: dict[str, NumberChange]
    called_by: list[tuple[str, str, float]]
    """(callee, caller, time) for every call: the facts of who called whom."""


Callbacks = Callable[[str, float], Mapping[str, float]]
"""(number, time) -> who had called the number by then (as the facts show then): caller -> earliest call."""


def detect(
    calls: Sequence[CallRecord],
    profiles: Mapping[str, Profile],
    callbacks: Callbacks,
    limits: FraudNumberThresholds,
    population: Baseline | None = None,
    model: LinearModel | None = None,
) -> FraudNumberResult:
    """Score a piece's calls (in batch order) against their callers' windows, advancing the profiles
    (``profiles`` has one per caller); alert on crossings, each reason placed in ``population`` if given,
    with the learned ``model``'s score beside the rules' (in shadow) if given too."""
    alerts: list[Alert] = []
    changes: dict[str, NumberChange] = {}
    for call in sorted(calls, key=lambda c: (c.event_time, c.event_id)):
        number, profile = call.caller, profiles[call.caller]
        kept = out_call(call)
        if not profile.add(kept):
            continue
        change = changes.get(number)
        if change is None:
            change = changes[number] = NumberChange()
        change.added.append(kept)
        if kept.at < profile.alerted_until or profile.calls[-1] is not kept:
            continue  # quiet, or a late call: not the newest, so not what the window ends at

        def called_back(callees: Iterable[str], number: str = number, at: float = kept.at) -> int:
            seen = callbacks(number, at)
            return sum(1 for callee in callees if seen.get(callee, float("inf")) <= at)

        values = profile.features(called_back)
        if values is None:
            continue
        total = score(values, limits)
        if total >= limits.alert_score:
            alerts.append(_alert(number, profile, values, total, limits, population, model))
            profile.alerted_until = change.quiet_until = kept.at + limits.profile_window_seconds
    return FraudNumberResult(
        alerts=alerts,
        changes=changes,
        called_by=[(c.callee, c.caller, c.event_time.timestamp()) for c in calls],
    )
