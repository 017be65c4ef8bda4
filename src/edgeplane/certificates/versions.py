"""Stored certificate versions of a project's domains: keep, look up, show, revoke.

Every certificate a domain gets (from the internal CA, an ACME CA, or uploaded) is kept as a
version (``CertificateRow``); the edge serves the newest valid, not revoked one of each domain,
so revoking the newest rolls back to the one before. Private keys are encrypted at rest
(``tx.secrets``) and never leave the control plane but in edge snapshots.

This is the bottom of the certificates package: the issuers (``internal``, ``custom``,
``acme.orders``) keep what they issue here, and ``renewal`` drives the issuers.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from edgeplane.certificates import serials
from edgeplane.certificates.schedule import RENEWABLE, due_at
from edgeplane.errors import Conflict, InvalidInput, NotFound
from edgeplane.model.certificates import (
    Certificate,
    CertificateIssued,
    CertificateStatus,
    OcspStaple,
    Renewal,
)
from edgeplane.model.enums import Role
from edgeplane.store.db import Tx
from edgeplane.store.domains import ACTIVE as DOMAIN_ACTIVE
from edgeplane.store.domains import get_row
from edgeplane.store.tables import CertificateRow, DomainRow, OcspStapleRow, utcnow

KIND = "certificate"
ACTIVE = "active"
REVOKED = "revoked"
RENEW_AT_FRACTION = 2 / 3  # shown as the due date; the renewal loop reads its settings


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


_BEGIN, _END = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"


def pem_fingerprint(pem: str) -> str:
    """``fingerprint`` of the first certificate of ``pem`` (the SHA-256 of its DER) without
    parsing it: a tenth of the time, which a listing of 100 domains spent 10 ms in."""
    body = pem.split(_BEGIN, 1)[1].split(_END, 1)[0]
    return hashlib.sha256(base64.b64decode("".join(body.split()))).hexdigest()


def to_model(row: CertificateRow, now: datetime | None = None) -> Certificate:
    now = now or utcnow()
    status = row.status
    if status == ACTIVE and row.not_after <= now:
        status = "expired"
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
        fingerprint=pem_fingerprint(row.cert_pem),
    )


def issued(cert: Certificate) -> CertificateIssued:
    return CertificateIssued(certificate=cert, expires_at=cert.not_after)


def verified_domain(tx: Tx, domain: str) -> DomainRow:
    """The project's domain, refused unless its ownership is verified."""
    row = get_row(tx, domain)
    if row.status != DOMAIN_ACTIVE:
        raise Conflict(
            f"domain {row.name!r} is not verified: prove ownership first "
            f"(POST /api/v1/infrastructure/domains/{row.name}/verify)",
            field="domain",
        )
    return row


def store(
    tx: Tx,
    row: DomainRow,
    *,
    issuer: str,
    chain_pem: str,
    key_pem: str,
    auto_renew: bool,
) -> Certificate:
    """Keep a new certificate version for the domain; the edge switches to it."""
    leaf = x509.load_pem_x509_certificate(chain_pem.encode())
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = sorted({n.lower() for n in san.value.get_values_for_type(x509.DNSName)})
    except x509.ExtensionNotFound:
        names = [row.name]
    fp = fingerprint(leaf)
    cert = CertificateRow(
        project_id=row.project_id,
        id=f"cert-{fp[:12]}",
        domain=row.name,
        issuer=issuer,
        names=names,
        status=ACTIVE,
        cert_pem=chain_pem,
        key_encrypted=tx.secrets.encrypt(key_pem),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        auto_renew=auto_renew,
    )
    if tx.session.get(CertificateRow, (row.project_id, cert.id)) is not None:
        raise Conflict(f"certificate {cert.id} is already stored for {row.name}", field="cert_data")
    tx.session.add(cert)
    tx.session.flush()
    out = to_model(cert)
    tx.record("issue", KIND, cert.id, None, out.model_dump(mode="json"))
    return out


# A domain's versions, newest first: the order the edge chooses the one it serves in.
NEWEST_FIRST = (
    CertificateRow.created_at.desc(),
    CertificateRow.not_before.desc(),
    CertificateRow.id,
)


def _rows(tx: Tx, domain: str) -> list[CertificateRow]:
    q = (
        select(CertificateRow)
        .where(CertificateRow.project_id == tx.project, CertificateRow.domain == domain)
        .order_by(*NEWEST_FIRST)
    )
    return list(tx.session.scalars(q))


def valid_of(rows: Iterable[CertificateRow], now: datetime) -> CertificateRow | None:
    """The first of a domain's versions (``NEWEST_FIRST``) that is active and valid now: the
    one the edge serves."""
    return next((r for r in rows if r.status == ACTIVE and r.not_before <= now < r.not_after), None)


def shown_of(
    rows: list[CertificateRow], valid: CertificateRow | None, now: datetime
) -> tuple[Certificate | None, str]:
    """The version to show for a domain (the valid one, else the newest) and its state:
    ``none``, ``active`` or ``expired``."""
    row = valid or (rows[0] if rows else None)
    chosen = to_model(row, now) if row is not None else None
    state = "none" if chosen is None else "active" if chosen.status == ACTIVE else "expired"
    return chosen, state


def newest_valid(tx: Tx, domain: str) -> CertificateRow | None:
    return valid_of(_rows(tx, domain), utcnow())


