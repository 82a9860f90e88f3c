"""Event models and the codec: valid records, rejections and what a rejection may say."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from antifraud.events.codec import InvalidEvent, decode, encode
from antifraud.events.models import (
    EVENT_MODELS,
    BankTransfer,
    CallRecord,
    CardOpening,
    CellObservation,
    Event,
    FraudReport,
    SimRegistration,
    SmsRecord,
)
from antifraud.events.types import make_id_number as id_number

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
VALID_ID = id_number("320585", "19800101", 1)
BAD_ID = VALID_ID[:17] + ("1" if VALID_ID[17] == "0" else "0")
X_ID = "11010519491231002X"  # valid, check character X
OMIT = object()
"""Marker for ``record``: leave this field out."""

VALID: dict[type[Event], dict[str, object]] = {
    BankTransfer: {
        "event_id": "tx-1",
        "event_time": "2026-03-01T08:00:00Z",
        "kind": "bank_transfer",
        "channel": "online",
        "payer_account": "6222000011112222",
        "payer_name": "张伟",
        "payer_id_number": VALID_ID,
        "payee_account": "6222000033334444",
        "payee_name": "李娜",
        "amount_fen": 120_000,
    },
    CardOpening: {
        "event_id": "card-1",
        "event_time": "2026-03-01T08:00:00Z",
        "kind": "card_opening",
        "bank": "icbc",
        "id_number": VALID_ID,
        "account": "6222000055556666",
        "branch_id": "br-1",
        "channel": "counter",
    },
    SimRegistration: {
        "event_id": "sim-1",
        "event_time": "2026-03-01T08:00:00Z",
        "kind": "sim_registration",
        "carrier": "cmcc",
        "id_number": X_ID,
        "msisdn": "13812345678",
        "real_name_verified": True,
        "outlet": "outlet-3",
    },
    CallRecord: {
        "event_id": "call-1",
        "event_time": "2026-03-01T08:00:00Z",
        "kind": "call_record",
        "caller": "13812345678",
        "callee": "+8613987654321",
        "start": "2026-03-01T07:59:00Z",
        "duration_s": 60,
        "cell_id": "cell-4",
        "imei": "35123456789012",
        "international": False,
    },
    SmsRecord: {
        "event_id": "sms-1",
        "event_time": "2026-03-01T08:00:00Z",
        "kind": "sms_record",
        "sender": "10690000",
        "receiver": "13812345678",
        "cell_id": "cell-4",
        "link_domains": ["icbc-verify.example"],
    },
    CellObservation: {
        "event_id": "cellobs-1",
        "event_time": "2026-03-01T08:00:00Z",
        "kind": "cell_observation",
        "cell_id": "cell-4",
        "lac": 4101,
        "operator": "cmcc",
        "signal_dbm": -71,
        "encryption_level": 2,
        "handset_imei": "351234567890123",
        "location": {"lat": 31.457, "lon": 121.101},
    },
    FraudReport: {
        "event_id": "report-1",
        "event_time": "2026-03-01T08:00:00Z",
        "kind": "fraud_report",
        "victim_id_number": X_ID,
        "victim_phone": "13812345678",
        "reported_numbers": ["17012340001"],
        "payee_accounts": ["6222000033334444"],
        "amount_fen": 4_980_000,
        "fraud_time": "2026-03-01T07:00:00Z",
        "source": "96110",
    },
}

KEY_FIELDS: dict[type[Event], str] = {
    BankTransfer: "payer_account",
    CardOpening: "id_number",
    SimRegistration: "id_number",
    CallRecord: "caller",
    SmsRecord: "sender",
    CellObservation: "cell_id",
    FraudReport: "victim_id_number",
}

ALL_MODELS = pytest.mark.parametrize("model", list(VALID), ids=lambda m: m.__name__)


def record(model: type[Event], **changes: object) -> bytes:
    """The valid record of ``model`` as JSON bytes, with ``changes`` applied (``OMIT`` drops a field)."""
    fields = {**VALID[model], **changes}
    return json.dumps({name: value for name, value in fields.items() if value is not OMIT}).encode()


def rejection(model: type[Event], raw: bytes | None) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        decode(model, raw)
    return caught.value


def test_every_kind_has_a_model() -> None:
    assert EVENT_MODELS == {VALID[m]["kind"]: m for m in VALID}


@ALL_MODELS
def test_valid_record_decodes_and_round_trips(model: type[Event]) -> None:
    event = decode(model, record(model))
    assert type(event) is model
    assert event.event_id == VALID[model]["event_id"]
    again = decode(model, encode(event))
    assert again == event
    assert encode(again) == encode(event)


@ALL_MODELS
def test_partition_key_is_the_key_field(model: type[Event]) -> None:
    assert model.key_field == KEY_FIELDS[model]
    assert decode(model, record(model)).partition_key() == VALID[model][KEY_FIELDS[model]]


@ALL_MODELS
def test_event_time_is_normalised_to_utc(model: type[Event]) -> None:
    event = decode(model, record(model, event_time="2026-03-01T16:00:00+08:00"))
    assert event.event_time == T0
    assert event.event_time.utcoffset() == timedelta(0)
    assert b'"event_time":"2026-03-01T08:00:00Z"' in encode(event)


def test_call_start_is_normalised_to_utc() -> None:
    call = decode(CallRecord, record(CallRecord, start="2026-03-01T15:59:00+08:00"))
    assert call.start == T0 - timedelta(minutes=1)
    assert call.start.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "changes",
    [
        {"channel": "counter", "branch_id": "br-1"},
        {"channel": "atm", "atm_id": "atm-017"},
        {"channel": "mobile"},
        {"payer_id_number": X_ID},
    ],
    ids=["counter_with_branch", "atm_with_atm", "mobile_without_place", "id_with_check_X"],
)
def test_bank_transfer_variants_accepted(changes: dict[str, object]) -> None:
    transfer = decode(BankTransfer, record(BankTransfer, **changes))
    assert transfer.model_dump(include=set(changes)) == changes


@pytest.mark.parametrize("raw", [None, b""], ids=["none", "zero_bytes"])
def test_empty_record(raw: bytes | None) -> None:
    assert rejection(CallRecord, raw).kind == "empty"


@pytest.mark.parametrize("raw", [b'{"event_id": "call-x", "caller": "1380', b"not json", b"{,}"])
def test_malformed_json(raw: bytes) -> None:
    assert rejection(CallRecord, raw).kind == "malformed_json"


@pytest.mark.parametrize(
    ("model", "changes", "field"),
    [
        pytest.param(CardOpening, {"id_number": BAD_ID}, "id_number", id="bad_id_check_digit"),
        pytest.param(BankTransfer, {"payer_id_number": BAD_ID}, "payer_id_number", id="bad_payer_id_check_digit"),
        pytest.param(FraudReport, {"victim_id_number": BAD_ID}, "victim_id_number", id="bad_victim_id_check_digit"),
        pytest.param(CardOpening, {"id_number": X_ID.lower()}, "id_number", id="id_lowercase_x"),
        pytest.param(CallRecord, {"event_time": "2026-03-01T08:00:00"}, "event_time", id="naive_event_time"),
        pytest.param(CallRecord, {"start": "2026-03-01T07:59:00"}, "start", id="naive_start"),
        pytest.param(BankTransfer, {"event_time": "0001-01-01T00:00:00+08:00"}, "event_time", id="no_utc_date"),
        pytest.param(BankTransfer, {"amount_fen": 12.5}, "amount_fen", id="float_amount"),
        pytest.param(BankTransfer, {"amount_fen": True}, "amount_fen", id="boolean_amount"),
        pytest.param(BankTransfer, {"amount_fen": "1200"}, "amount_fen", id="string_amount"),
        pytest.param(BankTransfer, {"amount_fen": -100}, "amount_fen", id="negative_amount"),
        pytest.param(BankTransfer, {"amount_fen": 0}, "amount_fen", id="zero_amount"),
        pytest.param(FraudReport, {"amount_fen": 0}, "amount_fen", id="zero_reported_amount"),
        pytest.param(BankTransfer, {"channel": "counter"}, "branch_id", id="counter_without_branch"),
        pytest.param(BankTransfer, {"channel": "atm"}, "atm_id", id="atm_without_atm_id"),
        pytest.param(SmsRecord, {"nickname": "x"}, "nickname", id="extra_field"),
        pytest.param(CallRecord, {"kind": "sms_record"}, "kind", id="wrong_kind"),
        pytest.param(
            FraudReport, {"fraud_time": "2026-03-01T08:00:01Z"}, "fraud_time", id="fraud_time_after_event_time"
        ),
        pytest.param(CallRecord, {"caller": "1381234567a"}, "caller", id="caller_with_letter"),
        pytest.param(SimRegistration, {"msisdn": "138-1234-5678"}, "msisdn", id="msisdn_with_dashes"),
        pytest.param(
            FraudReport, {"reported_numbers": ["17012340001", "call-me"]}, "reported_numbers", id="list_phone"
        ),
        pytest.param(CallRecord, {"callee": OMIT}, "callee", id="missing_field"),
        pytest.param(CallRecord, {"event_id": "cdr\x1f7"}, "event_id", id="event_id_with_a_control_character"),
    ],
)
def test_schema_violation_names_the_field(model: type[Event], changes: dict[str, object], field: str) -> None:
    error = rejection(model, record(model, **changes))
    assert error.kind == "schema_violation"
    assert field in error.detail


def test_a_whole_amount_written_as_a_float_is_that_amount() -> None:
    """JSON Schema counts 1200.0 as an integer, and a double holds every amount up to MAX_FEN exactly."""
    assert decode(BankTransfer, record(BankTransfer, amount_fen=1200.0)).amount_fen == 1200


def test_fraud_time_equal_to_event_time_is_accepted() -> None:
    report = decode(FraudReport, record(FraudReport, fraud_time="2026-03-01T16:00:00+08:00"))
    assert report.fraud_time == report.event_time == T0


def test_detail_lists_at_most_three_errors_and_counts_the_rest() -> None:
    error = rejection(CallRecord, b'{"kind": "call_record"}')
    assert error.detail.count("Field required") == 3
    assert error.detail.endswith("more")


@pytest.mark.parametrize(
    ("model", "changes", "secret"),
    [
        pytest.param(CardOpening, {"id_number": BAD_ID}, BAD_ID, id="bad_id_number"),
        pytest.param(FraudReport, {"victim_id_number": BAD_ID}, BAD_ID, id="bad_victim_id_number"),
        pytest.param(CallRecord, {"caller": "1381234567a"}, "1381234567a", id="phone_with_letter"),
        pytest.param(BankTransfer, {"payee_account": "6222-0000-3333"}, "6222-0000-3333", id="account_with_dashes"),
        pytest.param(SmsRecord, {"nickname": "Wang Wei 13812345678"}, "13812345678", id="extra_field_value"),
        pytest.param(BankTransfer, {"amount_fen": 4980000.5}, "4980000", id="float_amount"),
    ],
)
def test_detail_does_not_carry_the_offending_value(model: type[Event], changes: dict[str, object], secret: str) -> None:
    error = rejection(model, record(model, **changes))
    assert error.kind == "schema_violation"
    assert secret not in error.detail
    assert secret not in str(error)
