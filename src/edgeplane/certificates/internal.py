"""Certificates of domains from the internal CA (issuer ``internal``).

The CA itself (its keys, kept encrypted in the ``secrets`` table) is ``internal_ca``; this
module issues a domain's certificate from it and keeps it as a version.
"""

from __future__ import annotations

from edgeplane.certificates import serials, versions
from edgeplane.certificates.internal_ca import InternalCA
from edgeplane.model.certificates import Certificate, CertificateIssued
from edgeplane.model.enums import Role
from edgeplane.services.common import lock_name
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.store.db import Database, Tx
from edgeplane.store.tables import CertificateRow

ISSUER = "internal"


def internal_ca(tx: Tx) -> InternalCA:
    lock_name(tx, "secrets", "internal-ca")
    return InternalCA.load_or_create(tx.session, tx.secrets)


def issue(tx: Tx, domain: str) -> Certificate:
    """Issue a certificate for ``domain`` (of the transaction's project) from the internal CA."""
    tx.actor.require(tx.project, Role.EDITOR)
    issued = internal_ca(tx).issue([domain], ocsp_url=tx.ocsp_url)
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
        auto_renew=True,
    )
    tx.session.add(row)
    serials.record(tx.session, issued.serial, tx.project, row.id, issued.not_after)
    tx.session.flush()
    out = versions.to_model(row)
    tx.record("issue", versions.KIND, row.id, None, out.model_dump(mode="json"))
    return out


def provision(tx: Tx, domain: str) -> CertificateIssued:
    """A new internal certificate for a verified domain (``POST /ssl/{domain}``, renewals)."""
    tx.actor.require(tx.project, Role.EDITOR)
    row = versions.verified_domain(tx, domain)
    return versions.issued(issue(tx, row.name))


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
