"""``antifraud evaluate`` on a hand-made stream whose figures are worked out below.

The stream (times are seconds after T0):

- fraud_call_team-1, start 0: targets P1 (fraud number), A1 (mule); victim V1.
  Events at 0, 60, 120, 180, 240. call_fanout alerts P1 at 120 (twice, same id) and 300.
- fraud_call_team-2, start 1000: targets P2, A2; victim V2. Events at 1000, 1030, 1060, 1090.
  account_risk alerts A2 at 1060.
- fraud_call_team-3, start 2000: targets P3, A3. Never alerted.
- card_dealer-1, start 500: target D1. Events at 500, 600, 700. account_risk alerts D1 at 650.
- wangiri-1, start 3000: target W1. Never alerted.
- courier_calls-1 (benign): C1, C2. call_fanout alerts C1 at 250.
- call_fanout also alerts the victim V1 (200); account_risk alerts R1, in no scenario (400).

Alerted entities: P1, C1, V1 (call_fanout); A2, R1, D1 (account_risk); false positives C1, V1, R1.

- fraud_call_team: 2 of 6 targets alerted, recall 1/3; caught by both detectors, whose false
  positives are C1, V1, R1 (D1 is another type's target: neither), precision 2/(2+3) = 0.4.
  Time to detect 120 s (3 events) and 60 s (3 events): median 90, p90 60 + 0.9*60 = 114.
- card_dealer: 1 of 1, recall 1; caught by account_risk only (false positive R1): precision 1/2.
  150 s, 2 events (500 and 600 are at or before 650, 700 is not).
- wangiri: no detector caught it: precision null, recall 0.
- call_fanout: 4 distinct alerts, 3 entities, TP 1, FP 2; account_risk: 3 alerts, 3 entities, TP 2, FP 1.
- benign false positives: 1 (C1).
"""

import gzip
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from antifraud.alerts.models import Alert, Audience, Entity, Reason
from antifraud.evaluation import EvaluationError, evaluate, format_table
from antifraud.evaluation.scoring import EventFact
from antifraud.stack.embedded import Endpoints
from simulators.ground_truth import GroundTruth, ScenarioTruth, TruthEntity
from streams import topics
from tests.conftest import run_cli

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc)

P1, P2, P3, W1 = "13800000001", "13800000002", "13800000003", "17000000031"
V1, V2 = "13900000011", "13900000012"
C1, C2 = "15000000021", "15000000022"
A1, A2, A3, R1 = "6222000000000001", "6222000000000002", "6222000000000003", "6222000000009999"
D1 = "11010519491231002X"
ALL_IDENTIFIERS = (P1, P2, P3, W1, V1, V2, C1, C2, A1, A2, A3, R1, D1)

EVENT_SECONDS = {
    **{f"e{i}": 60.0 * i for i in range(5)},
    "f0": 1000.0,
    "f1": 1030.0,
    "f2": 1060.0,
    "f3": 1090.0,
    "c0": 500.0,
    "c1": 600.0,
    "c2": 700.0,
    "g0": 2000.0,
    "g1": 2010.0,
    "w0": 3000.0,
    "b0": 200.0,
    "b1": 260.0,
}
EVENT_TIMES = {event_id: T0 + timedelta(seconds=s) for event_id, s in EVENT_SECONDS.items()}
ACTORS = {
    "e0": P1,
    "e1": P1,
    "e2": P1,
    "e3": V1,
    "e4": A1,
    "f0": P2,
    "f1": P2,
    "f2": V2,
    "f3": A2,
    "c0": D1,
    "c1": D1,
    "c2": D1,
    "g0": P3,
    "g1": P3,
    "w0": W1,
    "b0": C1,
    "b1": C1,
}
"""Who made each event (caller, payer, registrant): P1 calls at 0-120, the mule A2 pays on at 1090."""
EVENTS = {event_id: EventFact(time, ACTORS[event_id]) for event_id, time in EVENT_TIMES.items()}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def entity(kind: str, value: str, role: str, target: bool) -> TruthEntity:
    return TruthEntity(kind=kind, value=value, role=role, target=target)  # type: ignore[arg-type]


