"""A small simulated city end to end: determinism, the file format, and ground truth that
agrees with the events (who did what in each scenario)."""

import gzip
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from antifraud.events.codec import decode_any, encode
from antifraud.events.models import (
    BankTransfer,
    CallRecord,
    CardOpening,
    CellObservation,
    Event,
    FraudReport,
    SmsRecord,
)
from simulators.engine import Config, cells_path, default_counts, default_params, simulate
from simulators.ground_truth import GroundTruth, ScenarioTruth, truth_path
from simulators.sinks import FileSink


def small_config(seed: int = 1) -> Config:
    """300 people, one day, every scenario squeezed into the day."""
    params = default_params()
    params["card_dealer"] = replace(params["card_dealer"], opening_days=0.5, mule_after_days=0.1)
    params["payroll"] = replace(params["payroll"], pay_day=0)
    return Config(
        seed=seed, people=300, days=1, params=params, counts={**default_counts(), "sales_calls": 1, "two_handsets": 1}
    )


def run(config: Config, folder: Path) -> tuple[Path, GroundTruth]:
    folder.mkdir(parents=True, exist_ok=True)
    events = folder / "city.jsonl.gz"
    truth = simulate(config, FileSink(events), cells_path(truth_path(events)))
    truth.write(truth_path(events))
    return events, truth


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GroundTruth]:
    return run(small_config(), tmp_path_factory.mktemp("sim") / "a")


@pytest.fixture(scope="module")
def lines(city: tuple[Path, GroundTruth]) -> list[bytes]:
    return gzip.decompress(city[0].read_bytes()).split(b"\n")[:-1]


@pytest.fixture(scope="module")
def events(lines: list[bytes]) -> dict[str, Event]:
    return {e.event_id: e for e in map(decode_any, lines)}


def scenarios(truth: GroundTruth, name: str) -> Iterator[ScenarioTruth]:
    found = [s for s in truth.scenarios if s.scenario == name]
    assert found, f"no {name} scenario in the small city"
    return iter(found)


def values(s: ScenarioTruth, role: str) -> set[str]:
    return {e.value for e in s.entities if e.role == role}


def of(s: ScenarioTruth, events: dict[str, Event], kind: type[Any]) -> list[Any]:
    return [events[i] for i in s.event_ids if isinstance(events[i], kind)]


def test_same_seed_gives_byte_identical_files_and_another_seed_does_not(
    city: tuple[Path, GroundTruth], tmp_path: Path
) -> None:
    first, _ = city
    again, _ = run(small_config(), tmp_path / "again")
    other, _ = run(small_config(seed=2), tmp_path / "other")
    assert again.read_bytes() == first.read_bytes()
    assert truth_path(again).read_bytes() == truth_path(first).read_bytes()
    assert cells_path(truth_path(again)).read_bytes() == cells_path(truth_path(first)).read_bytes()
    assert other.read_bytes() != first.read_bytes()
    assert truth_path(other).read_bytes() != truth_path(first).read_bytes()


def test_every_line_is_a_valid_event_that_reencodes_to_the_same_bytes(lines: list[bytes]) -> None:
    kinds = Counter()
    for line in lines:
        event = decode_any(line)
        assert encode(event) == line
        kinds[event.kind] += 1
    assert set(kinds) == {
        "bank_transfer",
        "card_opening",
        "sim_registration",
        "call_record",
        "sms_record",
        "cell_observation",
        "fraud_report",
    }


def test_lines_are_in_event_time_order_with_unique_ids(
    city: tuple[Path, GroundTruth], lines: list[bytes], events: dict[str, Event]
) -> None:
    decoded = [decode_any(line) for line in lines]
    keys = [(e.event_time, e.event_id) for e in decoded]
    assert keys == sorted(keys)
    assert len(events) == len(lines) == city[1].event_count
    truth = city[1]
    assert truth.start <= decoded[0].event_time and decoded[-1].event_time < truth.end


def test_truth_event_ids_exist_in_order_and_scenarios_start_at_their_first_event(
    city: tuple[Path, GroundTruth], events: dict[str, Event]
) -> None:
    truth = GroundTruth.read(truth_path(city[0]))
    assert truth == city[1]
    assert {s.scenario for s in truth.scenarios} == set(default_params())
    claimed = [i for s in truth.scenarios for i in s.event_ids]
    assert len(claimed) == len(set(claimed)), "an event belongs to one scenario at most"
    for s in truth.scenarios:
        times = [(events[i].event_time, i) for i in s.event_ids]
        assert times == sorted(times)
        assert s.start == times[0][0] and s.end == times[-1][0]
        assert s.benign == (not any(e.target for e in s.entities)), s.scenario_id


