"""Signed webhooks: a receiver can tell a package we sent from a forged or replayed one.

Every POST carries ``X-Antifraud-Timestamp`` (Unix seconds when it was sent; each attempt is signed
anew) and ``X-Antifraud-Signature``: ``v1=`` and the hex HMAC-SHA256, under the target's key, of the
timestamp, a dot and the body exactly as sent. While a key is being rotated the target has two keys and
the header carries one ``v1=`` per key, comma-separated, so a receiver holding either verifies. A
receiver refuses a timestamp outside its window (five minutes is usual): a package captured on the way
cannot be played back later. docs/forwarding.md has the receiver's side, tested against this one.
"""

import hashlib
import hmac
from collections.abc import Sequence

TIMESTAMP_HEADER = "X-Antifraud-Timestamp"
SIGNATURE_HEADER = "X-Antifraud-Signature"
MIN_KEY_BYTES = 32


def signature(key: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signed_headers(keys: Sequence[bytes], timestamp: int, body: bytes) -> dict[str, str]:
    """The two headers of one attempt, signed under each of the target's keys."""
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: ",".join(f"v1={signature(key, timestamp, body)}" for key in keys),
    }