def newest_valid_of(tx: Tx, domains: Iterable[str]) -> dict[str, CertificateRow]:
    """``newest_valid`` of several of the project's domains (a page of a listing) in one
    query; the domains without a valid version are left out."""
    names = list(domains)
    if not names:
        return {}
    q = (
        select(CertificateRow)
        .where(CertificateRow.project_id == tx.project, CertificateRow.domain.in_(names))
        .order_by(CertificateRow.domain, *NEWEST_FIRST)
    )
    by_domain: dict[str, list[CertificateRow]] = {}
    for row in tx.session.scalars(q):
        by_domain.setdefault(row.domain, []).append(row)
    now = utcnow()
    return {
        domain: valid
        for domain, rows in by_domain.items()
        if (valid := valid_of(rows, now)) is not None
    }


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
    valid = valid_of(rows, now)
    chosen, state = shown_of(rows, valid, now)
    return CertificateStatus(
        domain=row.name,
        status=state,
        certificate=chosen,
        expires_at=chosen.not_after if chosen else None,
        certificates=[to_model(r, now) for r in rows],
        renewal=renewal_of(valid) if valid is not None else None,
        ocsp=_staple(tx, valid, now) if valid is not None else None,
    )


def _staple(tx: Tx, cert: CertificateRow, now: datetime) -> OcspStaple | None:
    row = tx.session.get(OcspStapleRow, (cert.project_id, cert.id))
    if row is None:
        return None
    stapled = row.response is not None and row.next_update is not None and row.next_update > now
    return OcspStaple(
        ocsp_url=row.ocsp_url or None,
        stapled=stapled,
        status=row.cert_status,
        this_update=row.this_update,
        next_update=row.next_update,
        fetched_at=row.fetched_at,
        next_fetch_at=row.next_fetch_at,
        attempts=row.attempts or 0,
        last_error=row.last_error,
    )


def _when(value: object) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


def renewal_of(row: CertificateRow) -> Renewal | None:
    """The renewal state of a served certificate (None: not renewed here)."""
    if not row.auto_renew or row.issuer not in RENEWABLE:
        return None
    r = row.renewal or {}
    return Renewal(
        due_at=due_at(row, RENEW_AT_FRACTION),
        attempts=int(r.get("attempts") or 0),
        last_attempt_at=_when(r.get("last_attempt_at")),
        next_attempt_at=_when(r.get("next_attempt_at")),
        last_error=r.get("last_error"),
        suggested_by_ca=_when(r.get("ari_time")),
    )


def delete_for_domain(tx: Tx, domain: str) -> None:
    for row in _rows(tx, domain):
        before = to_model(row)
        serials.revoke(tx.session, row.cert_pem, serials.CESSATION)
        tx.session.delete(row)
        tx.record("delete", KIND, row.id, before.model_dump(mode="json"), None)


def revoke(tx: Tx, domain: str, certificate_id: str | None = None) -> Certificate:
    """Stop serving a certificate (the newest valid one unless named); the edge falls back to
    the previous valid version, if any."""
    tx.actor.require(tx.project, Role.EDITOR)
    row = get_row(tx, domain)
    target: CertificateRow | None
    if certificate_id is None:
        target = newest_valid(tx, row.name)
        if target is None:
            raise NotFound(f"domain {row.name!r} has no valid certificate to revoke")
    else:
        target = tx.session.get(CertificateRow, (tx.project, certificate_id))
        if target is None or target.domain != row.name:
            raise NotFound(f"certificate {certificate_id!r} not found for {row.name!r}")
    if target.status == REVOKED:
        raise InvalidInput.at("certificate_id", f"{target.id} is already revoked")
    before = to_model(target).model_dump(mode="json")
    target.status = REVOKED
    serials.revoke(tx.session, target.cert_pem, serials.UNSPECIFIED)
    after = to_model(target)
    tx.record("revoke", KIND, target.id, before, after.model_dump(mode="json"))
    return after


def served_select(now: datetime, *columns: Any) -> Select[Any]:
    """``columns`` of each active domain's valid certificate versions, the one the edge serves
    first per domain (its newest: ``renewal.served``, ``served_expiries``)."""
    return (
        select(*columns)
        .join(DomainRow, DomainRow.name == CertificateRow.domain)
        .where(
            DomainRow.status == DOMAIN_ACTIVE,
            DomainRow.project_id == CertificateRow.project_id,
            CertificateRow.status == ACTIVE,
            CertificateRow.not_before <= now,
            CertificateRow.not_after > now,
        )
        .order_by(CertificateRow.domain, *NEWEST_FIRST)
    )


def served_expiries(
    session: Session, now: datetime, project: str | None = None
) -> dict[tuple[str, str], datetime]:
    """(project, domain) -> when the certificate the edge serves for the domain expires, read
    in narrow columns (no certificate bodies: the monitoring reads it for every domain every
    few seconds)."""
    q = served_select(
        now, CertificateRow.project_id, CertificateRow.domain, CertificateRow.not_after
    )
    if project is not None:
        q = q.where(CertificateRow.project_id == project)
    out: dict[tuple[str, str], datetime] = {}
    for project_id, domain, not_after in session.execute(q):
        out.setdefault((project_id, domain), not_after)
    return out
