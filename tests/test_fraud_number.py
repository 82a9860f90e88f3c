"""The fraud-number score as a pure function: each feature, the score, look-alikes, replay safety."""

import copy
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest

from antifraud.alerts.models import Alert, Audience, Entity, alert_id_for
from antifraud.events.models import CallRecord
from antifraud.thresholds import FeatureRule, load_thresholds
from detectors.fraud_number import DETECTOR, NumberChange, OutCall, Profile, detect, out_call, rules, score

LIMITS = load_thresholds().fraud_number
DELAY = load_thresholds().stream.cross_entity_delay_seconds
T0 = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)  # 10:00 local time (UTC+8)
FRAUD = "17012340001"
PHONE_A, PHONE_B = "860000000000001", "860000000000002"


def call(
    eid: str, caller: str, callee: str, at: float, duration: int = 8, imei: str = PHONE_A, international: bool = False
) -> CallRecord:
    """A call from ``caller`` to ``callee`` ending ``at`` seconds after T0."""
    end = T0 + timedelta(seconds=at)
    return CallRecord(
        event_id=eid,
        event_time=end,
        caller=caller,
        callee=callee,
        start=end - timedelta(seconds=duration),
        duration_s=duration,
        cell_id="cell-4",
        imei=imei,
        international=international,
    )


def cold_calls(
    count: int,
    start: float = 0,
    *,
    caller: str = FRAUD,
    step: float = 60,
    first: int = 0,
    duration: int = 8,
    switch_at: int | None = None,
    international: bool = False,
) -> list[CallRecord]:
    """A fraud number dialling strangers: distinct callees, ``step`` s apart, short calls."""
    return [
        call(
            f"{caller[-4:]}-{first + i}",
            caller,
            f"1380000{first + i:04d}",
            start + i * step,
            duration,
            PHONE_B if switch_at is not None and i >= switch_at else PHONE_A,
            international,
        )
        for i in range(count)
    ]


@dataclass
class State:
    """What the stores keep between batches: each caller's profile, and who called whom (facts)."""

    profiles: dict[str, Profile] = field(default_factory=dict)
    called: dict[str, dict[str, float]] = field(default_factory=dict)
    """callee -> caller -> the earliest call."""


@dataclass
class Result:
    alerts: list[Alert]
    changes: dict[str, list[NumberChange]]
    called_by: dict[str, dict[str, float]]


def run(calls: Sequence[CallRecord], prior: State | None = None) -> tuple[Result, State]:
    """The calls as the pipeline runs them: one at a time in event-time order, each caller's profile carried
    along, who-called-whom seen the cross-entity delay later. The prior state is left as it was."""
    state = copy.deepcopy(prior) if prior is not None else State()
    result = Result([], {}, {})
    for c in sorted(calls, key=lambda c: (c.event_time, c.event_id)):
        profile = state.profiles.setdefault(c.caller, Profile(LIMITS))

        def callbacks(number: str, at: float) -> dict[str, float]:
            return {k: v for k, v in state.called.get(number, {}).items() if v <= at - DELAY}

        done = detect([c], {c.caller: profile}, callbacks, LIMITS)
        result.alerts += done.alerts
        for number, change in done.changes.items():
            result.changes.setdefault(number, []).append(change)
        for callee, caller, at in done.called_by:
            for table in (state.called, result.called_by):
                known = table.setdefault(callee, {})
                known[caller] = min(known.get(caller, at), at)
    return result, state


def run_batches(batches: Sequence[Sequence[CallRecord]]) -> list[Alert]:
    state = State()
    alerts: list[Alert] = []
    for batch in batches:
        result, state = run(batch, state)
        alerts += result.alerts
    return alerts


def ids(alerts: Sequence[Alert]) -> list[str]:
    return [a.alert_id for a in alerts]


def reasons(alert: Alert) -> dict[str, tuple[float, float]]:
    return {r.feature: (r.value, r.threshold) for r in alert.reasons}


