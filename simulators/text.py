"""Vectorised ASCII/UTF-8 building blocks: numbers to digit matrices, byte strings to matrices.

Events are rendered as rows of a ``uint8`` matrix in which NUL bytes are padding
that is squeezed out at the end; these helpers make the columns of such matrices,
so that no Python-level loop runs per event.
"""

import numpy as np

PAD = 0
"""The padding byte; never part of a rendered line."""

_PAIRS = np.array([[48 + i // 10, 48 + i % 10] for i in range(100)], dtype=np.uint8).view(np.uint16).ravel()
"""ASCII of 00 .. 99 as 16-bit words: two digits per look-up instead of a division per digit."""


def digits(values: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of non-negative integers as an ``(n, width)`` ASCII matrix."""
    rest = np.asarray(values, dtype=np.int64)
    pairs = np.empty((len(rest), (width + 1) // 2), dtype=np.uint16)
    for column in range(pairs.shape[1] - 1, -1, -1):
        rest, pair = np.divmod(rest, 100)
        pairs[:, column] = _PAIRS[pair]
    out = pairs.view(np.uint8).reshape(len(rest), 2 * pairs.shape[1])
    return out[:, 1:] if width % 2 else out


def width_of(values: np.ndarray) -> int:
    """How many decimal digits the largest absolute value needs (at least one)."""
    if len(values) == 0:
        return 1
    return len(str(int(np.abs(np.asarray(values, dtype=np.int64)).max())))


def as_matrix(strings: np.ndarray) -> np.ndarray:
    """A bytes (``S``) array as an ``(n, itemsize)`` matrix, NUL-padded on the right."""
    arr = np.ascontiguousarray(strings)
    if arr.dtype.kind != "S":
        raise TypeError(f"expected a bytes array, got {arr.dtype}")
    size = max(arr.dtype.itemsize, 1)
    return arr.astype(f"S{size}").view(np.uint8).reshape(len(arr), size)


def as_strings(matrix: np.ndarray) -> np.ndarray:
    """An ASCII matrix back to a bytes (``S``) array (trailing NULs dropped)."""
    matrix = np.ascontiguousarray(matrix, dtype=np.uint8)
    return matrix.view(f"S{matrix.shape[1]}").reshape(len(matrix))


def concat(first: np.ndarray | bytes, *rest: np.ndarray | bytes) -> np.ndarray:
    """Join bytes arrays (or a constant) element-wise, e.g. a prefix and a serial number."""
    out = np.asarray(first, dtype=np.bytes_)
    for part in rest:
        out = np.strings.add(out, np.asarray(part, dtype=np.bytes_))
    return out


def squeeze(matrix: np.ndarray) -> bytes:
    """The matrix's bytes row after row, with the padding removed."""
    flat = matrix.ravel()
    return flat[flat != PAD].tobytes()


def luhn_digit(body: np.ndarray) -> np.ndarray:
    """The Luhn check digit (ASCII) of each row of an ASCII digit matrix (bank cards, IMEIs)."""
    values = body.astype(np.int64) - 48
    from_right = values[:, ::-1]
    doubled = from_right[:, 0::2] * 2
    total = (doubled // 10 + doubled % 10).sum(axis=1) + from_right[:, 1::2].sum(axis=1)
    return ((10 - total % 10) % 10 + 48).astype(np.uint8)