def scenario(
    scenario_id: str, entities: list[TruthEntity], event_ids: list[str], *, benign: bool = False
) -> ScenarioTruth:
    times = [EVENT_TIMES[e] for e in event_ids]
    return ScenarioTruth(
        scenario_id=scenario_id,
        scenario=scenario_id.rsplit("-", 1)[0],
        benign=benign,
        start=times[0],
        end=times[-1],
        entities=entities,
        event_ids=event_ids,
    )


def fraud_team(n: int, phone: str, account: str, event_ids: list[str], victim: str | None = None) -> ScenarioTruth:
    entities = [entity("phone", phone, "fraud_number", True), entity("account", account, "mule", True)]
    if victim:
        entities.append(entity("phone", victim, "victim", False))
    return scenario(f"fraud_call_team-{n}", entities, event_ids)


def ground_truth() -> GroundTruth:
    scenarios = [
        fraud_team(1, P1, A1, ["e0", "e1", "e2", "e3", "e4"], V1),
        fraud_team(2, P2, A2, ["f0", "f1", "f2", "f3"], V2),
        fraud_team(3, P3, A3, ["g0", "g1"]),
        scenario("card_dealer-1", [entity("id_number", D1, "dealer_id", True)], ["c0", "c1", "c2"]),
        scenario("wangiri-1", [entity("phone", W1, "fraud_number", True)], ["w0"]),
        scenario(
            "courier_calls-1",
            [entity("phone", C1, "courier", False), entity("phone", C2, "customer", False)],
            ["b0", "b1"],
            benign=True,
        ),
    ]
    return GroundTruth(seed=7, params={}, start=T0, end=at(3600), event_count=len(EVENT_TIMES), scenarios=scenarios)


def alert(detector: str, kind: str, value: str, end_s: float) -> Alert:
    return Alert.create(
        detector=detector,
        entity=Entity(kind=kind, value=value),
        trigger=f"event-{end_s}",  # type: ignore[arg-type]
        window_start=at(end_s - 60),
        window_end=at(end_s),
        severity="medium",
        score=1.0,
        reasons=[Reason(feature="f", value=2, threshold=1)],
        evidence_event_ids=["x"],
        audience=[Audience(kind="police")],
    )


def alerts() -> list[Alert]:
    first = alert("call_fanout", "phone", P1, 120)
    return [
        first,
        first,
        alert("call_fanout", "phone", P1, 300),
        alert("call_fanout", "phone", C1, 250),
        alert("call_fanout", "phone", V1, 200),
        alert("account_risk", "account", A2, 1060),
        alert("account_risk", "account", R1, 400),
        alert("account_risk", "id_number", D1, 650),
    ]


# --- the pure computation --------------------------------------------------------------


def test_roles_count_own_events_and_detection_before_acting() -> None:
    roles = evaluate(ground_truth(), alerts(), EVENTS).roles
    number = roles["fraud_call_team/fraud_number"]
    # P1 of P1-P3 alerted at 120 s, after its own calls at 0, 60, 120; call_fanout's FPs are C1 and V1.
    assert (number.targets, number.alerted_targets, number.recall, number.precision) == (3, 1, 1 / 3, 1 / 3)
    assert (number.median_seconds_to_detect, number.median_own_events_to_detect) == (120.0, 3.0)
    assert number.detected_before_acting == 0.0
    mule = roles["fraud_call_team/mule"]
    # A2 alerted at 1060 s, 60 s after its scenario began and before it paid on at 1090.
    assert (mule.recall, mule.precision, mule.median_seconds_to_detect) == (1 / 3, 0.5, 60.0)
    assert (mule.median_own_events_to_detect, mule.detected_before_acting) == (0.0, 1 / 3)
    dealer = roles["card_dealer/dealer_id"]
    assert (dealer.recall, dealer.median_seconds_to_detect, dealer.median_own_events_to_detect) == (1.0, 150.0, 2.0)
    wangiri = roles["wangiri/fraud_number"]
    assert (wangiri.recall, wangiri.precision, wangiri.median_own_events_to_detect) == (0.0, None, None)
    assert evaluate(ground_truth(), alerts()).roles["fraud_call_team/mule"].detected_before_acting is None