def courier(day: float = 0) -> list[CallRecord]:
    """A courier: 60 customers over 8 hours, normal durations; a third call back before the next call."""
    out: list[CallRecord] = []
    for i in range(60):
        at = day + i * 480
        customer = f"1391111{i:04d}"
        out.append(call(f"cour-{day}-{i}", "13800001111", customer, at, 25 + (i * 7) % 60))
        if i % 3 == 0:
            out.append(call(f"back-{day}-{i}", customer, "13800001111", at + 120, 20))
    return out


def call_centre() -> list[CallRecord]:
    """A call centre: 40 calls an hour for 10 hours, mostly conversations, some callbacks."""
    out: list[CallRecord] = []
    for i in range(400):
        customer = f"1392222{i:04d}"
        out.append(call(f"cc-{i}", "4008001234", customer, i * 90, 45 + (i * 37) % 200 if i % 5 else 12))
        if i % 7 == 0:
            out.append(call(f"ccback-{i}", customer, "4008001234", i * 90 + 600, 60))
    return out


def relative() -> list[CallRecord]:
    """A person calling family: a few numbers, again and again, long calls, called back."""
    family = [f"1393333000{k}" for k in range(5)]
    out = [call(f"rel-{i}", "13900002222", family[i % 5], i * 1800, 300) for i in range(30)]
    return out + [call(f"relback-{i}", family[i], "13900002222", 600 + i * 3600, 200) for i in range(5)]


# Two episodes of one fraud number: 25 calls at 10:00, 25 more the next day after the quiet period.
EPISODES = cold_calls(25, switch_at=12) + cold_calls(25, 90000, first=100)


def test_fraud_number_alerts_with_every_feature_as_a_reason() -> None:
    batch = cold_calls(25, switch_at=12)
    [alert] = run(batch)[0].alerts
    crossed = batch[LIMITS.min_distinct_callees - 1]
    assert (alert.detector, alert.entity, alert.audience) == (
        DETECTOR,
        Entity(kind="phone", value=FRAUD),
        [Audience(kind="police")],
    )
    assert alert.window_end == crossed.event_time
    assert alert.window_start == crossed.event_time - timedelta(seconds=LIMITS.profile_window_seconds)
    assert (alert.trigger, alert.alert_id) == (crossed.event_id, alert_id_for(DETECTOR, alert.entity, crossed.event_id))
    assert alert.evidence_event_ids == [c.event_id for c in batch[: LIMITS.min_distinct_callees]]
    got = reasons(alert)
    assert set(got) == {"distinct_callees", "score", *rules(LIMITS)}
    assert got["distinct_callees"] == (20, LIMITS.min_distinct_callees)
    assert got["burst_calls"] == (20, LIMITS.burst_calls.threshold)
    assert got["short_call_share"][0] == 1.0
    assert got["imei_changes"][0] == 1
    assert got["callback_ratio_max"][0] == 0 and got["repeat_callee_ratio_max"][0] == 0
    assert got["one_ring_share"][0] == got["international_share"][0] == got["night_share"][0] == 0
    expected = sum(
        LIMITS.__dict__[n].weight
        for n in ("burst_calls", "short_call_share", "imei_changes", "callback_ratio_max", "repeat_callee_ratio_max")
    )
    assert got["score"] == (pytest.approx(expected), LIMITS.alert_score)
    assert alert.score == pytest.approx(expected)


def test_below_the_distinct_callee_gate_is_quiet() -> None:
    assert run(cold_calls(LIMITS.min_distinct_callees - 1, switch_at=5))[0].alerts == []


def test_wangiri_one_ring_international_calls_alert() -> None:
    batch = cold_calls(25, duration=1, international=True, step=30)
    [alert] = run(batch)[0].alerts
    got = reasons(alert)
    assert got["one_ring_share"][0] == 1.0 and got["international_share"][0] == 1.0
    assert alert.severity == "high"


