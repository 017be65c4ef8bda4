"""The client certificate a project's edge presents to its private origins.

One per project (not per load balancer: every pool of a project is served by the same edge
for the same owner, and the origin checks who is calling, which is the project), issued by the
internal CA's client intermediate (``InternalCA.client_signer``): ``clientAuth`` only,
``CN=<project>, OU=origin client, O=Edgeplane`` and the URI ``edgeplane:project:<project>``,
valid ``DAYS`` days and renewed by the certificate renewal job once two thirds of that have
passed (``renew_due``), with a new key each time. An origin trusts the internal root
(``GET /api/v1/infrastructure/ca.pem``) and checks the subject names its project.

Kept in the ``secrets`` table (``origin-client:<sha256 of the project>``; the project id may
be longer than a secret's name allows): the chain in ``public``, the private key encrypted
like every platform secret. The snapshot carries it to the edge nodes as a ``CertSpec`` with
no SNI names (``snapshot.build``), which nodes store as any certificate (content-addressed,
key and chain in one file under ``certs/``). Issuing or renewing records an audit event
(kind ``origin_client_certificate``), which makes the next snapshot a full build.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from edgeplane.certificates.internal import internal_ca
from edgeplane.certificates.internal_ca import InternalCA
from edgeplane.certificates.versions import fingerprint
from edgeplane.model.enums import Role
from edgeplane.model.origin_client import OriginClientCertificate
from edgeplane.secrets import SecretBox
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.store.db import Database, Tx
from edgeplane.store.tables import CDNConfigRow, LoadBalancerRow, SecretRow, utcnow

log = logging.getLogger(__name__)

KIND = "origin_client_certificate"
PREFIX = "origin-client:"
DAYS = 30
RENEW_AT = 2 / 3  # of the lifetime


def secret_name(project: str) -> str:
    return PREFIX + hashlib.sha256(project.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Stored:
    """A project's client certificate as kept: its chain, its key (decrypted) and dates."""

    project: str
    cert_pem: str  # the leaf, then the client intermediate
    key_pem: str
    not_before: datetime
    not_after: datetime

    @property
    def leaf(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem.encode())

    @property
    def id(self) -> str:
        """As certificates are named in snapshots: the sha256 of the chain PEM."""
        return hashlib.sha256(self.cert_pem.encode()).hexdigest()

    def due(self, now: datetime) -> bool:
        return now >= self.not_before + (self.not_after - self.not_before) * RENEW_AT


def project_of(cert: x509.Certificate) -> str | None:
    """The project a client certificate names (its URI ``edgeplane:project:<id>``)."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for uri in sans.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith("edgeplane:project:"):
            return uri.removeprefix("edgeplane:project:")
    return None


def _stored(row: SecretRow, box: SecretBox) -> Stored | None:
    if not row.public:
        return None
    leaf = x509.load_pem_x509_certificate(row.public.encode())
    project = project_of(leaf)
    if project is None:
        return None
    return Stored(
        project=project,
        cert_pem=row.public,
        key_pem=box.decrypt(row.value_encrypted),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
    )


def load(session: Session, box: SecretBox, project: str) -> Stored | None:
    row = session.get(SecretRow, secret_name(project))
    return _stored(row, box) if row is not None else None


def load_all(session: Session, box: SecretBox) -> dict[str, Stored]:
    """Every project's client certificate (for the snapshot), keys decrypted."""
    out: dict[str, Stored] = {}
    for row in session.scalars(select(SecretRow).where(SecretRow.name.startswith(PREFIX))):
        stored = _stored(row, box)
        if stored is not None and row.name == secret_name(stored.project):
            out[stored.project] = stored
    return out