def test_fraud_call_team_calls_come_from_its_numbers_and_victims_pay_its_mules(
    city: tuple[Path, GroundTruth], events: dict[str, Event]
) -> None:
    for s in scenarios(city[1], "fraud_call_team"):
        numbers, mules, hops = values(s, "fraud_number"), values(s, "mule"), values(s, "next_hop")
        victims = values(s, "victim")
        calls = of(s, events, CallRecord)
        outbound = [c for c in calls if c.caller in numbers]
        assert outbound and all(c.caller in numbers or c.callee in numbers for c in calls)
        for number in numbers:
            callees = [c.callee for c in outbound if c.caller == number]
            assert len(set(callees)) == len(callees), "nobody twice (the small city has enough people)"
        assert len({c.imei for c in outbound}) > len(numbers), "handsets change"
        transfers = of(s, events, BankTransfer)
        paid = [t for t in transfers if t.payee_account in mules]
        assert paid and all(t.payer_account in victims for t in paid)
        assert all(t.payer_account in mules and t.payee_account in hops for t in transfers if t not in paid)
        calls_to = {c.callee: c.event_time for c in outbound}
        for report in of(s, events, FraudReport):
            assert set(report.reported_numbers) <= numbers and set(report.payee_accounts) <= mules
            assert report.victim_phone in calls_to and report.fraud_time <= report.event_time
        assert all(t.event_time > min(calls_to.values()) for t in paid)


def test_mules_collect_and_pass_the_money_on_within_minutes(
    city: tuple[Path, GroundTruth], events: dict[str, Event]
) -> None:
    for s in scenarios(city[1], "fraud_call_team"):
        transfers = of(s, events, BankTransfer)
        mules = values(s, "mule")
        received = defaultdict(list)
        for t in transfers:
            if t.payee_account in mules:
                received[t.payee_account].append(t.event_time)
        for t in transfers:
            if t.payer_account in mules:
                assert any(timedelta(0) < t.event_time - r <= timedelta(minutes=30) for r in received[t.payer_account])


def test_card_dealer_opens_cards_at_several_banks_that_then_take_and_pass_on_money(
    city: tuple[Path, GroundTruth], events: dict[str, Event]
) -> None:
    for s in scenarios(city[1], "card_dealer"):
        (dealer,) = values(s, "dealer_id")
        cards = values(s, "sold_card")
        openings = of(s, events, CardOpening)
        assert {o.id_number for o in openings} == {dealer} and {o.account for o in openings} == cards
        assert len({o.bank for o in openings}) == len(openings) >= 3
        sims = [events[i] for i in s.event_ids if events[i].kind == "sim_registration"]
        assert len({x.carrier for x in sims}) >= 2 and {x.id_number for x in sims} == {dealer}
        transfers = of(s, events, BankTransfer)
        assert {t.payee_account for t in transfers if t.payee_account in cards}
        assert all(t.payer_id_number == dealer for t in transfers if t.payer_account in cards)


def test_fake_base_station_is_unregistered_downgrades_ciphering_and_sends_lookalike_links(
    city: tuple[Path, GroundTruth], events: dict[str, Event]
) -> None:
    registry = {c["cell_id"] for c in json.loads(cells_path(truth_path(city[0])).read_text())["cells"]}
    everyday_cells = {e.cell_id for e in events.values() if isinstance(e, CellObservation)}
    for s in scenarios(city[1], "fake_base_station"):
        (cell,) = values(s, "fake_cell")
        assert cell not in registry and everyday_cells - {cell} <= registry
        observations = of(s, events, CellObservation)
        assert observations and all(o.cell_id == cell and o.encryption_level <= 1 for o in observations)
        texts = of(s, events, SmsRecord)
        assert texts and all(t.cell_id == cell and t.sender in values(s, "sms_sender") for t in texts)
        legit = {"icbc.com.cn", "ccb.com", "abchina.com", "boc.cn", "10086.cn"}
        assert all(t.link_domains and not set(t.link_domains) & legit for t in texts)


