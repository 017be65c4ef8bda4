"""The serials the internal CA issued, for its OCSP responder: good until the certificate is
revoked or deleted (then revoked, with the time and the reason), unknown if never issued here.

Kept apart from the certificate versions because a version may be deleted (with its domain)
while clients may still hold the certificate: its serial must then answer "revoked".
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from sqlalchemy.orm import Session

from edgeplane.store.tables import IssuedSerialRow, utcnow

# RFC 5280 reason names, as cryptography's ``x509.ReasonFlags`` values.
SUPERSEDED = "superseded"
CESSATION = "cessationOfOperation"
UNSPECIFIED = "unspecified"


def serial_hex(serial: int) -> str:
    return format(serial, "x")


def record(
    session: Session, serial: int, project: str, certificate_id: str, not_after: datetime
) -> None:
    session.add(
        IssuedSerialRow(
            serial=serial_hex(serial),
            project_id=project,
            certificate_id=certificate_id,
            not_after=not_after,
        )
    )


def lookup(session: Session, serial: int) -> IssuedSerialRow | None:
    return session.get(IssuedSerialRow, serial_hex(serial))


def revoke(session: Session, cert_pem: str, reason: str, when: datetime | None = None) -> bool:
    """Mark the leaf of ``cert_pem`` revoked, if the internal CA issued it (True then)."""
    try:
        leaf = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError:
        return False
    row = lookup(session, leaf.serial_number)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = (when or utcnow()).replace(microsecond=0)
    row.revocation_reason = reason
    return True
