"""Simulated time: epoch seconds (UTC), the city's local day (UTC+8) and its rhythm."""

from datetime import datetime, timedelta, timezone

import numpy as np

LOCAL = timezone(timedelta(hours=8), "CST")
"""China Standard Time: people sleep at night local time, whatever the UTC clock says."""

DAY = 86400
HOUR = 3600
MINUTE = 60

RHYTHM: dict[str, np.ndarray] = {
    # local hour 0 .. 23; each profile is normalised to mean 1 below
    "call": np.array(
        [
            0.1,
            0.05,
            0.03,
            0.03,
            0.05,
            0.15,
            0.4,
            0.9,
            1.4,
            1.6,
            1.6,
            1.5,
            1.3,
            1.3,
            1.5,
            1.5,
            1.5,
            1.6,
            1.6,
            1.8,
            1.9,
            1.6,
            1.0,
            0.4,
        ]
    ),
    "sms": np.array(
        [
            0.2,
            0.1,
            0.05,
            0.05,
            0.05,
            0.1,
            0.4,
            0.9,
            1.3,
            1.4,
            1.4,
            1.4,
            1.4,
            1.3,
            1.3,
            1.3,
            1.3,
            1.4,
            1.5,
            1.7,
            1.8,
            1.7,
            1.2,
            0.6,
        ]
    ),
    "transfer": np.array(
        [
            0.1,
            0.05,
            0.02,
            0.02,
            0.02,
            0.05,
            0.2,
            0.6,
            1.2,
            1.7,
            1.8,
            1.6,
            1.4,
            1.4,
            1.6,
            1.7,
            1.6,
            1.5,
            1.4,
            1.5,
            1.5,
            1.2,
            0.7,
            0.3,
        ]
    ),
    "office": np.array(
        [0, 0, 0, 0, 0, 0, 0, 0, 0.2, 1.5, 2, 1.8, 0.6, 1, 1.8, 2, 1.8, 1.2, 0.1, 0, 0, 0, 0, 0], dtype=float
    ),
    "cell": np.array(
        [
            0.5,
            0.45,
            0.4,
            0.4,
            0.4,
            0.5,
            0.8,
            1.2,
            1.4,
            1.2,
            1.1,
            1.1,
            1.2,
            1.1,
            1.1,
            1.1,
            1.2,
            1.4,
            1.4,
            1.3,
            1.2,
            1.0,
            0.8,
            0.6,
        ]
    ),
}
RHYTHM = {name: profile / profile.mean() for name, profile in RHYTHM.items()}


def epoch(moment: datetime) -> int:
    """Epoch seconds of an aware datetime."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no defined instant")
    return int(moment.timestamp())


def local_hour(t: np.ndarray | int) -> np.ndarray:
    return (np.asarray(t, dtype=np.int64) + 8 * HOUR) // HOUR % 24


def local_midnight(t: int) -> int:
    """The start (in epoch seconds) of the local day containing ``t``."""
    return (t + 8 * HOUR) // DAY * DAY - 8 * HOUR


def expected(rate_per_day: float, population: int, t0: int, t1: int, rhythm: str) -> float:
    """Expected events in ``[t0, t1)`` (within one local hour) for a per-person daily rate."""
    return rate_per_day * population * (t1 - t0) / DAY * float(RHYTHM[rhythm][int(local_hour(t0))])


def uniform(rng: np.random.Generator, n: int, t0: int, t1: int) -> np.ndarray:
    return rng.integers(t0, t1, n, dtype=np.int64)


def by_rhythm(rng: np.random.Generator, n: int, t0: int, t1: int, rhythm: str) -> np.ndarray:
    """``n`` moments in ``[t0, t1)`` following a daily profile (e.g. office hours); uniform
    when the window holds none of the profile's hours."""
    first_hour = t0 // HOUR * HOUR
    hours = np.arange(first_hour, t1, HOUR, dtype=np.int64)
    weight = RHYTHM[rhythm][local_hour(hours)]
    if weight.sum() == 0:
        weight = np.ones(len(hours))
    slot = hours[rng.choice(len(hours), n, p=weight / weight.sum())]
    return np.clip(slot + rng.integers(0, HOUR, n), t0, t1 - 1)


def iso(t: int) -> datetime:
    return datetime.fromtimestamp(t, timezone.utc)
