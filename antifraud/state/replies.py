"""Redis replies as the code reads them. redis-py types a reply as ``bytes | str`` (a client may decode
replies); the clients here never do, so a reply is bytes, and these say so once instead of at every call."""

from collections.abc import Iterable
from typing import Any


def text(reply: Any) -> str:
    """One reply (a member, a field, a value) as text."""
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def texts(replies: Iterable[Any]) -> list[str]:
    return [text(r) for r in replies]


def data(reply: Any) -> bytes | None:
    """One reply as the bytes stored (None when the key or field is missing)."""
    if reply is None or isinstance(reply, bytes):
        return reply
    return str(reply).encode()
