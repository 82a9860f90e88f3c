"""Fake base stations (伪基站): a cell that should not be where handsets see it.

A car-borne transmitter poses as a carrier cell: its id is in no registry (or
it borrows a real cell's id far from that cell's site), it offers no or weak
ciphering, its strong signal captures every handset nearby for a moment, and
while they are attached it pushes texts with links from spoofed numbers.

Per cell the detector keeps, within ``window_seconds``, the handsets whose
observations were anomalous (an unknown or not yet commissioned cell, weak
ciphering, a position far from the registered site: the rest of the traffic
of registered cells is filtered out with numpy and never stored) and the SMS
with links sent through the cell. A cell is suspect when it shows an anomaly
(unknown; at least ``min_anomaly_handsets`` handsets with weak ciphering; or
as many reporting it beyond ``max_distance_km`` from its site) and activity
(``min_handsets`` distinct handsets or ``min_link_sms`` SMS with links). The
cell's alert gives the median position the handsets reported (the suspected
place) and is followed by one alert per sender with ``min_sender_sms`` link SMS
through the suspect cell. A newly commissioned tower is in the registry from
its commissioning time and ciphers normally, so it never shows an anomaly.

A cell's state belongs to the owner of the cell's partition of the cell observations. SMS are keyed
by sender, so an SMS with a link reaches its cell as a :class:`SmsSighting`: a message delivered the
cross-entity delay after it was sent (``streams/pipeline.py``), judged like an observation at its
delivery.

An alert's id follows from the event (observation or SMS) whose judgement raised it.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

from antifraud.alerts.models import Alert, Audience, Entity, Reason
from antifraud.events.models import CellObservation, GeoPoint, SmsRecord
from antifraud.thresholds import FakeBaseStationThresholds
from detectors.window import EntityState, Seen, Tracker, WindowResult, ratio, result_of, trackers

DETECTOR = "fake_base_station"
EARTH_RADIUS_KM = 6371.0
MAX_EVIDENCE = 50
_HANDSETS, _SMS, _ALERTED = "h", "s", "a"


@dataclass(frozen=True)
class RegisteredCell:
    """A cell in the carrier's registry: its site and, when new, since when it transmits."""

    lat: float
    lon: float
    operator: str
    commissioned: float | None = None
    """Epoch seconds; the cell id is not legitimately on air before it."""


CellRegistry = Mapping[str, RegisteredCell]


@dataclass(frozen=True)
class SmsSighting:
    """An SMS with a link, as its cell learns of it: ``at`` is when the message reaches the cell's owner,
    ``sent_at`` when the SMS was sent."""

    at: float
    cell_id: str
    sender: str
    event_id: str
    sent_at: float


def distance_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Great-circle distance (haversine), element-wise."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))


def _registered(registry: CellRegistry | None, cell_id: str, at: float) -> RegisteredCell | None:
    """The cell's registry entry if it may be on air at ``at``; ``None`` when it may not."""
    cell = registry.get(cell_id) if registry is not None else None
    if cell is None or (cell.commissioned is not None and at < cell.commissioned):
        return None
    return cell


def anomalous(
    observations: Sequence[CellObservation], registry: CellRegistry | None, limits: FakeBaseStationThresholds
) -> np.ndarray:
    """Which observations could belong to a fake station (the rest is ordinary traffic)."""
    n = len(observations)
    level = np.fromiter((o.encryption_level for o in observations), np.int64, n)
    if registry is None:
        return level <= limits.max_weak_level
    sites = [_registered(registry, o.cell_id, o.event_time.timestamp()) for o in observations]
    known = np.fromiter((s is not None for s in sites), bool, n)
    site = np.array([(s.lat, s.lon) if s else (np.nan, np.nan) for s in sites], dtype=float).reshape(n, 2)
    seen_at = np.array([(o.location.lat, o.location.lon) for o in observations], dtype=float).reshape(n, 2)
    with np.errstate(invalid="ignore"):
        far = distance_km(seen_at[:, 0], seen_at[:, 1], site[:, 0], site[:, 1]) > limits.max_distance_km
    return ~known | far | (level <= limits.max_weak_level)


