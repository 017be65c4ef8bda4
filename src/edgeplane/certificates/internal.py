"""Certificates of domains from the internal CA (issuer ``internal``).

The CA itself (its keys, kept encrypted in the ``secrets`` table) is ``internal_ca``; this
module issues a domain's certificate from it and keeps it as a version.
"""

from __future__ import annotations

import base64

from cryptography import x509

from edgeplane.certificates import ocsp_responder, serials, staples, versions
from edgeplane.certificates.internal_ca import InternalCA
from edgeplane.model.certificates import Certificate, CertificateIssued
from edgeplane.model.enums import Role
from edgeplane.services.common import lock_name
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.store.db import Database, Tx
from edgeplane.store.tables import CertificateRow, OcspStapleRow, utcnow

ISSUER = "internal"


def internal_ca(tx: Tx) -> InternalCA:
    lock_name(tx, "secrets", "internal-ca")
    return InternalCA.load_or_create(tx.session, tx.secrets)


def issue(
    tx: Tx, domain: str, key_pem: str | None = None, *, auto_renew: bool = True
) -> Certificate:
    """Issue a certificate for ``domain`` (of the transaction's project) from the internal CA;
    with ``key_pem``, for that key (a renewal)."""
    tx.actor.require(tx.project, Role.EDITOR)
    ca = internal_ca(tx)
    issued = ca.issue([domain], ocsp_url=tx.ocsp_url, key_pem=key_pem)
    row = CertificateRow(
        project_id=tx.project,
        id=f"cert-{issued.fingerprint[:12]}",
        domain=domain,
        issuer=ISSUER,
        names=[domain],
        status=versions.ACTIVE,
        cert_pem=issued.cert_pem,
        key_encrypted=tx.secrets.encrypt(issued.key_pem),
        not_before=issued.not_before,
        not_after=issued.not_after,
        auto_renew=auto_renew,
    )
    tx.session.add(row)
    serials.record(tx.session, issued.serial, tx.project, row.id, issued.not_after)
    tx.session.flush()
    if tx.ocsp_url:
        _first_staple(tx, row, ca, tx.ocsp_url)
    out = versions.to_model(row)
    tx.record("issue", versions.KIND, row.id, None, out.model_dump(mode="json"))
    return out


def _first_staple(tx: Tx, row: CertificateRow, ca: InternalCA, url: str) -> None:
    """The new certificate's first OCSP staple, signed here by the CA that issued it: the edge
    staples it from its first handshake, without waiting for a pass of the fetcher (which
    refreshes it from the responder at half its validity, like any other)."""
    now = utcnow()
    leaf = x509.load_pem_x509_certificate(row.cert_pem.encode())
    der = ocsp_responder.good_response(leaf, ca.signers()[0], now)
    this_update = (now - ocsp_responder.BACKDATE).replace(microsecond=0)  # as in the response
    next_update = this_update + ocsp_responder.VALIDITY
    tx.session.add(
        OcspStapleRow(
            project_id=row.project_id,
            certificate_id=row.id,
            ocsp_url=url,
            response=base64.b64encode(der).decode(),
            cert_status="good",
            this_update=this_update,
            next_update=next_update,
            fetched_at=now,
            next_fetch_at=staples.refresh_at(this_update, next_update, now),
            attempts=0,
        )
    )


def provision(
    tx: Tx, domain: str, key_pem: str | None = None, *, auto_renew: bool = True
) -> CertificateIssued:
    """A new internal certificate for a verified domain (``POST /ssl/{domain}``, renewals:
    those keep the key, ``key_pem``)."""
    tx.actor.require(tx.project, Role.EDITOR)
    row = versions.verified_domain(tx, domain)
    return versions.issued(issue(tx, row.name, key_pem, auto_renew=auto_renew))


def public_root(db: Database) -> str:
    """The internal root certificate, read without a write transaction once it exists."""
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        pem = InternalCA.root_pem(tx.session)
    if pem is not None:
        return pem
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        return root_pem(tx)


def root_pem(tx: Tx) -> str:
    """The internal root certificate (created on first use)."""
    existing = InternalCA.root_pem(tx.session)
    return existing if existing is not None else internal_ca(tx).cert_pem