def test_night_share_counts_local_night_hours() -> None:
    at_night = 15 * 3600  # T0 + 15 h = 01:00 local
    [alert] = run(cold_calls(20, at_night, switch_at=3))[0].alerts
    assert reasons(alert)["night_share"][0] == 1.0


@pytest.mark.parametrize(("back_at", "alerted"), [(30, False), (19 * 600 + 30, True)], ids=["before", "after"])
def test_callbacks_count_only_up_to_the_scored_call(back_at: float, alerted: bool) -> None:
    # Slow short calls with a handset change: the score needs a low callback ratio to reach the bar.
    batch = cold_calls(20, step=600, switch_at=10)
    backs = [call(f"back-{k}", f"1380000{k:04d}", FRAUD, back_at + k) for k in range(2)]
    result = run(backs + batch)[0]
    assert [a.entity.value for a in result.alerts] == ([FRAUD] if alerted else [])
    if alerted:
        assert reasons(result.alerts[0])["callback_ratio_max"][0] == 0
    expected = {f"1380000{k:04d}": (T0 + timedelta(seconds=back_at + k)).timestamp() for k in range(2)}
    assert result.called_by[FRAUD] == expected


def test_callbacks_from_an_earlier_batch_count() -> None:
    backs = [call(f"back-{k}", f"1380000{k:04d}", FRAUD, 30 + k) for k in range(2)]
    _, prior = run(backs)
    assert run(cold_calls(20, step=600, switch_at=10), prior)[0].alerts == []


def test_repeat_callee_ratio() -> None:
    calls = (
        cold_calls(19)
        + [call("again", FRAUD, "13800000000", 19 * 60, 8)]
        + cold_calls(2, 20 * 60, first=19, switch_at=0)
    )
    [alert] = run(calls)[0].alerts
    assert reasons(alert)["repeat_callee_ratio_max"][0] == pytest.approx(round(1 / 21, 4))
    assert reasons(alert)["distinct_callees"][0] == 20


@pytest.mark.parametrize(
    ("name", "value", "hit"),
    [
        ("short_call_share", 0.6, True),
        ("short_call_share", 0.59, False),
        ("callback_ratio_max", 0.05, True),
        ("callback_ratio_max", 0.06, False),
        ("imei_changes", 1, True),
        ("imei_changes", 0, False),
    ],
)
def test_score_adds_a_weight_only_past_the_threshold(name: str, value: float, hit: bool) -> None:
    neutral = {
        "burst_calls": 0,
        "short_call_share": 0,
        "one_ring_share": 0,
        "international_share": 0,
        "night_share": 0,
        "imei_changes": 0,
        "callback_ratio_max": 1,
        "repeat_callee_ratio_max": 1,
    }
    rule: FeatureRule = getattr(LIMITS, name)
    assert score({**neutral, name: value}, LIMITS) == pytest.approx(rule.weight if hit else 0)


@pytest.mark.parametrize("look_alike", [courier, call_centre, relative])
def test_benign_look_alikes_stay_quiet(look_alike) -> None:  # type: ignore[no-untyped-def]
    calls = look_alike()
    assert run(calls)[0].alerts == []
    assert run_batches([calls[i : i + 37] for i in range(0, len(calls), 37)]) == []


def test_quiet_period_then_new_episode() -> None:
    first, second = run(EPISODES)[0].alerts
    assert second.window_end >= first.window_end + timedelta(seconds=LIMITS.profile_window_seconds)
    assert first.alert_id != second.alert_id


@pytest.mark.parametrize("seed", range(3))
def test_input_order_does_not_matter(seed: int) -> None:
    batch = EPISODES + courier() + cold_calls(22, caller="17099990000", switch_at=4)
    shuffled = random.Random(seed).sample(batch, len(batch))
    in_order, mixed = run(batch)[0], run(shuffled)[0]
    assert len(in_order.alerts) == 3
    assert sorted(ids(mixed.alerts)) == sorted(ids(in_order.alerts))
    assert mixed.changes == in_order.changes


