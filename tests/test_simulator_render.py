"""The vectorised renderer writes exactly what pydantic writes, edge values included."""

import numpy as np
import pytest

from antifraud.events.codec import decode_any, encode
from antifraud.events.models import EVENT_MODELS, Event
from simulators.batch import (
    EventBatch,
    bank_transfers,
    call_records,
    card_openings,
    cell_observations,
    fraud_reports,
    json_lists,
    sim_registrations,
    sms_records,
)
from simulators.render import SCHEMAS, render

ID = b"320585199001010013"
T = np.array([1772438400, 1772438461 + 86400 * 3, 1798761599], dtype=np.int64)  # the last is 2026-12-31T23:59:59Z


def edge_batches() -> list[EventBatch]:
    three = np.ones(3, dtype=bool)
    return [
        bank_transfers(
            T,
            channel=np.array([b"counter", b"online", b"atm"]),
            payer_account=b"6222021234567890123",
            payer_name="王伟".encode(),
            payer_id_number=ID,
            payee_account=b"12345678",
            payee_name="太仓市王伟超市".encode(),
            amount_fen=np.array([1, 1234567, 10**12]),
            branch_id=np.array([b"br-icbc-001", b"", b""]),
            atm_id=np.array([b"", b"", b"atm-boc-0001"]),
        ),
        call_records(
            T - 100,
            caller=b"13800000000",
            callee=np.array([b"95588", b"+88212345678", b"0512530000001"]),
            duration_s=np.array([0, 9, 100]),
            cell_id=b"460-00-20000-12345",
            imei=b"867422052195938",
            international=np.array([False, True, False]),
        ),
        cell_observations(
            T,
            cell_id=b"460-00-20000-1",
            lac=np.array([0, 9, 65535]),
            operator=b"cmcc",
            signal_dbm=np.array([-150, -9, 0]),
            encryption_level=np.array([0, 2, 3]),
            handset_imei=b"867422052195938",
            location=np.array([[31450000, 121000000], [31450123, 121100001], [90000000, 180000000]]),
        ),
        fraud_reports(
            T,
            victim_id_number=ID,
            victim_phone=b"13800000000",
            reported_numbers=json_lists([[b"13800000001"], [], [b"+2161234", b"95588"]]),
            payee_accounts=json_lists([[b"12345678", b"87654321"], [], []]),
            amount_fen=np.array([1, 2, 3]),
            fraud_time=T - 5,
            source=np.array([b"110", b"96110", b"counter"]),
        ),
        sms_records(
            T,
            sender=b"95588",
            receiver=b"13800000000",
            cell_id=b"x",
            link_domains=json_lists([[b"icbc.com.cn"], [], [b"1cbc.com.cn", b"ccb-vip.top"]]),
        ),
        sim_registrations(
            T,
            carrier=b"cmcc",
            id_number=ID,
            msisdn=b"13800000000",
            real_name_verified=three & np.array([True, False, True]),
            outlet=b"out-cmcc-001",
        ),
        card_openings(
            T,
            bank=b"icbc",
            id_number=ID,
            account=b"6222021234567890123",
            branch_id=b"br-icbc-001",
            channel=np.array([b"counter", b"mobile", b"online"]),
        ),
    ]


def test_schemas_list_every_kind_with_the_model_fields_in_order() -> None:
    assert set(SCHEMAS) == set(EVENT_MODELS)
    common = ["event_id", "event_time", "schema_version", "kind"]
    for kind, model in EVENT_MODELS.items():
        assert common + [name for name, _ in SCHEMAS[kind]] == list(model.model_fields), kind


@pytest.mark.parametrize("batch", edge_batches(), ids=lambda b: b.kind)
def test_rendered_lines_equal_pydantic_encoding(batch: EventBatch) -> None:
    ids = np.array([b"e1-0000000001", b"x", b"e99-1234567890"])
    lines = render(batch, ids).split(b"\n")
    assert lines[-1] == b"" and len(lines) == 4
    for line, event_id in zip(lines, ids.tolist()):
        event: Event = decode_any(line)
        assert event.event_id == event_id.decode()
        assert encode(event) == line


def test_times_and_coordinates_are_written_exactly() -> None:
    obs = render(edge_batches()[2], np.array([b"a", b"b", b"c"])).decode()
    assert '"location":{"lat":31.45,"lon":121.0}' in obs and '"lat":31.450123,"lon":121.100001' in obs
    assert '"event_time":"2026-12-31T23:59:59Z"' in obs and '"signal_dbm":-150' in obs
