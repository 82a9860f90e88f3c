"""Columns to JSON lines, byte for byte what ``antifraud.events.codec.encode`` writes.

Pydantic's compact JSON: fields in model order, no spaces, UTF-8 text, times as
``YYYY-MM-DDTHH:MM:SSZ``, floats in shortest form. Each kind's line is a
template of literals and encoded columns assembled as one ``uint8`` matrix
(NUL-padded) and squeezed, so the cost per event is a few numpy passes.
"""

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from functools import cache

import numpy as np

from antifraud.events.models import EVENT_MODELS
from simulators.batch import EventBatch
from simulators.text import PAD, as_matrix, digits, squeeze, width_of

Encoder = Callable[[np.ndarray], np.ndarray]
"""A column to an ``(n, width)`` matrix of its JSON value's bytes, NUL-padded."""

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def string(col: np.ndarray) -> np.ndarray:
    """A string's characters; its quotes are part of the template."""
    return as_matrix(col)


def raw(col: np.ndarray) -> np.ndarray:
    """Text that is already JSON (a list)."""
    return as_matrix(col)


def optional_string(col: np.ndarray) -> np.ndarray:
    """A quoted string, or ``null`` for ``b""``."""
    text = as_matrix(col)
    n, w = text.shape
    out = np.zeros((n, max(w + 2, 4)), dtype=np.uint8)
    out[:, 0] = ord('"')
    out[:, 1 : w + 1] = text
    out[:, w + 1] = ord('"')
    null = col == b""
    out[null] = PAD
    out[null, :4] = np.frombuffer(b"null", dtype=np.uint8)
    return out


def integer(col: np.ndarray) -> np.ndarray:
    """Decimal integers, no leading zeros, a minus sign when negative.

    The sign column is there only when a value is negative: every run of padding
    inside a line costs the final squeeze a copy.
    """
    values = np.asarray(col, dtype=np.int64)
    magnitude = np.abs(values)
    width = width_of(magnitude)
    out = digits(magnitude, width)
    leading = magnitude[:, None] < 10 ** np.arange(width - 1, 0, -1, dtype=np.int64)
    out[:, : width - 1][leading] = PAD
    if not (values < 0).any():
        return out
    return np.concatenate([np.where(values < 0, ord("-"), PAD).astype(np.uint8)[:, None], out], axis=1)


_BOOLS = as_matrix(np.array([b"false", b"true"]))


def boolean(col: np.ndarray) -> np.ndarray:
    return _BOOLS[col.astype(np.int64)]


def _words(table: np.ndarray) -> np.ndarray:
    """An ``(n, 8)`` ASCII table as one 64-bit word per row: a look-up is then one gather."""
    return np.ascontiguousarray(table, dtype=np.uint8).view(np.uint64).ravel()


@cache
def _clock() -> np.ndarray:
    """``HH:MM:SS`` of every second of a day."""
    hour, rest = np.divmod(np.arange(86400), 3600)
    minute, second = np.divmod(rest, 60)
    colon = np.full((86400, 1), ord(":"), dtype=np.uint8)
    return _words(np.concatenate([digits(hour, 2), colon, digits(minute, 2), colon, digits(second, 2)], axis=1))