def test_same_batch_twice_on_the_same_state_gives_the_same_ids() -> None:
    _, prior = run(cold_calls(10, -7200, first=500))
    first, again = run(EPISODES, prior)[0], run(EPISODES, prior)[0]
    assert first.alerts and again.alerts == first.alerts
    assert again.changes == first.changes


@pytest.mark.parametrize("split", [1, 10, 19, 20, 25, 30, 49])
def test_a_batch_split_in_two_gives_the_same_ids(split: int) -> None:
    whole = ids(run(EPISODES)[0].alerts)
    assert len(whole) == 2
    assert ids(run_batches([EPISODES[:split], EPISODES[split:]])) == whole


def test_one_call_per_batch_gives_the_same_ids() -> None:
    assert ids(run_batches([[c] for c in EPISODES])) == ids(run(EPISODES)[0].alerts)


def test_state_is_bounded_by_the_window_and_the_cap() -> None:
    busy = cold_calls(LIMITS.max_calls_kept + 50, duration=90, step=60, caller="13900005555")
    late = cold_calls(1, LIMITS.profile_window_seconds * 2, caller="13900005555", first=9000, duration=90)
    _, state = run(busy)
    assert len(state.profiles["13900005555"].window) == LIMITS.max_calls_kept
    _, state = run(late, state)
    assert [c.event_id for c in state.profiles["13900005555"].window] == [late[0].event_id]


# -- the incremental profile ------------------------------------------------------------------------


def snapshot(profile: Profile) -> tuple[object, ...]:
    """Everything a profile scores from: its window, running counts and quiet period."""
    return (
        profile.window,
        profile.alerted_until,
        profile.short,
        profile.ring,
        profile.intl,
        profile.night,
        profile.imei_changes,
        dict(profile.callees),
        profile.ids,
        profile.times[profile.lo :],
    )


def no_callbacks(callees: object) -> int:
    return 0


def mixed_calls(seed: int, count: int) -> list[OutCall]:
    """Calls of one number in time order: short and long, one-ring, abroad, at night, two handsets, repeat
    callees, and gaps longer than the profile window."""
    rng = random.Random(seed)
    at, out = T0.timestamp(), []
    for i in range(count):
        gap = rng.choices([1, 5, 60, 600, 3 * 3600], weights=[30, 40, 25, 4, 1])[0]
        at += LIMITS.profile_window_seconds + 1 if i % 400 == 399 else gap
        out.append(
            OutCall(
                at,
                f"m-{seed}-{i}",
                f"1380000{rng.randrange(40):04d}",
                rng.choice([0, 2, 8, 29, 30, 400]),
                rng.random() < 0.3,
                rng.choice([PHONE_A, PHONE_A, PHONE_B]),
            )
        )
    return out


@pytest.mark.parametrize("seed", range(4))
def test_running_counts_equal_a_profile_rebuilt_from_its_window(seed: int) -> None:
    profile = Profile(LIMITS)
    sizes = []
    for n, kept in enumerate(mixed_calls(seed, 3 * LIMITS.max_calls_kept)):
        assert profile.add(kept)
        sizes.append(len(profile))
        if n % 7 == 0:  # a duplicated record changes nothing
            assert not profile.add(kept)
        rebuilt = Profile(LIMITS, profile.window)
        assert snapshot(profile) == snapshot(rebuilt)
        assert profile.features(no_callbacks) == rebuilt.features(no_callbacks)
    assert max(sizes) == LIMITS.max_calls_kept and sizes.count(1) >= 3  # the cap was hit; whole windows went


def test_a_late_call_is_placed_in_time_order() -> None:
    calls = mixed_calls(9, 50)
    profile = Profile(LIMITS, calls[:30] + calls[31:])
    assert profile.add(calls[30])
    assert snapshot(profile) == snapshot(Profile(LIMITS, calls))


