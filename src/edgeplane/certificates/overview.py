"""The project's certificates at a glance and one version in detail (the dashboard's SSL page).

``list_page`` pages through the project's domains (by name, as the domain list does) with what
the edge serves for each, its renewal state and how many versions are kept, reading the
certificates of a page in one query. ``details`` decodes one kept version: its chain (each
certificate's subject, issuer, validity, key and fingerprint). ``set_auto_renew`` switches the
renewal of the served certificate on or off.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from sqlalchemy import select

from edgeplane.certificates import versions
from edgeplane.certificates.schedule import RENEWABLE
from edgeplane.errors import Conflict, NotFound
from edgeplane.model.certificates import (
    Certificate,
    CertificateDetails,
    CertificateList,
    CertificateSettings,
    CertificateSummary,
    ChainCertificate,
)
from edgeplane.model.enums import Role
from edgeplane.services.common import paged
from edgeplane.store.db import Tx
from edgeplane.store.domains import get_row
from edgeplane.store.tables import CertificateRow, DomainRow, utcnow


def list_page(tx: Tx, *, cursor: str | None = None, limit: int | None = None) -> CertificateList:
    """The project's domains (a page of them) with their certificates' state."""
    tx.actor.require(tx.project, Role.VIEWER)
    q = select(DomainRow).where(DomainRow.project_id == tx.project)
    domains, nxt = paged(tx, q, DomainRow.name, cursor, limit)
    by_domain: dict[str, list[CertificateRow]] = defaultdict(list)
    if domains:
        rows = tx.session.scalars(
            select(CertificateRow)
            .where(
                CertificateRow.project_id == tx.project,
                CertificateRow.domain.in_([d.name for d in domains]),
            )
            .order_by(CertificateRow.domain, *versions.NEWEST_FIRST)
        )
        for row in rows:
            by_domain[row.domain].append(row)
    now = utcnow()
    return CertificateList(
        certificates=[_summary(d, by_domain.get(d.name, []), now) for d in domains],
        next_cursor=nxt,
    )


def _summary(domain: DomainRow, rows: list[CertificateRow], now: datetime) -> CertificateSummary:
    valid = versions.valid_of(rows, now)
    chosen, state = versions.shown_of(rows, valid, now)
    return CertificateSummary(
        domain=domain.name,
        domain_status=domain.status,
        status=state,
        certificate=chosen,
        expires_at=chosen.not_after if chosen else None,
        versions=len(rows),
        renewal=versions.renewal_of(valid) if valid is not None else None,
    )


def _key(public: object) -> tuple[str, int]:
    if isinstance(public, rsa.RSAPublicKey):
        return "RSA", public.key_size
    if isinstance(public, ec.EllipticCurvePublicKey):
        names = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        return f"EC {names.get(public.curve.name, public.curve.name)}", public.key_size
    if isinstance(public, dsa.DSAPublicKey):
        return "DSA", public.key_size
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(public, ed448.Ed448PublicKey):
        return "Ed448", 456
    return type(public).__name__, 0


def _chain_entry(cert: x509.Certificate) -> ChainCertificate:
    key_type, key_size = _key(cert.public_key())
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    algorithm = cert.signature_hash_algorithm
    return ChainCertificate(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_type=key_type,
        key_size=key_size,
        signature_algorithm=algorithm.name if algorithm is not None else None,
        fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
        is_ca=is_ca,
    )


def details(tx: Tx, domain: str, certificate_id: str) -> CertificateDetails:
    """One kept version of the domain's certificate, its chain decoded."""
    tx.actor.require(tx.project, Role.VIEWER)
    name = get_row(tx, domain).name
    row = tx.session.get(CertificateRow, (tx.project, certificate_id))
    if row is None or row.domain != name:
        raise NotFound(f"certificate {certificate_id!r} not found for {name!r}")
    chain = [_chain_entry(c) for c in x509.load_pem_x509_certificates(row.cert_pem.encode())]
    served = versions.newest_valid(tx, name)
    leaf = chain[0]
    return CertificateDetails(
        certificate=versions.to_model(row),
        served=served is not None and served.id == row.id,
        key_type=leaf.key_type,
        key_size=leaf.key_size,
        serial=leaf.serial,
        chain=chain,
        chain_pem=row.cert_pem,
    )


def set_auto_renew(tx: Tx, domain: str, spec: CertificateSettings) -> Certificate:
    """Renew the served certificate on its own, or not (uploads are renewed by people)."""
    tx.actor.require(tx.project, Role.EDITOR)
    name = get_row(tx, domain).name
    row = versions.newest_valid(tx, name)
    if row is None:
        raise NotFound(f"domain {name!r} has no valid certificate to renew")
    if row.issuer not in RENEWABLE:
        raise Conflict(
            f"the certificate of {name!r} was uploaded ({row.issuer}): it is not renewed here; "
            "upload its successor before it expires",
            field="auto_renew",
        )
    before = versions.to_model(row)
    if row.auto_renew != spec.auto_renew:
        row.auto_renew = spec.auto_renew
        tx.session.flush()
        after = versions.to_model(row)
        tx.record(
            "update",
            versions.KIND,
            row.id,
            before.model_dump(mode="json"),
            after.model_dump(mode="json"),
        )
        return after
    return before