def test_wangiri_rings_once_from_abroad(city: tuple[Path, GroundTruth], events: dict[str, Event]) -> None:
    for s in scenarios(city[1], "wangiri"):
        numbers = values(s, "one_ring_number")
        rings = [c for c in of(s, events, CallRecord) if c.caller in numbers]
        assert rings and all(c.international and c.duration_s <= 2 for c in rings)
        assert all(n.startswith("+") for n in numbers)


def test_benign_look_alikes_have_no_targets_and_the_new_tower_is_registered(
    city: tuple[Path, GroundTruth], events: dict[str, Event]
) -> None:
    registry = {c["cell_id"]: c for c in json.loads(cells_path(truth_path(city[0])).read_text())["cells"]}
    benign = [s for s in city[1].scenarios if s.benign]
    assert {s.scenario for s in benign} == {
        "courier_calls",
        "call_centre",
        "payroll",
        "relative_transfer",
        "two_cards",
        "new_cell_tower",
        "sales_calls",
        "two_handsets",
    }
    assert all(s.entities and not any(e.target for e in s.entities) for s in benign)
    for s in scenarios(city[1], "new_cell_tower"):
        (cell,) = values(s, "new_cell")
        assert cell in registry and "commissioned" in registry[cell]
        assert all(o.encryption_level >= 2 for o in of(s, events, CellObservation))


def test_couriers_are_called_back_far_more_often_than_fraud_numbers(
    city: tuple[Path, GroundTruth], events: dict[str, Event]
) -> None:
    def callback_share(s: ScenarioTruth, role: str) -> float:
        numbers = values(s, role)
        calls = of(s, events, CallRecord)
        return sum(c.callee in numbers for c in calls) / max(1, sum(c.caller in numbers for c in calls))

    courier = [callback_share(s, "courier") for s in scenarios(city[1], "courier_calls")]
    fraud = [callback_share(s, "fraud_number") for s in scenarios(city[1], "fraud_call_team")]
    assert min(courier) > 0.15 > 0.06 > max(fraud)


def test_salespeople_cold_call_strangers_from_one_handset_and_cell_each(
    city: tuple[Path, GroundTruth], events: dict[str, Event]
) -> None:
    for s in scenarios(city[1], "sales_calls"):
        sellers = values(s, "sales")
        outbound = [c for c in of(s, events, CallRecord) if c.caller in sellers]
        assert sellers == {c.caller for c in outbound}
        for seller in sellers:
            own = [c for c in outbound if c.caller == seller]
            assert len({c.imei for c in own}) == 1 and len({c.cell_id for c in own}) == 1
            assert len({c.callee for c in own}) == len(own), "nobody twice (the small city has enough people)"
        talked = sorted(c.duration_s for c in outbound if c.duration_s > 10)
        assert talked[len(talked) // 2] > 40, "a listener hears a minute or so of the pitch"


def test_a_sim_moved_between_two_handsets_calls_its_own_circle_from_both(
    city: tuple[Path, GroundTruth], events: dict[str, Event]
) -> None:
    for s in scenarios(city[1], "two_handsets"):
        switchers = values(s, "handset_switcher")
        from_second = [c for c in of(s, events, CallRecord) if c.caller in switchers]
        assert {c.caller for c in from_second} == switchers
        ids = set(s.event_ids)
        everyday = [
            e for e in events.values() if isinstance(e, CallRecord) and e.caller in switchers and e.event_id not in ids
        ]
        both = 0
        for number in switchers:
            second = {c.imei for c in from_second if c.caller == number}
            first = {c.imei for c in everyday if c.caller == number}
            assert len(second) == 1 and len(first) <= 1 and not second & first
            both += bool(first)
        assert both, "someone called from both handsets"
        callbacks = [c for c in of(s, events, CallRecord) if c.callee in switchers]
        assert callbacks, "their circle calls them back"


def test_every_target_shows_in_its_scenarios_events(city: tuple[Path, GroundTruth], events: dict[str, Event]) -> None:
    """A mule no victim paid in the period is no target: a detector cannot flag what the stream never shows."""
    for s in city[1].scenarios:
        shown: set[str] = set()
        for event_id in s.event_ids:
            for value in events[event_id].model_dump().values():
                shown.update(value if isinstance(value, list) else [value] if isinstance(value, str) else [])
        missing = [e.value for e in s.entities if e.target and e.value not in shown]
        assert not missing, f"{s.scenario_id}: targets not in its events"