def _handset_detail(observation: CellObservation, limits: FakeBaseStationThresholds) -> str:
    """``"lat lon weak operator"``: what the cell's features need from a handset."""
    weak = int(observation.encryption_level <= limits.max_weak_level)
    return f"{observation.location.lat!r} {observation.location.lon!r} {weak} {observation.operator}"


@dataclass(frozen=True)
class _Handsets:
    positions: np.ndarray
    weak: np.ndarray
    operators: set[str]

    @classmethod
    def of(cls, seen: Mapping[str, Seen]) -> "_Handsets":
        parts = [s.detail.split(" ", 3) for s in seen.values()]
        return cls(
            positions=np.array([(float(p[0]), float(p[1])) for p in parts], dtype=float).reshape(len(parts), 2),
            weak=np.array([p[2] == "1" for p in parts], dtype=bool),
            operators={p[3] for p in parts},
        )


@dataclass(frozen=True)
class _Verdict:
    suspect: bool
    reasons: list[Reason]
    place: GeoPoint | None
    carriers: set[str]


def _judge_cell(
    tracker: Tracker, site: RegisteredCell | None, registry_known: bool, now: float, limits: FakeBaseStationThresholds
) -> _Verdict:
    handsets = _Handsets.of(tracker.upto(_HANDSETS, now))
    link_sms = len(tracker.upto(_SMS, now))
    count = len(handsets.weak)
    place = None
    if count:
        lat, lon = np.median(handsets.positions, axis=0)
        place = GeoPoint(lat=round(float(lat), 6), lon=round(float(lon), 6))
    reasons = [
        Reason(feature=f"distinct_handsets_{limits.window_seconds}s", value=count, threshold=limits.min_handsets),
        Reason(feature=f"link_sms_{limits.window_seconds}s", value=link_sms, threshold=limits.min_link_sms),
        Reason(feature="weak_cipher_handsets", value=int(handsets.weak.sum()), threshold=limits.min_anomaly_handsets),
    ]
    anomaly = reasons[2].value >= limits.min_anomaly_handsets
    if registry_known:
        unknown = site is None
        reasons.append(Reason(feature="unregistered_cell", value=int(unknown), threshold=1))
        anomaly |= unknown
        if site is not None and place is not None:
            off = float(distance_km(np.array(place.lat), np.array(place.lon), np.array(site.lat), np.array(site.lon)))
            reasons.append(
                Reason(feature="km_from_registered_site", value=round(off, 3), threshold=limits.max_distance_km)
            )
            anomaly |= off > limits.max_distance_km and count >= limits.min_anomaly_handsets
    activity = count >= limits.min_handsets or link_sms >= limits.min_link_sms
    carriers = handsets.operators | ({site.operator} if site is not None else set())
    return _Verdict(suspect=anomaly and activity, reasons=reasons, place=place, carriers=carriers)


def _cell_alert(
    cell_id: str, tracker: Tracker, verdict: _Verdict, now: float, limits: FakeBaseStationThresholds, trigger: str
) -> Alert:
    window_end = datetime.fromtimestamp(now, timezone.utc)
    seen = sorted([*tracker.upto(_HANDSETS, now).values(), *tracker.upto(_SMS, now).values()])
    score = max(ratio(r) for r in verdict.reasons)
    return Alert.create(
        detector=DETECTOR,
        entity=Entity(kind="cell", value=cell_id),
        trigger=trigger,
        window_start=window_end - timedelta(seconds=limits.window_seconds),
        window_end=window_end,
        severity="critical" if verdict.place is not None and score >= 2 else "high",
        score=round(score, 4),
        reasons=verdict.reasons,
        evidence_event_ids=[s.event_id for s in seen[-MAX_EVIDENCE:]],
        audience=[Audience(kind="police")] + [Audience(kind="carrier", id=c) for c in sorted(verdict.carriers)],
        place=verdict.place,
    )