def test_scenario_type_figures() -> None:
    report = evaluate(ground_truth(), alerts(), EVENTS)
    team, dealer, wangiri = (report.scenarios[n] for n in ("fraud_call_team", "card_dealer", "wangiri"))
    assert list(report.scenarios) == ["card_dealer", "fraud_call_team", "wangiri"], "benign types are not scored"

    assert (team.instances, team.detected_instances, team.targets, team.alerted_targets) == (3, 2, 6, 2)
    assert team.detectors == ["account_risk", "call_fanout"]
    assert team.false_positive_entities == 3
    assert team.precision == pytest.approx(0.4)
    assert team.recall == pytest.approx(1 / 3)
    assert team.median_seconds_to_detect == 90.0 and team.p90_seconds_to_detect == pytest.approx(114.0)
    assert team.median_events_to_detect == 3.0 and team.p90_events_to_detect == 3.0
    assert team.undetected == ["fraud_call_team-3"]
    assert {e.value for e in team.missed_targets} == {A1, P2, P3, A3}

    assert (dealer.targets, dealer.alerted_targets, dealer.detectors, dealer.false_positive_entities) == (
        1,
        1,
        ["account_risk"],
        1,
    )
    assert dealer.precision == 0.5 and dealer.recall == 1.0
    assert dealer.median_seconds_to_detect == 150.0 and dealer.median_events_to_detect == 2.0

    assert wangiri.precision is None and wangiri.recall == 0.0 and wangiri.detectors == []
    assert wangiri.median_seconds_to_detect is None and wangiri.undetected == ["wangiri-1"]


def test_each_instance_records_its_first_alert_and_detector() -> None:
    report = evaluate(ground_truth(), alerts(), EVENTS)
    by_id = {i.scenario_id: i for i in report.instances}
    assert (by_id["fraud_call_team-1"].seconds_to_detect, by_id["fraud_call_team-1"].events_to_detect) == (120.0, 3)
    assert by_id["fraud_call_team-1"].detector == "call_fanout"
    assert (by_id["fraud_call_team-2"].seconds_to_detect, by_id["fraud_call_team-2"].events_to_detect) == (60.0, 3)
    assert by_id["fraud_call_team-2"].detector == "account_risk"
    assert by_id["fraud_call_team-3"].detected_at is None and by_id["fraud_call_team-3"].events_to_detect is None
    targets = {t.entity.value: t for t in by_id["fraud_call_team-1"].targets}
    assert targets[P1].first_alert_at == at(120) and targets[P1].role == "fraud_number"
    assert targets[A1].first_alert_at is None


def test_detector_figures_and_duplicates() -> None:
    report = evaluate(ground_truth(), alerts(), EVENTS)
    assert (report.alerts.received, report.alerts.distinct, report.alerts.duplicates) == (8, 7, 1)
    fanout, risk = report.detectors["call_fanout"], report.detectors["account_risk"]
    assert (fanout.alerts, fanout.alerted_entities, fanout.true_positive_entities, fanout.false_positive_entities) == (
        4,
        3,
        1,
        2,
    )
    assert fanout.precision == pytest.approx(1 / 3)
    assert fanout.caught_targets == {"fraud_call_team": 1}
    assert {e.value for e in fanout.false_positives} == {C1, V1}
    assert (risk.alerts, risk.alerted_entities, risk.true_positive_entities, risk.false_positive_entities) == (
        3,
        3,
        2,
        1,
    )
    assert risk.precision == pytest.approx(2 / 3)
    assert risk.caught_targets == {"card_dealer": 1, "fraud_call_team": 1}
    assert (report.alerted_entities, report.false_positive_entities) == (6, 3)


def test_benign_false_positives_count_alerted_benign_entities_once() -> None:
    twice = [*alerts(), alert("account_risk", "phone", C1, 255)]
    report = evaluate(ground_truth(), twice)
    assert report.benign_false_positives == 1
    assert report.benign_false_positives_by_scenario == {"courier_calls": 1}
    assert report.benign_false_positive_entities["courier_calls"] == [Entity(kind="phone", value=C1)]


def test_alerts_before_a_scenario_starts_do_not_detect_it() -> None:
    early = [alert("account_risk", "account", A3, 1500), alert("call_fanout", "phone", P3, 2010)]
    report = evaluate(ground_truth(), early, EVENTS)
    third = next(i for i in report.instances if i.scenario_id == "fraud_call_team-3")
    assert third.detector == "call_fanout"
    assert (third.seconds_to_detect, third.events_to_detect) == (10.0, 2)


