"""TLS session ticket keys, shared by every edge node and rotated.

A client resumes its TLS session on any node only if that node can decrypt its ticket, so the
keys come from the control plane: each period of ``ROTATE_S`` seconds has one key, derived from
a secret of the control plane (``SecretBox.derive``) and the period's number with HKDF-SHA256,
so every replica of the control plane computes the same keys and nothing is stored. A snapshot
holds the key of the current period first (the one that encrypts) and, for decryption only, the
previous one (tickets issued before the rotation) and the next one (tickets of a node that
already rotated while this one has not). A ticket therefore resumes for one to two periods.

The keys change with time, not with the desired state: the control plane's runner bumps the
revision when a period starts (``services.jobs.rotate_ticket_keys``), and nodes get the new keys
with that snapshot.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from edgeplane.protocol.config import TicketKeySpec

ROTATE_S = 12 * 3600
TICKET_SECRET = "tls-session-tickets"  # the label of SecretBox.derive
KEY_BYTES = 80  # nginx's ssl_session_ticket_key file: AES-256 and HMAC-SHA256 keys, a name
INFO = b"edgeplane tls session ticket key v1 "


def period_of(now: float, rotate_s: int = ROTATE_S) -> int:
    if rotate_s <= 0:
        raise ValueError("the ticket key rotation period must be positive")
    return int(now // rotate_s)


def period_key(secret: bytes, period: int) -> TicketKeySpec:
    raw = HKDF(
        algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=INFO + str(period).encode()
    ).derive(secret)
    key_id = hashlib.sha256(b"id " + raw).hexdigest()[:16]  # names the key, reveals nothing
    return TicketKeySpec(id=key_id, key=base64.b64encode(raw).decode())


def ticket_keys(secret: bytes, now: float, rotate_s: int = ROTATE_S) -> tuple[TicketKeySpec, ...]:
    """(current: encrypts, previous, next) for the period of ``now``."""
    n = period_of(now, rotate_s)
    return (period_key(secret, n), period_key(secret, n - 1), period_key(secret, n + 1))
