"""Events as columns: one ``EventBatch`` per kind, numpy arrays named after the model's fields.

Everyday life and the scenarios produce batches; the writer merges them, orders
them and renders them to JSON lines without building a model per event.
Conventions: string fields are bytes (``S``) arrays, ``b""`` meaning null for an
optional one; times are int64 seconds since the epoch (UTC); list fields hold
their JSON text; ``location`` is an ``(n, 2)`` array of integer micro-degrees.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import orjson

Column = np.ndarray | bytes | int | bool
"""A column, or a constant for every row."""

NORMAL = -1
"""The scenario index of everyday (no scenario) events."""


@dataclass(frozen=True)
class EventBatch:
    kind: str
    time: np.ndarray
    """``event_time`` in int64 seconds since the epoch."""
    cols: dict[str, np.ndarray]
    scenario: np.ndarray
    """Index of the scenario each event belongs to, NORMAL for everyday life."""

    def __len__(self) -> int:
        return len(self.time)

    def take(self, rows: np.ndarray | slice) -> "EventBatch":
        return EventBatch(self.kind, self.time[rows], {k: v[rows] for k, v in self.cols.items()}, self.scenario[rows])

    def tagged(self, scenario: int) -> "EventBatch":
        return replace(self, scenario=np.full(len(self), scenario, dtype=np.int32))

    @staticmethod
    def concat(batches: Sequence["EventBatch"]) -> "EventBatch":
        """One batch of the rows of several batches of the same kind."""
        first = batches[0]
        if any(b.kind != first.kind for b in batches):
            raise ValueError("cannot concatenate batches of different kinds")
        return EventBatch(
            first.kind,
            np.concatenate([b.time for b in batches]),
            {k: np.concatenate([b.cols[k] for b in batches]) for k in first.cols},
            np.concatenate([b.scenario for b in batches]),
        )


def json_lists(rows: Sequence[Sequence[bytes]]) -> np.ndarray:
    """JSON text of string lists (``reported_numbers``, ``link_domains``) as a bytes column."""
    return np.array([orjson.dumps([v.decode() for v in row]) for row in rows], dtype=np.bytes_)


def _batch(kind: str, time: np.ndarray, **cols: Column) -> EventBatch:
    time = np.asarray(time, dtype=np.int64)
    n = len(time)
    full: dict[str, np.ndarray] = {}
    for name, value in cols.items():
        arr = np.asarray(value)
        if arr.ndim == 0:
            arr = np.full(n, arr, dtype=arr.dtype)
        if len(arr) != n:
            raise ValueError(f"{kind}.{name}: {len(arr)} values for {n} events")
        full[name] = arr
    return EventBatch(kind, time, full, np.full(n, NORMAL, dtype=np.int32))


def bank_transfers(
    time: np.ndarray,
    *,
    channel: Column,
    payer_account: Column,
    payer_name: Column,
    payer_id_number: Column,
    payee_account: Column,
    payee_name: Column,
    amount_fen: Column,
    branch_id: Column = b"",
    atm_id: Column = b"",
    payer_phone: Column = b"",
) -> EventBatch:
    return _batch(
        "bank_transfer",
        time,
        channel=channel,
        payer_account=payer_account,
        payer_name=payer_name,
        payer_id_number=payer_id_number,
        payee_account=payee_account,
        payee_name=payee_name,
        amount_fen=np.asarray(amount_fen, dtype=np.int64),
        currency=b"CNY",
        branch_id=branch_id,
        atm_id=atm_id,
        payer_phone=payer_phone,
    )


def card_openings(
    time: np.ndarray, *, bank: Column, id_number: Column, account: Column, branch_id: Column, channel: Column
) -> EventBatch:
    return _batch(
        "card_opening", time, bank=bank, id_number=id_number, account=account, branch_id=branch_id, channel=channel
    )


def sim_registrations(
    time: np.ndarray, *, carrier: Column, id_number: Column, msisdn: Column, real_name_verified: Column, outlet: Column
) -> EventBatch:
    return _batch(
        "sim_registration",
        time,
        carrier=carrier,
        id_number=id_number,
        msisdn=msisdn,
        real_name_verified=np.asarray(real_name_verified, dtype=bool),
        outlet=outlet,
    )


def call_records(
    start: np.ndarray,
    *,
    caller: Column,
    callee: Column,
    duration_s: Column,
    cell_id: Column,
    imei: Column,
    international: Column = False,
) -> EventBatch:
    """Calls by start time; the event time is the end of the call, as in a CDR."""
    start = np.asarray(start, dtype=np.int64)
    duration = np.broadcast_to(np.asarray(duration_s, dtype=np.int64), start.shape)
    return _batch(
        "call_record",
        start + duration,
        caller=caller,
        callee=callee,
        start=start,
        duration_s=duration,
        cell_id=cell_id,
        imei=imei,
        international=np.asarray(international, dtype=bool),
    )


def sms_records(
    time: np.ndarray, *, sender: Column, receiver: Column, cell_id: Column, link_domains: Column = b"[]"
) -> EventBatch:
    return _batch("sms_record", time, sender=sender, receiver=receiver, cell_id=cell_id, link_domains=link_domains)


def cell_observations(
    time: np.ndarray,
    *,
    cell_id: Column,
    lac: Column,
    operator: Column,
    signal_dbm: Column,
    encryption_level: Column,
    handset_imei: Column,
    location: np.ndarray,
) -> EventBatch:
    return _batch(
        "cell_observation",
        time,
        cell_id=cell_id,
        lac=np.asarray(lac, dtype=np.int64),
        operator=operator,
        signal_dbm=np.asarray(signal_dbm, dtype=np.int64),
        encryption_level=np.asarray(encryption_level, dtype=np.int64),
        handset_imei=handset_imei,
        location=np.asarray(location, dtype=np.int64),
    )


def fraud_reports(
    time: np.ndarray,
    *,
    victim_id_number: Column,
    victim_phone: Column,
    reported_numbers: Column,
    payee_accounts: Column,
    amount_fen: Column,
    fraud_time: Column,
    source: Column,
    victim_account: Column = b"",
) -> EventBatch:
    return _batch(
        "fraud_report",
        time,
        victim_id_number=victim_id_number,
        victim_phone=victim_phone,
        reported_numbers=reported_numbers,
        payee_accounts=payee_accounts,
        amount_fen=np.asarray(amount_fen, dtype=np.int64),
        fraud_time=np.asarray(fraud_time, dtype=np.int64),
        source=source,
        victim_account=victim_account,
    )
