"""Fake base stations as a pure function: each feature, the new-tower look-alike, senders, replay;
and the cell registry's loading errors."""

import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

import antifraud
from antifraud.alerts.models import Alert
from antifraud.config import Settings
from antifraud.events.models import CellObservation, GeoPoint, SmsRecord
from antifraud.state.fake_base_station import configured_registry, load_registry
from antifraud.thresholds import FakeBaseStationThresholds, load_thresholds
from detectors.fake_base_station import DETECTOR, CellRegistry, RegisteredCell, SmsSighting, detect, distance_km
from detectors.window import WindowResult
from tests.windowing import replay_checks

LIMITS = FakeBaseStationThresholds(
    window_seconds=3600,
    min_handsets=30,
    max_weak_level=1,
    min_anomaly_handsets=10,
    max_distance_km=3.0,
    min_link_sms=20,
    min_sender_sms=5,
    max_tracked=2000,
)
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)
SITE = GeoPoint(lat=31.45, lon=121.10)
REAL, NEW, FAKE = "460-00-20000-1", "460-00-20000-2", "460-00-20000-9"
REGISTRY: CellRegistry = {
    REAL: RegisteredCell(SITE.lat, SITE.lon, "cmcc"),
    NEW: RegisteredCell(SITE.lat, SITE.lon, "cmcc", commissioned=T0.timestamp()),
}
SPAMMER = "17100000001"


def obs(n: int, cell: str, at: float, *, level: int = 3, where: GeoPoint = SITE) -> CellObservation:
    return CellObservation(
        event_id=f"obs-{cell[-1]}-{n:04d}",
        event_time=T0 + timedelta(seconds=at),
        cell_id=cell,
        lac=20000,
        operator="cmcc",
        signal_dbm=-50,
        encryption_level=level,
        handset_imei=f"8600000{n:07d}",
        location=where,
    )


def text(n: int, cell: str, at: float, sender: str = SPAMMER, link: str = "icbc-verify.top") -> SmsRecord:
    return SmsRecord(
        event_id=f"sms-{cell[-1]}-{n:04d}",
        event_time=T0 + timedelta(seconds=at),
        sender=sender,
        receiver=f"1390000{n:04d}",
        cell_id=cell,
        link_domains=[link],
    )


def handsets(
    cell: str, count: int, *, level: int = 3, where: GeoPoint = SITE, step: float = 20
) -> list[CellObservation]:
    return [obs(i, cell, i * step, level=level, where=where) for i in range(count)]


def as_seen(events: Sequence[CellObservation | SmsRecord]) -> list[CellObservation | SmsSighting]:
    """What the cell stage hands the detector: observations as they are, an SMS with a link as the cell's
    sighting of it (here told at the time it was sent)."""
    return [
        SmsSighting(e.event_time.timestamp(), e.cell_id, e.sender, e.event_id, e.event_time.timestamp())
        if isinstance(e, SmsRecord)
        else e
        for e in events
    ]


def run(events: Sequence[CellObservation | SmsRecord], registry: CellRegistry | None = REGISTRY) -> WindowResult:
    return detect(as_seen(events), {}, registry, LIMITS)


def cell_alerts(result: WindowResult) -> list[Alert]:
    return [a for a in result.alerts if a.entity.kind == "cell"]


def reason(alert: Alert, feature: str) -> tuple[float, float]:
    r = next(r for r in alert.reasons if r.feature == feature)
    return r.value, r.threshold


def test_unregistered_cell_that_many_handsets_attach_to_alerts_with_place() -> None:
    result = run(handsets(FAKE, 30))
    [alert] = cell_alerts(result)
    assert alert.detector == DETECTOR and alert.entity.value == FAKE
    assert reason(alert, "unregistered_cell") == (1, 1)
    assert reason(alert, "distinct_handsets_3600s") == (30, 30)
    assert alert.place == SITE
    assert alert.window_end == T0 + timedelta(seconds=29 * 20)
    assert {(a.kind, a.id) for a in alert.audience} == {("police", None), ("carrier", "cmcc")}


def test_unregistered_cell_with_few_handsets_stays_quiet() -> None:
    assert run(handsets(FAKE, 29)).alerts == []


def test_downgrade_on_a_registered_cell_alerts_without_a_registry_too() -> None:
    for registry in (REGISTRY, None):
        [alert] = cell_alerts(run(handsets(REAL, 30, level=0), registry))
        assert reason(alert, "weak_cipher_handsets") == (30, 10)
    assert all(r.feature != "unregistered_cell" for r in cell_alerts(run(handsets(REAL, 30, level=0), None))[0].reasons)


def test_registered_cell_far_from_its_site_alerts() -> None:
    far = GeoPoint(lat=SITE.lat + 0.1, lon=SITE.lon)  # about 11 km north
    [alert] = cell_alerts(run(handsets(REAL, 30, where=far)))
    value, threshold = reason(alert, "km_from_registered_site")
    assert value == pytest.approx(11.1, abs=0.1) and threshold == 3.0