def issue(tx: Tx, *, reason: str = "issue") -> Stored:
    """A new client certificate for the transaction's project (replacing any)."""
    ca = internal_ca(tx)
    issued = ca.client_signer(tx.session, tx.secrets, days=DAYS).issue(tx.project, days=DAYS)
    name = secret_name(tx.project)
    row = tx.session.get(SecretRow, name)
    before = _public(row.public) if row is not None and row.public else None
    if row is None:
        row = SecretRow(name=name, value_encrypted="")
        tx.session.add(row)
    row.value_encrypted = tx.secrets.encrypt(issued.key_pem)
    row.public = issued.cert_pem
    row.created_at = utcnow()
    tx.session.flush()
    tx.record(reason, KIND, tx.project, before, _public(issued.cert_pem))
    return Stored(tx.project, issued.cert_pem, issued.key_pem, issued.not_before, issued.not_after)


def _public(cert_pem: str) -> dict[str, str]:
    """What the audit trail keeps of a client certificate (no key)."""
    leaf = x509.load_pem_x509_certificate(cert_pem.encode())
    return {
        "fingerprint_sha256": fingerprint(leaf),
        "not_after": leaf.not_valid_after_utc.isoformat(),
    }


def ensure(tx: Tx) -> Stored:
    """The project's client certificate, issued when it has none or its renewal is due."""
    current = load(tx.session, tx.secrets, tx.project)
    if current is not None and not current.due(utcnow()):
        return current
    return issue(tx, reason="renew" if current is not None else "issue")


def describe(stored: Stored, ca_pem: str) -> OriginClientCertificate:
    leaf = stored.leaf
    return OriginClientCertificate(
        project=stored.project,
        subject=leaf.subject.rfc4514_string(),
        common_name=stored.project,
        uri=f"edgeplane:project:{stored.project}",
        fingerprint_sha256=fingerprint(leaf),
        not_before=stored.not_before,
        not_after=stored.not_after,
        renew_after=stored.not_before + (stored.not_after - stored.not_before) * RENEW_AT,
        cert_pem=stored.cert_pem,
        ca_pem=ca_pem,
    )


def get(tx: Tx) -> OriginClientCertificate:
    """The project's client certificate (issued on first use) and the root that signs it."""
    tx.actor.require(tx.project, Role.VIEWER)
    stored = load(tx.session, tx.secrets, tx.project)
    if stored is None:
        tx.actor.require(tx.project, Role.EDITOR)
        stored = issue(tx)
    return describe(stored, _root(tx))


def renew_now(tx: Tx) -> OriginClientCertificate:
    """A new client certificate (and key) for the project, at once."""
    tx.actor.require(tx.project, Role.EDITOR)
    stored = issue(tx, reason="renew")
    return describe(stored, _root(tx))


def _root(tx: Tx) -> str:
    return InternalCA.root_pem(tx.session) or internal_ca(tx).cert_pem


def in_use(session: Session, project: str) -> bool:
    """Whether any pool of the project asks for the client certificate."""
    for row in session.scalars(
        select(LoadBalancerRow).where(LoadBalancerRow.project_id == project)
    ):
        tls = (row.options or {}).get("tls") or {}
        if tls.get("client_certificate"):
            return True
    config = session.get(CDNConfigRow, project)
    if config is not None:
        for origin in config.origins or []:
            if ((origin or {}).get("tls") or {}).get("client_certificate"):
                return True
    return False


def renew_due(db: Database, now: datetime | None = None) -> int:
    """Renew the client certificates in use whose renewal is due; how many were renewed. A
    failure is logged and tried again at the next pass (the current certificate stays)."""
    now = now or utcnow()
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        due = [
            s.project
            for s in load_all(tx.session, tx.secrets).values()
            if s.due(now) and in_use(tx.session, s.project)
        ]
    renewed = 0
    for project in due:
        try:
            with db.transaction(LOCAL, project) as tx:
                issue(tx, reason="renew")
            renewed += 1
            log.info("renewed the origin client certificate of project %s", project)
        except Exception as exc:  # one project's failure must not stop the others
            log.warning("renewing the origin client certificate of %s failed: %s", project, exc)
    return renewed


__all__ = [
    "DAYS",
    "KIND",
    "Stored",
    "describe",
    "ensure",
    "get",
    "issue",
    "load",
    "load_all",
    "renew_due",
    "renew_now",
]
