"""Bulk SIM registration: one ID number registering more phone cards than a person does.

Card dealers register SIMs on their own (or bought) ID numbers at several
carriers within days and sell them to fraud teams; outlets that skip real-name
verification make it easy. Per ID number the detector remembers every
registration (keyed by event id) for ``history_days`` and judges each new one
by: SIMs within ``burst_days``, SIMs within ``window_days``, the most SIMs at
one carrier over the history (the legal cap), and unverified registrations
within ``window_days``. Crossing any limit raises one alert per episode, listing
every feature with its value and threshold; the ID is then quiet for
``burst_days``.

Replay safety: the alert's window is anchored on the registration that crossed
the limit, so the same input gives the same ``alert_id``; registrations are
upserts keyed by event id, so applying a change twice changes nothing.
"""

from collections import Counter
from collections.abc import Mapping, Sequence

from antifraud.alerts.models import Alert, Audience, Reason
from antifraud.events.models import SimRegistration
from antifraud.thresholds import SimRegistrationThresholds
from detectors.window import DAY, EntityState, Seen, Tracker, WindowResult, fold_id_histories, id_history_alert

DETECTOR = "sim_registration"
_REGISTRATIONS = "r"


def _detail(registration: SimRegistration) -> str:
    """``"1cmcc"``: the verified flag, then the carrier."""
    return f"{int(registration.real_name_verified)}{registration.carrier}"


def _carrier(seen: Seen) -> str:
    return seen.detail[1:]


def _verified(seen: Seen) -> bool:
    return seen.detail[:1] == "1"


def _reasons(held: Mapping[str, Seen], now: float, limits: SimRegistrationThresholds) -> list[Reason]:
    """Every feature of the ID's registrations up to ``now``, with its threshold."""
    burst = [s for s in held.values() if s.at >= now - limits.burst_days * DAY]
    window = [s for s in held.values() if s.at >= now - limits.window_days * DAY]
    per_carrier = Counter(_carrier(s) for s in held.values())
    return [
        Reason(feature=f"sims_{limits.burst_days}d", value=len(burst), threshold=limits.max_sims_burst),
        Reason(feature=f"sims_{limits.window_days}d", value=len(window), threshold=limits.max_sims_window),
        Reason(
            feature=f"sims_one_carrier_{limits.history_days}d",
            value=max(per_carrier.values(), default=0),
            threshold=limits.max_sims_per_carrier,
        ),
        Reason(
            feature=f"unverified_sims_{limits.window_days}d",
            value=sum(not _verified(s) for s in window),
            threshold=limits.max_unverified_window,
        ),
    ]


def _judge(
    tracker: Tracker, id_number: str, registration: SimRegistration, limits: SimRegistrationThresholds
) -> Alert | None:
    return id_history_alert(
        DETECTOR,
        tracker,
        _REGISTRATIONS,
        id_number,
        Seen(registration.event_time.timestamp(), registration.event_id, _detail(registration)),
        lambda held, at: _reasons(held, at, limits),
        limits,
        lambda evidence: (
            [Audience(kind="police")]
            + [Audience(kind="carrier", id=carrier) for carrier in sorted({_carrier(s) for s in evidence})]
        ),
    )


def detect(
    registrations: Sequence[SimRegistration],
    prior: Mapping[str, EntityState],
    limits: SimRegistrationThresholds,
) -> WindowResult:
    """Fold a batch of registrations (any order) into per-ID histories; alert on crossings."""
    return fold_id_histories(
        registrations,
        prior,
        _REGISTRATIONS,
        limits,
        limits.max_tracked,
        lambda tracker, registration: _judge(tracker, registration.id_number, registration, limits),
    )
