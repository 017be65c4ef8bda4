"""Secret reads: every time a user (a token, a session, a service account) gets the plain
text of a stored secret through the API or the SDK, an audit event says who read what and
when (never the secret).

A read is told apart from the engines' own decryption by where it happens: the services here
are the only ones that hand a decrypted value to a caller, and each takes the transaction of
that caller's request and records the read before it returns the value. The engines (snapshot
builds, renewals, the internal CA, notifications, DNSSEC signing) decrypt through
``tx.secrets`` / ``SecretBox.decrypt`` as before and record nothing: they never give the value
to anyone but an engine.

The event (action ``reveal``, the kind and id of the object, ``after`` naming the field) goes
in the same write transaction as the read: if it cannot be written, the secret is not returned.
It carries the revision current at the time and does not bump it (a read changes nothing; the
snapshot's change tracking skips ``reveal`` events).
"""

from __future__ import annotations

from sqlalchemy import select

from edgeplane.certificates import versions
from edgeplane.errors import NotFound
from edgeplane.model.enums import Role
from edgeplane.model.secrets import CertificateKey
from edgeplane.store.db import Tx
from edgeplane.store.tables import AuditRow, CertificateRow, DomainRow, utcnow

ACTION = "reveal"


def record_read(tx: Tx, kind: str, object_id: str, field: str, **about: str) -> None:
    """An audit event for one read of a secret (call it inside the write transaction of the
    request, before the value leaves)."""
    tx.session.add(
        AuditRow(
            revision=tx.current_revision(),
            at=utcnow(),
            actor=tx.actor.name,
            project_id=tx.project,
            action=ACTION,
            kind=kind,
            object_id=object_id,
            before=None,
            after={"field": field, **about},
        )
    )
    tx.session.flush()


def certificate_key(tx: Tx, domain: str, certificate_id: str | None = None) -> CertificateKey:
    """The private key of a domain's certificate (the one served, or ``certificate_id``), in
    PEM: for moving a certificate elsewhere. Needs the admin role (and, for a token with
    scopes, ``certificates:reveal``); audited."""
    tx.actor.require(tx.project, Role.ADMIN)
    name = domain.strip().rstrip(".").lower()
    dom = tx.session.get(DomainRow, name)
    if dom is None or dom.project_id != tx.project:
        raise NotFound(f"domain {domain!r} not found in project {tx.project!r}")
    if certificate_id is not None:
        row = tx.session.get(CertificateRow, (tx.project, certificate_id))
        if row is None or row.domain != name:
            raise NotFound(f"certificate {certificate_id!r} not found for {name!r}")
    else:
        row = versions.newest_valid(tx, name)
        if row is None:
            raise NotFound(f"{name!r} has no valid certificate")
    record_read(tx, "certificate", row.id, "private_key", domain=name)
    return CertificateKey(
        domain=name, certificate_id=row.id, key_pem=tx.secrets.decrypt(row.key_encrypted)
    )


def reads(tx: Tx, limit: int = 100) -> list[AuditRow]:
    """The newest secret reads of the transaction's project."""
    return list(
        tx.session.scalars(
            select(AuditRow)
            .where(AuditRow.action == ACTION, AuditRow.project_id == tx.project)
            .order_by(AuditRow.id.desc())
            .limit(limit)
        )
    )