def test_busy_registered_cell_stays_quiet() -> None:
    near = GeoPoint(lat=SITE.lat + 0.01, lon=SITE.lon)  # 1.1 km: inside the cell's reach
    assert run(handsets(REAL, 300, level=2, where=near) + [text(i, REAL, i) for i in range(50)]).alerts == []


def test_new_registered_tower_stays_quiet() -> None:
    assert run(handsets(NEW, 300, step=5)).alerts == []


def test_cell_id_used_before_its_commissioning_is_unregistered() -> None:
    early = [obs(i, NEW, -7200 + i * 10) for i in range(30)]
    [alert] = cell_alerts(run(early))
    assert reason(alert, "unregistered_cell") == (1, 1)


def test_downgrade_by_few_handsets_stays_quiet() -> None:
    events = handsets(REAL, 9, level=1) + [text(i, REAL, i) for i in range(40)]
    assert run(events).alerts == []


def test_sms_burst_through_an_unregistered_cell_alerts_and_names_the_senders() -> None:
    texts = [text(i, FAKE, i * 10, sender=SPAMMER if i % 2 else "17100000002") for i in range(20)]
    texts.append(text(99, FAKE, 300, sender="17100000003"))  # one text: too few to name its sender
    result = run(handsets(FAKE, 3) + texts)
    [cell] = cell_alerts(result)
    assert reason(cell, "link_sms_3600s") == (20, 20)
    senders = [a for a in result.alerts if a.entity.kind == "phone"]
    assert sorted(a.entity.value for a in senders) == ["17100000001", "17100000002"]
    assert all(a.detector == DETECTOR and a.reasons[0].value == 10 for a in senders)


def test_senders_keep_being_named_while_the_cell_is_suspect() -> None:
    late = "17100000004"
    events = handsets(FAKE, 30) + [text(i, FAKE, 700 + i * 10, sender=late) for i in range(5)]
    result = run(events)
    assert [a.entity.value for a in result.alerts if a.entity.kind == "phone"] == [late]
    assert len(cell_alerts(result)) == 1


def test_quiet_for_a_window_then_a_new_alert() -> None:
    events = handsets(FAKE, 30) + [obs(100 + i, FAKE, 4000 + i * 10) for i in range(30)]
    assert len(cell_alerts(run(events))) == 2


def test_handsets_outside_the_window_do_not_count() -> None:
    assert run(handsets(FAKE, 30, step=130)).alerts == []


def test_replay_safety() -> None:
    events = sorted(handsets(FAKE, 30) + [text(i, FAKE, i) for i in range(6)], key=lambda e: e.event_time)
    replay_checks(
        lambda b, p: detect(as_seen(b), p, REGISTRY, LIMITS), events
    )  # in batch order, as the pipeline hands them


def test_distance_km() -> None:
    assert distance_km(np.array(0.0), np.array(0.0), np.array(1.0), np.array(0.0)) == pytest.approx(111.19, abs=0.01)


def write(tmp_path: Path, body: object) -> Path:
    path = tmp_path / "cells.json"
    path.write_text(body if isinstance(body, str) else json.dumps(body), encoding="utf-8")
    return path


def test_registry_loads_with_commissioning_times(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "cells": [
                {"cell_id": REAL, "operator": "cmcc", "lac": 1, "lat": 31.45, "lon": 121.1, "district": "x"},
                {"cell_id": NEW, "operator": "cmcc", "lat": 31.45, "lon": 121.1, "commissioned": 1772380800},
            ]
        },
    )
    assert load_registry(path) == {
        REAL: RegisteredCell(31.45, 121.1, "cmcc"),
        NEW: RegisteredCell(31.45, 121.1, "cmcc", 1772380800),
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "is not JSON"),
        ({"cells": [{"cell_id": REAL, "lat": 91, "lon": 0, "operator": "cmcc"}]}, "invalid cell registry .*lat"),
        ({"towers": []}, "invalid cell registry .*cells"),
        ({"cells": [{"cell_id": REAL, "lat": 0, "lon": 0, "operator": "cmcc"}] * 2}, "listed twice"),
    ],
)
def test_registry_errors_name_the_file(tmp_path: Path, body: object, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        load_registry(write(tmp_path, body))
    assert "cells.json" in str(error.value)


def test_missing_registry_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read cell registry .*nowhere.json"):
        load_registry(tmp_path / "nowhere.json")


def test_registry_from_the_setting_over_thresholds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, {"cells": [{"cell_id": REAL, "lat": 0, "lon": 0, "operator": "cmcc"}]})
    monkeypatch.setenv("ANTIFRAUD_CELL_REGISTRY", str(path))
    monkeypatch.setenv("ANTIFRAUD_THRESHOLDS", str(tmp_path / "thresholds.toml"))
    (tmp_path / "thresholds.toml").write_text(
        (Path(antifraud.__file__).parent / "thresholds.toml").read_text().replace('registry = ""', 'registry = "/x"', 1)
    )
    assert load_thresholds(tmp_path / "thresholds.toml").fake_base_station.registry == "/x"
    assert set(configured_registry(Settings.from_env().thresholds().fake_base_station)) == {REAL}


def test_no_registry_turns_the_registry_features_off_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        assert configured_registry(LIMITS) is None
    assert "unknown-cell and mis-located-cell features" in caplog.text
