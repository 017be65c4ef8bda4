"""Certificates of verified domains: stored versions, custom uploads, revocation.

Every certificate is kept as a version (``CertificateRow``); the edge serves the newest valid,
not revoked one of each domain, so revoking the newest rolls back to the one before. Private
keys are encrypted at rest and never leave the control plane but in edge snapshots. ACME orders
run in ``edgeplane.services.acme_orders``; this module stores what they bring.
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from edgeplane.certs.internal_ca import fingerprint
from edgeplane.errors import Conflict, InvalidInput, NotFound
from edgeplane.model.certificates import Certificate, CertificateIssued, CertificateRequest
from edgeplane.model.enums import Role
from edgeplane.services import certificates, domains
from edgeplane.store.db import Tx
from edgeplane.store.tables import CertificateRow, DomainRow, utcnow

REVOKED = "revoked"


def verified_domain(tx: Tx, domain: str) -> DomainRow:
    """The project's domain, refused unless its ownership is verified."""
    row = domains.get_row(tx, domain)
    if row.status != domains.ACTIVE:
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
        status=certificates.ACTIVE,
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
    out = certificates.to_model(cert)
    tx.record("issue", certificates.KIND, cert.id, None, out.model_dump(mode="json"))
    return out


def issued(cert: Certificate) -> CertificateIssued:
    return CertificateIssued(certificate=cert, expires_at=cert.not_after)


def upload(
    tx: Tx, domain: str, cert_data: str, key_data: str, *, now: datetime | None = None
) -> CertificateIssued:
    """Validate and keep a custom certificate (each refusal names the field and the reason)."""
    from edgeplane.certs.upload import UploadError, parse_upload

    tx.actor.require(tx.project, Role.EDITOR)
    row = verified_domain(tx, domain)
    try:
        parsed = parse_upload(row.name, cert_data, key_data, now=now or utcnow())
    except UploadError as exc:
        raise exc.to_invalid_input() from None
    cert = store(
        tx,
        row,
        issuer="custom",
        chain_pem=parsed.chain_pem,
        key_pem=parsed.key_pem,
        auto_renew=False,
    )
    return issued(cert)


def provision_internal(tx: Tx, domain: str) -> CertificateIssued:
    tx.actor.require(tx.project, Role.EDITOR)
    row = verified_domain(tx, domain)
    return issued(certificates.issue_internal(tx, row.name))


def renewal_request(tx: Tx, domain: str) -> CertificateRequest:
    """What renewing the domain's certificate asks for: the same issuer, names and key type."""
    tx.actor.require(tx.project, Role.EDITOR)
    row = verified_domain(tx, domain)
    current = certificates.newest_valid(tx, row.name)
    if current is None:
        raise NotFound(f"domain {row.name!r} has no valid certificate to renew")
    if current.issuer == "custom":
        raise Conflict(
            f"the certificate of {row.name!r} was uploaded: upload its successor", field="type"
        )
    if current.issuer == "internal":
        return CertificateRequest(type="internal")
    names = set(current.names or [])
    leaf = x509.load_pem_x509_certificate(current.cert_pem.encode())
    is_rsa = isinstance(leaf.public_key(), rsa.RSAPublicKey)
    return CertificateRequest(
        type="lets_encrypt",
        auto_renew=current.auto_renew,
        include_www=f"www.{row.name}" in names,
        wildcard=f"*.{row.name}" in names,
        key_type="rsa2048" if is_rsa else "ec256",
    )


def revoke(tx: Tx, domain: str, certificate_id: str | None = None) -> Certificate:
    """Stop serving a certificate (the newest valid one unless named); the edge falls back to
    the previous valid version, if any."""
    tx.actor.require(tx.project, Role.EDITOR)
    row = domains.get_row(tx, domain)
    target: CertificateRow | None
    if certificate_id is None:
        target = certificates.newest_valid(tx, row.name)
        if target is None:
            raise NotFound(f"domain {row.name!r} has no valid certificate to revoke")
    else:
        target = tx.session.get(CertificateRow, (tx.project, certificate_id))
        if target is None or target.domain != row.name:
            raise NotFound(f"certificate {certificate_id!r} not found for {row.name!r}")
    if target.status == REVOKED:
        raise InvalidInput.at("certificate_id", f"{target.id} is already revoked")
    before = certificates.to_model(target).model_dump(mode="json")
    target.status = REVOKED
    after = certificates.to_model(target)
    tx.record("revoke", certificates.KIND, target.id, before, after.model_dump(mode="json"))
    return after