def test_events_to_detect_needs_event_times_of_every_scenario_event() -> None:
    report = evaluate(ground_truth(), alerts())
    assert not report.events_known
    assert report.scenarios["fraud_call_team"].median_seconds_to_detect == 90.0
    assert report.scenarios["fraud_call_team"].median_events_to_detect is None
    partial = {k: v for k, v in EVENTS.items() if k != "f2"}
    with pytest.raises(
        EvaluationError, match=r"no event time for 1 scenario events \(first: 'f2' of fraud_call_team-2\)"
    ):
        evaluate(ground_truth(), alerts(), partial)


def test_table_shows_the_figures_with_identifiers_masked() -> None:
    table = format_table(evaluate(ground_truth(), alerts(), EVENTS))
    rows = {line.split()[0]: line.split() for line in table.splitlines() if line.strip()}
    assert rows["fraud_call_team"][1:] == ["3", "2", "6", "2", "0.400", "0.333", "90.0", "114.0", "3.0"]
    assert rows["wangiri"][1:] == ["1", "0", "1", "0", "-", "0.000", "-", "-", "-"]
    assert rows["call_fanout"][1:7] == ["4", "3", "1", "2", "0.333", "fraud_call_team"]
    assert "undetected instances: fraud_call_team-3, wangiri-1" in table
    assert "courier_calls: 1: phone 150****0021" in table
    assert not [v for v in ALL_IDENTIFIERS if v in table]
    assert C1 in format_table(evaluate(ground_truth(), alerts()), show_entities=True)


