"""Typed events, one model per kind, as they arrive on the input topics.

Every event carries ``event_id`` (unique, used as evidence in alerts),
``event_time`` (when it happened, not when it arrived) and ``schema_version``.
``key_field`` names the attribute the event's topic is partitioned on, so all
events of one entity reach the same worker and the same state.
"""

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from antifraud.events.types import (
    PRINTABLE,
    AccountNo,
    Code,
    Fen,
    IdNumber,
    Imei,
    Msisdn,
    PersonName,
    UtcTime,
)

SCHEMA_VERSION: Literal[1] = 1


class Event(BaseModel):
    """Fields every event has."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_field: ClassVar[str]

    event_id: Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=PRINTABLE)]
    """Printable: stores join an event id with other fields by control characters (``antifraud/state/kept.py``)."""
    event_time: UtcTime
    schema_version: Literal[1] = SCHEMA_VERSION

    def partition_key(self) -> str:
        """The entity this event is partitioned by (see ``key_field``)."""
        return str(getattr(self, self.key_field))


def _needs(channel: str, field: str) -> dict[str, Any]:
    """JSON Schema: a transfer through ``channel`` names ``field`` (a rule of ``_place_matches_channel``)."""
    return {
        "if": {"properties": {"channel": {"const": channel}}, "required": ["channel"]},
        "then": {"properties": {field: {"type": "string"}}, "required": [field]},
    }


class BankTransfer(Event):
    """A transfer from a payer account to a payee account."""

    model_config = ConfigDict(json_schema_extra={"allOf": [_needs("counter", "branch_id"), _needs("atm", "atm_id")]})
    key_field: ClassVar[str] = "payer_account"
    kind: Literal["bank_transfer"] = "bank_transfer"
    channel: Literal["counter", "atm", "online", "mobile"]
    payer_account: AccountNo
    payer_name: PersonName
    payer_id_number: IdNumber
    payee_account: AccountNo
    payee_name: PersonName
    amount_fen: Fen
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "CNY"
    branch_id: Code | None = None
    atm_id: Code | None = None
    payer_phone: Msisdn | None = None
    """The payer's mobile as the bank knows it: joins the transfer to calls the payer received."""

    @model_validator(mode="after")
    def _place_matches_channel(self) -> "BankTransfer":
        # A counter warning must name its branch; an ATM hold must name its ATM.
        if self.channel == "counter" and self.branch_id is None:
            raise PydanticCustomError("counter_needs_branch", "a counter transfer needs branch_id")
        if self.channel == "atm" and self.atm_id is None:
            raise PydanticCustomError("atm_needs_atm", "an ATM transfer needs atm_id")
        return self


class CardOpening(Event):
    """A bank account or card opened for a person."""

    key_field: ClassVar[str] = "id_number"
    kind: Literal["card_opening"] = "card_opening"
    bank: Code
    id_number: IdNumber
    account: AccountNo
    branch_id: Code
    channel: Literal["counter", "online", "mobile"]


class SimRegistration(Event):
    """A SIM card registered to a person at a carrier outlet."""

    key_field: ClassVar[str] = "id_number"
    kind: Literal["sim_registration"] = "sim_registration"
    carrier: Code
    id_number: IdNumber
    msisdn: Msisdn
    real_name_verified: bool
    outlet: Code


class CallRecord(Event):
    """A voice call detail record; ``event_time`` is when the call ended."""

    key_field: ClassVar[str] = "caller"
    kind: Literal["call_record"] = "call_record"
    caller: Msisdn
    callee: Msisdn
    start: UtcTime
    duration_s: Annotated[int, Field(strict=True, ge=0)]
    cell_id: Code
    imei: Imei
    international: bool = False


class SmsRecord(Event):
    """A text message; ``link_domains`` are the host names of links it carries."""

    key_field: ClassVar[str] = "sender"
    kind: Literal["sms_record"] = "sms_record"
    sender: Msisdn
    receiver: Msisdn
    cell_id: Code
    link_domains: list[Annotated[str, StringConstraints(min_length=1, max_length=253)]] = []


class GeoPoint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]


class CellObservation(Event):
    """A handset seeing (or attaching to) a cell, as reported by the network.

    ``encryption_level``: 0 none (A5/0, EEA0), 1 weak (A5/1, A5/2), 2 standard
    (A5/3, EEA1/2), 3 strong (EEA3 and better).
    """

    key_field: ClassVar[str] = "cell_id"
    kind: Literal["cell_observation"] = "cell_observation"
    cell_id: Code
    lac: Annotated[int, Field(strict=True, ge=0, le=65535)]
    operator: Code
    signal_dbm: Annotated[int, Field(strict=True, ge=-150, le=0)]
    encryption_level: Annotated[int, Field(strict=True, ge=0, le=3)]
    handset_imei: Imei
    location: GeoPoint


class FraudReport(Event):
    """A victim's report to 110, 96110 or at a bank counter."""

    key_field: ClassVar[str] = "victim_id_number"
    kind: Literal["fraud_report"] = "fraud_report"
    victim_id_number: IdNumber
    victim_phone: Msisdn | None = None
    reported_numbers: list[Msisdn] = []
    payee_accounts: list[AccountNo] = []
    amount_fen: Fen | None = None
    fraud_time: UtcTime
    source: Literal["110", "96110", "counter"]
    victim_account: AccountNo | None = None
    """The account the victim paid from, when the report names it: the money is followed from it, from
    the victim's transfers around ``fraud_time`` (``[holds.trail] report_margin_minutes`` either side)."""

    @model_validator(mode="after")
    def _fraud_before_report(self) -> "FraudReport":
        if self.fraud_time > self.event_time:
            raise PydanticCustomError("fraud_time_after_report", "fraud_time is after the report's event_time")
        return self


AnyEvent = Annotated[
    BankTransfer | CardOpening | SimRegistration | CallRecord | SmsRecord | CellObservation | FraudReport,
    Field(discriminator="kind"),
]
"""Any event, told apart by its ``kind`` (a mixed stream file, a replay)."""

EVENT_MODELS: dict[str, type[Event]] = {
    m.model_fields["kind"].default: m
    for m in (BankTransfer, CardOpening, SimRegistration, CallRecord, SmsRecord, CellObservation, FraudReport)
}
"""Event kind (the ``kind`` field) to its model."""