def _shortest(values: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded digits with the trailing zeros padded out, one digit kept (0 -> ``0``)."""
    out = digits(values, width)
    kept = width - sum(values % 10**k == 0 for k in range(1, width))
    out[np.arange(width) >= kept[:, None]] = PAD
    return out


@cache
def _fractions() -> np.ndarray:
    """``.dddddd`` of every micro-degree fraction, trailing zeros dropped (one digit kept), NUL-padded to 8.

    Put together from three-digit halves (a million rows at a cost of a thousand): the
    high half's digits with the low half's shortest form, or the high half's shortest
    form when the low half is ``000``, as in ``121.0`` and ``31.45``.
    """
    half = np.arange(1000)
    point = np.full((1000, 1), ord("."), dtype=np.uint8)
    pad = np.zeros((1000, 4), dtype=np.uint8)
    high = _words(np.concatenate([point, digits(half, 3), pad], axis=1))
    low = _words(np.concatenate([pad, _shortest(half, 3), pad[:, :1]], axis=1))
    table = high[:, None] | low[None, :]  # the halves' bytes do not overlap
    table[:, 0] = _words(np.concatenate([point, _shortest(half, 3), pad], axis=1))
    return table.ravel()


def _as_bytes(words: np.ndarray) -> np.ndarray:
    return words.view(np.uint8).reshape(len(words), 8)


def timestamp(col: np.ndarray) -> np.ndarray:
    """``YYYY-MM-DDTHH:MM:SSZ`` of int64 epoch seconds (whole seconds, UTC)."""
    seconds = np.asarray(col, dtype=np.int64)
    if len(seconds) == 0:
        return np.zeros((0, 20), dtype=np.uint8)
    day, second = np.divmod(seconds, 86400)
    first = int(day.min())
    dates = [
        (_EPOCH + timedelta(days=first + i)).strftime("%Y-%m-%dT").encode() for i in range(int(day.max()) - first + 1)
    ]
    out = np.empty((len(seconds), 20), dtype=np.uint8)
    out[:, :11] = as_matrix(np.array(dates, dtype="S11"))[day - first]
    out[:, 11:19] = _as_bytes(_clock()[second])
    out[:, 19] = ord("Z")
    return out


def _micro_degrees(values: np.ndarray) -> np.ndarray:
    """Shortest float text of non-negative micro-degree integers: ``31.45``, ``121.0``, ``31.450123``."""
    if (values < 0).any():
        raise ValueError("coordinates are rendered for the northern and eastern hemispheres only")
    whole, frac = np.divmod(values, 1_000_000)
    fraction = _as_bytes(_fractions()[frac])[:, :7]  # the 8th byte is always padding
    return np.concatenate([integer(whole), fraction], axis=1)


def location(col: np.ndarray) -> np.ndarray:
    """``{"lat":..,"lon":..}`` of an ``(n, 2)`` micro-degree array."""
    n = len(col)
    return np.concatenate(
        [
            _literal(b'{"lat":', n),
            _micro_degrees(col[:, 0]),
            _literal(b',"lon":', n),
            _micro_degrees(col[:, 1]),
            _literal(b"}", n),
        ],
        axis=1,
    )


def _literal(text: bytes, n: int) -> np.ndarray:
    return np.broadcast_to(np.frombuffer(text, dtype=np.uint8), (n, len(text)))


SCHEMAS: dict[str, tuple[tuple[str, Encoder], ...]] = {
    "bank_transfer": (
        ("channel", string),
        ("payer_account", string),
        ("payer_name", string),
        ("payer_id_number", string),
        ("payee_account", string),
        ("payee_name", string),
        ("amount_fen", integer),
        ("currency", string),
        ("branch_id", optional_string),
        ("atm_id", optional_string),
        ("payer_phone", optional_string),
    ),
    "card_opening": (
        ("bank", string),
        ("id_number", string),
        ("account", string),
        ("branch_id", string),
        ("channel", string),
    ),
    "sim_registration": (
        ("carrier", string),
        ("id_number", string),
        ("msisdn", string),
        ("real_name_verified", boolean),
        ("outlet", string),
    ),
    "call_record": (
        ("caller", string),
        ("callee", string),
        ("start", timestamp),
        ("duration_s", integer),
        ("cell_id", string),
        ("imei", string),
        ("international", boolean),
    ),
    "sms_record": (("sender", string), ("receiver", string), ("cell_id", string), ("link_domains", raw)),
    "cell_observation": (
        ("cell_id", string),
        ("lac", integer),
        ("operator", string),
        ("signal_dbm", integer),
        ("encryption_level", integer),
        ("handset_imei", string),
        ("location", location),
    ),
    "fraud_report": (
        ("victim_id_number", string),
        ("victim_phone", string),
        ("reported_numbers", raw),
        ("payee_accounts", raw),
        ("amount_fen", integer),
        ("fraud_time", timestamp),
        ("source", string),
        ("victim_account", optional_string),
    ),
}
"""Each kind's fields after ``kind``, in model order, with how their values are written."""

_QUOTED = frozenset({string, timestamp})


def _template(kind: str) -> list[tuple[bytes, Encoder | None, str]]:
    """(literal before, encoder, column) pieces of a kind's line; the last piece closes the line."""
    pieces: list[tuple[bytes, Encoder | None, str]] = []
    before = f',"schema_version":1,"kind":"{kind}"'
    for name, encoder in SCHEMAS[kind]:
        quote = '"' if encoder in _QUOTED else ""
        pieces.append(((before + f',"{name}":{quote}').encode(), encoder, name))
        before = quote
    pieces.append(((before + "}\n").encode(), None, ""))
    return pieces


_TEMPLATES = {kind: _template(kind) for kind in SCHEMAS}

KEY_FIELD: dict[str, str] = {kind: EVENT_MODELS[kind].key_field for kind in SCHEMAS}
"""The column each kind's topic is keyed by."""


def rows(batch: EventBatch, event_ids: np.ndarray) -> np.ndarray:
    """The batch's lines as a NUL-padded matrix, one row each (newline included); ``event_ids``
    is an ASCII matrix too, so that numbering needs no strings.

    The literals are laid out once in a template row that fills the matrix; only the
    encoded columns are then copied in (a narrow column costs a copy per row).
    """
    n = len(batch)
    pieces: list[bytes | np.ndarray] = [b'{"event_id":"', event_ids, b'","event_time":"', timestamp(batch.time), b'"']
    for literal, encoder, name in _TEMPLATES[batch.kind]:
        pieces.append(literal)
        if encoder is not None:
            pieces.append(encoder(batch.cols[name]))
    template = bytearray()
    columns: list[tuple[int, np.ndarray]] = []
    for piece in pieces:
        if isinstance(piece, bytes):
            template += piece
        else:
            columns.append((len(template), piece))
            template += bytes(piece.shape[1])
    out = np.empty((n, len(template)), dtype=np.uint8)
    out[:] = np.frombuffer(template, dtype=np.uint8)
    for start, matrix in columns:
        out[:, start : start + matrix.shape[1]] = matrix
    return out


def render(batch: EventBatch, event_ids: np.ndarray) -> bytes:
    """The batch's lines (each ending in a newline), in row order, with the given ``event_id``s."""
    return squeeze(rows(batch, as_matrix(event_ids)))