# --- the command line ----------------------------------------------------------------------

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run ``antifraud evaluate ARGS`` in-process, through the real command line."""
    monkeypatch.delenv("KAFKA_BOOTSTRAP", raising=False)

    return lambda *argv: run_cli(capsys, "evaluate", *argv)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """The truth, the alerts (gzip) and the events file of the hand-made stream."""
    truth = tmp_path / "city.truth.json"
    ground_truth().write(truth)
    alerts_path = tmp_path / "alerts.jsonl.gz"
    with gzip.open(alerts_path, "wb") as out:
        out.writelines(a.model_dump_json().encode() + b"\n" for a in alerts())
    events = tmp_path / "city.jsonl.gz"
    with gzip.open(events, "wb") as out:
        for event_id, time in sorted(EVENT_TIMES.items(), key=lambda item: item[1]):
            out.write(
                orjson.dumps(
                    {
                        "kind": "call_record",
                        "event_id": event_id,
                        "event_time": time.isoformat(),
                        "caller": ACTORS[event_id],
                    }
                )
                + b"\n"
            )
    return {"truth": truth, "alerts": alerts_path, "events": events}


def test_json_output_has_the_promised_shape_and_no_identifiers(cli: Cli, files: dict[str, Path]) -> None:
    code, out, _ = cli(
        "--truth", str(files["truth"]), "--alerts", str(files["alerts"]), "--events", str(files["events"]), "--json"
    )
    assert code == 0
    data = orjson.loads(out)
    team = data["scenarios"]["fraud_call_team"]
    assert (team["precision"], team["recall"], team["median_seconds_to_detect"]) == (0.4, pytest.approx(1 / 3), 90.0)
    assert team["median_events_to_detect"] == 3.0
    assert data["scenarios"]["wangiri"]["precision"] is None
    assert data["benign_false_positives"] == 1
    assert data["benign_false_positives_by_scenario"] == {"courier_calls": 1}
    assert data["detectors"]["account_risk"]["precision"] == pytest.approx(2 / 3)
    assert not [v for v in ALL_IDENTIFIERS if v in out]

    code, out, _ = cli("--truth", str(files["truth"]), "--alerts", str(files["alerts"]), "--json", "--show-entities")
    data = orjson.loads(out)
    assert data["benign_false_positive_entities"] == {"courier_calls": [{"kind": "phone", "value": C1}]}
    assert {e["value"] for e in data["scenarios"]["fraud_call_team"]["missed_targets"]} == {A1, P2, P3, A3}
    assert data["scenarios"]["fraud_call_team"]["median_events_to_detect"] is None, "no --events given"


def test_plots_are_written_as_png_and_their_paths_printed(cli: Cli, files: dict[str, Path], tmp_path: Path) -> None:
    code, out, _ = cli(
        "--truth", str(files["truth"]), "--alerts", str(files["alerts"]), "--plots", str(tmp_path / "charts")
    )
    assert code == 0
    written = [
        Path(line.removeprefix("plot written: ")) for line in out.splitlines() if line.startswith("plot written: ")
    ]
    assert sorted(p.name for p in written) == ["precision_recall.png", "time_to_detect.png"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    assert "fraud_call_team" in out, "the table is printed too"

    code, out, _ = cli(
        "--truth", str(files["truth"]), "--alerts", str(files["alerts"]), "--json", "--plots", str(tmp_path / "again")
    )
    assert code == 0 and orjson.loads(out)["plots"] == [
        str(tmp_path / "again" / n) for n in ("precision_recall.png", "time_to_detect.png")
    ]


def test_bad_inputs_say_what_is_wrong(cli: Cli, files: dict[str, Path], tmp_path: Path) -> None:
    truth, alerts_path = str(files["truth"]), str(files["alerts"])

    code, _, err = cli("--truth", truth)
    assert code == 2 and "antifraud evaluate: error: give the alerts: --alerts FILE, or --bootstrap" in err

    code, _, err = cli("--truth", str(tmp_path / "nope.json"), "--alerts", alerts_path)
    assert code == 2 and f"cannot read ground truth {tmp_path / 'nope.json'}: No such file or directory" in err

    (tmp_path / "bad.truth.json").write_text('{"seed": 1}')
    code, _, err = cli("--truth", str(tmp_path / "bad.truth.json"), "--alerts", alerts_path)
    assert code == 2 and "is not a ground truth file: params: Field required" in err

    lines = [a.model_dump_json() for a in alerts()[:2]] + [
        "",
        '{"alert_id": "x", "entity": {"kind": "phone", "value": "13812345678"}}',
    ]
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    code, _, err = cli("--truth", truth, "--alerts", str(tmp_path / "bad.jsonl"))
    assert code == 2 and "bad.jsonl line 4: not an alert: detector: Field required" in err
    assert "13812345678" not in err, "errors name fields, not values"

    (tmp_path / "events.jsonl").write_text('{"event_id": "e0", "event_time": "2024-05-01T08:00:00"}\n')
    code, _, err = cli("--truth", truth, "--alerts", alerts_path, "--events", str(tmp_path / "events.jsonl"))
    assert code == 2 and "events.jsonl line 1: event_time is not an ISO 8601 time with a timezone" in err

    (tmp_path / "events.jsonl").write_text('{"event_id": "e0", "event_time": "2024-05-01T08:00:00Z"}\n')
    code, _, err = cli("--truth", truth, "--alerts", alerts_path, "--events", str(tmp_path / "events.jsonl"))
    assert code == 2 and "no event time for 14 scenario events (first: 'e1' of fraud_call_team-1)" in err

    code, _, err = cli("--truth", truth, "--alerts", alerts_path, "--bootstrap", "127.0.0.1:1")
    assert code == 2 and "argument --bootstrap: not allowed with argument --alerts" in err


# --- the alerts topic on the embedded broker -------------------------------------------------


@pytest.mark.integration
def test_alerts_read_from_the_alerts_topic(
    stack: Endpoints, cli: Cli, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    for a in alerts():
        producer.send(topics.ALERTS, key=a.entity.value.encode(), value=a.model_dump_json().encode())
    producer.flush()

    code, out, err = cli("--truth", str(files["truth"]), "--bootstrap", stack.kafka_bootstrap, "--json")
    assert code == 0, err
    data = orjson.loads(out)
    assert data["alerts"] == {"received": 8, "distinct": 7, "duplicates": 1}
    assert data["scenarios"]["fraud_call_team"]["precision"] == 0.4
    assert data["scenarios"]["card_dealer"]["median_seconds_to_detect"] == 150.0
    assert data["benign_false_positives"] == 1

    producer.send(topics.ALERTS, key=b"k", value=b'{"alert_id": ')
    producer.flush()
    producer.close()
    code, _, err = cli("--truth", str(files["truth"]), "--bootstrap", stack.kafka_bootstrap)
    assert code == 2 and f"{topics.ALERTS} partition" in err and "not an alert" in err
    monkeypatch.setenv("KAFKA_BOOTSTRAP", stack.kafka_bootstrap)
    code, _, err = cli("--truth", str(files["truth"]))
    assert code == 2 and "not an alert" in err, "KAFKA_BOOTSTRAP names the broker when --bootstrap does not"
