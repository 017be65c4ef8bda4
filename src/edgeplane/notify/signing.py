"""Webhook signatures, as Stripe's and Standard Webhooks' are made.

A signed request carries ``X-Edgeplane-Timestamp: <unix seconds>`` and
``X-Edgeplane-Signature: v1=<hex HMAC-SHA256 of "<timestamp>." + body>`` keyed with the
channel's secret. A receiver recomputes it (``verify``), compares in constant time and refuses
a timestamp more than ``tolerance_s`` away from its clock, so that a captured request cannot be
replayed later. Several ``v1=`` values (comma or space separated) may be given while a secret
is rotated; one match suffices.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

TIMESTAMP_HEADER = "X-Edgeplane-Timestamp"
SIGNATURE_HEADER = "X-Edgeplane-Signature"
SCHEME = "v1"


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def signature(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}."`` + ``body``."""
    signed = f"{int(timestamp)}.".encode() + body
    return hmac.new(_key(secret), signed, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, body: bytes, timestamp: int) -> dict[str, str]:
    """The two headers of a request of ``body`` sent at ``timestamp`` (unix seconds)."""
    return {
        TIMESTAMP_HEADER: str(int(timestamp)),
        SIGNATURE_HEADER: f"{SCHEME}={signature(secret, body, timestamp)}",
    }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def verify(
    secret: str | bytes,
    body: bytes,
    headers: Mapping[str, str],
    now: float,
    tolerance_s: float = 300,
) -> bool:
    """Whether ``headers`` sign ``body`` with ``secret`` at a time within ``tolerance_s`` of
    ``now`` (unix seconds). Header names are matched ignoring case."""
    stamp = _header(headers, TIMESTAMP_HEADER)
    given = _header(headers, SIGNATURE_HEADER)
    if stamp is None or given is None:
        return False
    stamp = stamp.strip()
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 15:
        return False
    timestamp = int(stamp)
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = signature(secret, body, timestamp).encode()
    found = False
    for item in given.replace(",", " ").split():
        scheme, _eq, value = item.partition("=")
        if scheme == SCHEME and value.isascii():
            # every candidate is compared, so the time does not tell which one matched
            found |= hmac.compare_digest(expected, value.lower().encode())
    return found