def test_adding_a_call_does_not_go_over_the_history(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[OutCall] = []
    flags = Profile._flags

    def counting(self: Profile, kept: OutCall) -> tuple[int, int, int, int]:
        seen.append(kept)
        return flags(self, kept)

    def rebuilt(self: Profile, calls: list[OutCall]) -> None:
        raise AssertionError("an in-order call rebuilt the window")

    calls = [out_call(c) for c in cold_calls(LIMITS.max_calls_kept + 20, step=5)]
    short = Profile(LIMITS, calls[:3])
    full = Profile(LIMITS, calls[: LIMITS.max_calls_kept])
    monkeypatch.setattr(Profile, "_flags", counting)
    monkeypatch.setattr(Profile, "_reset", rebuilt)
    short.add(calls[3])
    assert seen == [calls[3]]  # the new call's flags, nothing else
    seen.clear()
    for kept in calls[LIMITS.max_calls_kept :]:
        full.add(kept)
    # Per call at the cap: the new call in, the oldest out. Nothing else of the window is looked at.
    assert seen == [c for k, new in enumerate(calls[LIMITS.max_calls_kept :]) for c in (new, calls[k])]
    assert full.window == calls[20:]


def test_a_batch_writes_back_only_its_new_calls() -> None:
    history = cold_calls(LIMITS.max_calls_kept, -40_000, duration=90, step=120, first=1000)
    _, prior = run(history)
    batch = cold_calls(3, first=5000)
    result, state = run(batch, prior)
    assert [c.event_id for change in result.changes[FRAUD] for c in change.added] == [c.event_id for c in batch]
    assert [c.event_id for c in state.profiles[FRAUD].window[-3:]] == [c.event_id for c in batch]
    assert len(state.profiles[FRAUD]) == LIMITS.max_calls_kept


def test_quiet_for_a_profile_window_after_an_alert_then_alerts_again() -> None:
    result, state = run(cold_calls(25, switch_at=12))
    [alert] = result.alerts
    until = state.profiles[FRAUD].alerted_until
    assert until == alert.window_end.timestamp() + LIMITS.profile_window_seconds
    assert [c.quiet_until for c in result.changes[FRAUD] if c.quiet_until is not None] == [until]
    # A second burst from 15 minutes before the quiet period ends, a call every 30 s.
    burst = cold_calls(40, until - T0.timestamp() - 900, first=100, switch_at=3, step=30)
    [again] = run(burst, state)[0].alerts
    assert again.trigger == burst[30].event_id and burst[30].event_time.timestamp() == until  # the first not quiet
    assert [c.event_id for c in burst[:30]] and all(c.event_time.timestamp() < until for c in burst[:30])
    unquiet = copy.deepcopy(state)
    unquiet.profiles[FRAUD].alerted_until = 0.0
    assert run(burst, unquiet)[0].alerts[0].trigger == burst[0].event_id  # the same calls alert at once unquieted


def test_the_callback_ratio_is_looked_up_only_when_it_can_make_an_alert() -> None:
    """Its look-up costs one per distinct callee: a window whose other features score too little for any
    callback ratio to make an alert does not pay it; one that can does, and scores with it."""
    asked: list[int] = []

    def counting(callees: Iterable[str]) -> int:
        asked.append(len(list(callees)))
        return 0

    long_calls = Profile(LIMITS, [out_call(c) for c in cold_calls(30, step=3600, duration=600)])
    assert (values := long_calls.features(counting)) is not None and "callback_ratio_max" not in values
    assert asked == [] and score(values, LIMITS) + LIMITS.callback_ratio_max.weight < LIMITS.alert_score
    fraud = Profile(LIMITS, [out_call(c) for c in cold_calls(30)])
    assert (values := fraud.features(counting)) is not None
    assert asked == [30] and values["callback_ratio_max"] == 0.0
    assert score(values, LIMITS) >= LIMITS.alert_score