def _sender_alerts(tracker: Tracker, now: float, limits: FakeBaseStationThresholds, trigger: str) -> list[Alert]:
    """The numbers whose link SMS went out through the suspect cell, each once per quiet period."""
    by_sender: dict[str, list[Seen]] = {}
    for seen in tracker.upto(_SMS, now).values():
        by_sender.setdefault(seen.detail, []).append(seen)
    alerts = []
    window_end = datetime.fromtimestamp(now, timezone.utc)
    for sender, texts in sorted(by_sender.items()):
        quiet = tracker.live[_ALERTED].get(sender)
        if len(texts) < limits.min_sender_sms or (quiet is not None and now < quiet.at):
            continue
        texts.sort()
        tracker.see(_ALERTED, sender, Seen(now + limits.window_seconds, texts[-1].event_id))
        alerts.append(
            Alert.create(
                detector=DETECTOR,
                entity=Entity(kind="phone", value=sender),
                trigger=trigger,
                window_start=window_end - timedelta(seconds=limits.window_seconds),
                window_end=window_end,
                severity="high",
                score=round(len(texts) / limits.min_sender_sms, 4),
                reasons=[
                    Reason(
                        feature=f"link_sms_via_suspect_cell_{limits.window_seconds}s",
                        value=len(texts),
                        threshold=limits.min_sender_sms,
                    )
                ],
                evidence_event_ids=[s.event_id for s in texts[-MAX_EVIDENCE:]],
                audience=[Audience(kind="police")],
            )
        )
    return alerts


Item = CellObservation | SmsSighting


def _at(item: Item) -> float:
    return item.at if isinstance(item, SmsSighting) else item.event_time.timestamp()


def _see(tracker: Tracker, item: Item, limits: FakeBaseStationThresholds) -> float:
    now = _at(item)
    if isinstance(item, CellObservation):
        tracker.see(_HANDSETS, item.handset_imei, Seen(now, item.event_id, _handset_detail(item, limits)))
    else:
        tracker.see(_SMS, item.event_id, Seen(item.sent_at, item.event_id, item.sender))
    tracker.expire(now)
    return now


def relevant(items: Sequence[Item], registry: CellRegistry | None, limits: FakeBaseStationThresholds) -> list[Item]:
    """The items the detector keeps, in their order: anomalous observations and SMS sightings."""
    observations = [i for i in items if isinstance(i, CellObservation)]
    keep = iter(anomalous(observations, registry, limits).tolist() if observations else ())
    return [i for i in items if not isinstance(i, CellObservation) or next(keep)]


def carries_link(sms: SmsRecord) -> bool:
    """Whether an SMS goes to its cell's detector (the cell counts the texts with links)."""
    return bool(sms.link_domains)


def detect(
    items: Sequence[Item],
    prior: Mapping[str, EntityState],
    registry: CellRegistry | None,
    limits: FakeBaseStationThresholds,
) -> WindowResult:
    """Fold a piece's observations and SMS sightings (in batch order) into per-cell windows; alert on
    suspect cells."""
    kept = relevant(items, registry, limits)
    horizons = {_HANDSETS: limits.window_seconds, _SMS: limits.window_seconds, _ALERTED: 0}
    tracked = trackers({i.cell_id for i in kept}, prior, horizons, limits.max_tracked)
    alerts: list[Alert] = []
    for item in kept:
        tracker = tracked[item.cell_id]
        now = _see(tracker, item, limits)
        site = _registered(registry, item.cell_id, now)
        if not tracker.live[_HANDSETS] and site is not None:
            continue  # a registered cell without an anomalous observation: nothing to judge
        verdict = _judge_cell(tracker, site, registry is not None, now, limits)
        if not verdict.suspect:
            continue
        if not tracker.quiet(now):
            tracker.alerted(now + limits.window_seconds)
            alerts.append(_cell_alert(item.cell_id, tracker, verdict, now, limits, item.event_id))
        alerts += _sender_alerts(tracker, now, limits, item.event_id)
    return result_of(alerts, tracked)
