"""Certificates of a project's domains: issuing from the internal CA, lookups, status."""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from sqlalchemy import select

from edgeplane.certs.internal_ca import InternalCA, fingerprint
from edgeplane.errors import NotFound
from edgeplane.model.certificates import Certificate, CertificateStatus, Renewal
from edgeplane.model.enums import Role
from edgeplane.services.common import lock_name
from edgeplane.store.db import Tx
from edgeplane.store.tables import CertificateRow, DomainRow, utcnow

KIND = "certificate"
ACTIVE = "active"


def to_model(row: CertificateRow, now: datetime | None = None) -> Certificate:
    now = now or utcnow()
    status = row.status
    if status == ACTIVE and row.not_after <= now:
        status = "expired"
    cert = x509.load_pem_x509_certificate(row.cert_pem.encode())
    return Certificate(
        id=row.id,
        project=row.project_id,
        domain=row.domain,
        issuer=row.issuer,
        names=list(row.names or []),
        status=status,
        not_before=row.not_before,
        not_after=row.not_after,
        auto_renew=row.auto_renew,
        fingerprint=fingerprint(cert),
    )


def internal_ca(tx: Tx) -> InternalCA:
    lock_name(tx, "secrets", "internal-ca")
    return InternalCA.load_or_create(tx.session, tx.secrets)


def issue_internal(tx: Tx, domain: str) -> Certificate:
    """Issue a certificate for ``domain`` (of the transaction's project) from the internal CA."""
    tx.actor.require(tx.project, Role.EDITOR)
    issued = internal_ca(tx).issue([domain])
    row = CertificateRow(
        project_id=tx.project,
        id=f"cert-{issued.fingerprint[:12]}",
        domain=domain,
        issuer="internal",
        names=[domain],
        status=ACTIVE,
        cert_pem=issued.cert_pem,
        key_encrypted=tx.secrets.encrypt(issued.key_pem),
        not_before=issued.not_before,
        not_after=issued.not_after,
        auto_renew=True,
    )
    tx.session.add(row)
    tx.session.flush()
    out = to_model(row)
    tx.record("issue", KIND, row.id, None, out.model_dump(mode="json"))
    return out


def _rows(tx: Tx, domain: str) -> list[CertificateRow]:
    q = (
        select(CertificateRow)
        .where(CertificateRow.project_id == tx.project, CertificateRow.domain == domain)
        .order_by(
            CertificateRow.created_at.desc(), CertificateRow.not_before.desc(), CertificateRow.id
        )
    )
    return list(tx.session.scalars(q))


def newest_valid(tx: Tx, domain: str) -> CertificateRow | None:
    now = utcnow()
    for row in _rows(tx, domain):
        if row.status == ACTIVE and row.not_before <= now < row.not_after:
            return row
    return None


def list_for_project(tx: Tx) -> list[Certificate]:
    tx.actor.require(tx.project, Role.VIEWER)
    q = (
        select(CertificateRow)
        .where(CertificateRow.project_id == tx.project)
        .order_by(
            CertificateRow.domain,
            CertificateRow.created_at.desc(),
            CertificateRow.not_before.desc(),
        )
    )
    now = utcnow()
    return [to_model(r, now) for r in tx.session.scalars(q)]


def status(tx: Tx, domain: str) -> CertificateStatus:
    """The certificate status of one of the project's domains."""
    tx.actor.require(tx.project, Role.VIEWER)
    row = tx.session.get(DomainRow, domain.strip().rstrip(".").lower())
    if row is None or row.project_id != tx.project:
        raise NotFound(f"domain {domain!r} not found in project {tx.project!r}")
    now = utcnow()
    rows = _rows(tx, row.name)
    models = [to_model(r, now) for r in rows]
    valid = newest_valid(tx, row.name)
    chosen = to_model(valid, now) if valid else (models[0] if models else None)
    state = "none" if chosen is None else "active" if chosen.status == ACTIVE else "expired"
    return CertificateStatus(
        domain=row.name,
        status=state,
        certificate=chosen,
        expires_at=chosen.not_after if chosen else None,
        certificates=models,
        renewal=_renewal(valid) if valid is not None else None,
    )


def _when(value: object) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


def _renewal(row: CertificateRow) -> Renewal | None:
    if not row.auto_renew or row.issuer not in ("lets_encrypt", "internal"):
        return None
    from edgeplane.services.renewal import due_at

    r = row.renewal or {}
    return Renewal(
        due_at=due_at(row, 2 / 3),
        attempts=int(r.get("attempts") or 0),
        last_attempt_at=_when(r.get("last_attempt_at")),
        next_attempt_at=_when(r.get("next_attempt_at")),
        last_error=r.get("last_error"),
        suggested_by_ca=_when(r.get("ari_time")),
    )


def delete_for_domain(tx: Tx, domain: str) -> None:
    for row in _rows(tx, domain):
        before = to_model(row)
        tx.session.delete(row)
        tx.record("delete", KIND, row.id, before.model_dump(mode="json"), None)


def root_pem(tx: Tx) -> str:
    """The internal root certificate (created on first use)."""
    existing = InternalCA.root_pem(tx.session)
    return existing if existing is not None else internal_ca(tx).cert_pem
