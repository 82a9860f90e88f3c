"""A small built-in stream for ``antifraud demo``: ordinary life, one fraud caller,
a busy but honest caller, and three broken records.

Deterministic for a given seed and base time. The simulator (``simulators/``)
replaces this with a whole synthetic city and its ground truth.
"""

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from antifraud.events.models import (
    BankTransfer,
    CallRecord,
    CardOpening,
    CellObservation,
    Event,
    FraudReport,
    GeoPoint,
    SimRegistration,
    SmsRecord,
)
from antifraud.events.types import id_check_char

FRAUD_CALLER = "17012340001"
BUSY_HONEST_CALLER = "13900008888"
FRAUD_CALLEES = 35
BUSY_CALLEES = 12


@dataclass(frozen=True)
class Person:
    name: str
    id_number: str
    phone: str
    account: str
    imei: str


@dataclass(frozen=True)
class BrokenRecord:
    """Bytes that must end on the dead-letter topic, and why."""

    topic_kind: str
    value: bytes
    expected_reason: str


def id_number(region: str, birth: str, seq: int) -> str:
    first17 = f"{region}{birth}{seq:03d}"
    return first17 + id_check_char(first17)


def people(rng: random.Random, count: int) -> list[Person]:
    surnames = "王李张刘陈杨黄赵吴周"
    return [
        Person(
            name=rng.choice(surnames) + rng.choice("伟芳娜敏静丽强磊军洋"),
            id_number=id_number("320585", f"19{rng.randint(50, 99)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}", i),
            phone=f"13{rng.randint(0, 9)}{rng.randint(0, 99999999):08d}",
            account=f"6222{rng.randint(0, 10**12 - 1):012d}",
            imei=f"35{rng.randint(0, 10**13 - 1):013d}",
        )
        for i in range(count)
    ]


def events(base: datetime, seed: int = 7) -> Iterator[Event]:
    """The valid events, in event-time order."""
    rng = random.Random(seed)
    town = people(rng, 60)
    out: list[Event] = []

    def call(n: int, caller: str, callee: str, at: datetime, duration: int, imei: str) -> CallRecord:
        return CallRecord(
            event_id=f"call-{n:05d}", event_time=at + timedelta(seconds=duration), caller=caller, callee=callee,
            start=at, duration_s=duration, cell_id=f"cell-{rng.randint(1, 9)}", imei=imei,
        )

    n = 0
    for person in town:  # everyday calls within a small circle
        for _ in range(rng.randint(2, 6)):
            friend = rng.choice(town)
            if friend is not person:
                n += 1
                out.append(call(n, person.phone, friend.phone, base + timedelta(seconds=rng.randint(0, 3000)),
                                int(rng.paretovariate(1.3) * 30), person.imei))
    fraud_imei = "86000000000001"
    for i in range(FRAUD_CALLEES):  # cold calls to strangers, short, 15 s apart
        n += 1
        out.append(call(n, FRAUD_CALLER, f"1{rng.randint(3, 8)}{rng.randint(0, 10**9 - 1):09d}",
                        base + timedelta(seconds=600 + 15 * i), rng.randint(3, 40), fraud_imei))
    courier = town[0]
    for i in range(BUSY_CALLEES):  # a courier calling customers: busy, but under the limit
        n += 1
        out.append(call(n, BUSY_HONEST_CALLER, town[i + 1].phone, base + timedelta(seconds=900 + 40 * i), 25, courier.imei))

    victim, mule = town[5], town[6]
    out += [
        BankTransfer(event_id="tx-00001", event_time=base + timedelta(seconds=1300), channel="atm",
                     payer_account=victim.account, payer_name=victim.name, payer_id_number=victim.id_number,
                     payee_account=mule.account, payee_name=mule.name, amount_fen=4_980_000, atm_id="atm-017"),
        BankTransfer(event_id="tx-00002", event_time=base + timedelta(seconds=1500), channel="counter",
                     payer_account=town[7].account, payer_name=town[7].name, payer_id_number=town[7].id_number,
                     payee_account=town[8].account, payee_name=town[8].name, amount_fen=120_000, branch_id="br-loudong"),
        CardOpening(event_id="card-00001", event_time=base + timedelta(seconds=200), bank="icbc",
                    id_number=town[9].id_number, account=town[9].account, branch_id="br-loudong", channel="counter"),
        SimRegistration(event_id="sim-00001", event_time=base + timedelta(seconds=250), carrier="cmcc",
                        id_number=town[10].id_number, msisdn=town[10].phone, real_name_verified=True, outlet="outlet-3"),
        SmsRecord(event_id="sms-00001", event_time=base + timedelta(seconds=700), sender=FRAUD_CALLER,
                  receiver=victim.phone, cell_id="cell-4", link_domains=["icbc-verify.example"]),
        CellObservation(event_id="cellobs-00001", event_time=base + timedelta(seconds=720), cell_id="cell-4", lac=4101,
                        operator="cmcc", signal_dbm=-71, encryption_level=2, handset_imei=victim.imei,
                        location=GeoPoint(lat=31.457, lon=121.101)),
        FraudReport(event_id="report-00001", event_time=base + timedelta(seconds=2900), victim_id_number=victim.id_number,
                    victim_phone=victim.phone, reported_numbers=[FRAUD_CALLER], payee_accounts=[mule.account],
                    amount_fen=4_980_000, fraud_time=base + timedelta(seconds=1300), source="96110"),
    ]
    return iter(sorted(out, key=lambda e: (e.event_time, e.event_id)))


def broken_records() -> list[BrokenRecord]:
    good_id = id_number("320585", "19800101", 1)
    bad_id = good_id[:17] + ("1" if good_id[17] == "0" else "0")
    return [
        BrokenRecord("call_record", b'{"event_id": "call-x", "caller": "1380', "malformed_json"),
        BrokenRecord(
            "card_opening",
            (f'{{"event_id": "card-x", "event_time": "2026-01-01T00:00:00Z", "bank": "icbc", "id_number": "{bad_id}",'
             ' "account": "62220000000001", "branch_id": "br-1", "channel": "counter"}').encode(),
            "schema_violation",
        ),
        BrokenRecord(
            "bank_transfer",
            b'{"event_id": "tx-x", "event_time": "2026-01-01T00:00:00Z", "channel": "online",'
            b' "payer_account": "62220000000001", "payer_name": "A", "payer_id_number": "11010519491231002X",'
            b' "payee_account": "62220000000002", "payee_name": "B", "amount_fen": 12.5}',
            "schema_violation",
        ),
    ]
