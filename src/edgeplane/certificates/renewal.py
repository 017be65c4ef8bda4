"""Renewing certificates on their own, and the alerts before they expire.

The certificate each domain is served with (its newest valid version) is renewed once
``renew_at_fraction`` (two thirds) of its lifetime has passed, or earlier when the CA's
renewal information (ARI) suggests so. A failed attempt is retried with exponential backoff
(``renew_retry_s`` doubling up to ``RETRY_MAX_S``); the old certificate is served meanwhile.
Uploaded certificates are never renewed here: an alert says when they expire. The client
certificates the edge presents to private origins are renewed here too
(``origin_client.renew_due``). A failed
attempt raises an alert (``certificate_renewal_failed``); the expiry alerts, 30, 7 and 1 days
before, are alert rules on ``certificate_days_left`` (``edgeplane.services.alert_rules``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from threading import Event
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from edgeplane.certificates import internal, origin_client, versions
from edgeplane.certificates.acme import client as acme_client
from edgeplane.certificates.acme import orders as acme_orders
from edgeplane.certificates.schedule import RENEWABLE, backoff_s, due_at
from edgeplane.errors import Conflict, EdgeplaneError, NotFound
from edgeplane.model.certificates import CertificateRequest
from edgeplane.model.enums import Role
from edgeplane.services import alerts
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.store.db import Database, Tx
from edgeplane.store.tables import CertificateRow, utcnow

log = logging.getLogger("edgeplane.renewal")

ARI_EVERY = timedelta(hours=6)


@dataclass(frozen=True)
class Due:
    project: str
    domain: str
    certificate_id: str


def renewal_request(tx: Tx, domain: str) -> CertificateRequest:
    """What renewing the domain's certificate asks for: the same issuer, names and key type."""
    tx.actor.require(tx.project, Role.EDITOR)
    row = versions.verified_domain(tx, domain)
    current = versions.newest_valid(tx, row.name)
    if current is None:
        raise NotFound(f"domain {row.name!r} has no valid certificate to renew")
    if current.issuer == "custom":
        raise Conflict(
            f"the certificate of {row.name!r} was uploaded: upload its successor", field="type"
        )
    if current.issuer == "internal":
        return CertificateRequest(type="internal", auto_renew=current.auto_renew)
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


def served(tx: Tx, now: datetime) -> list[CertificateRow]:
    """Each active domain's newest valid certificate (what the edge serves)."""
    rows = tx.session.scalars(versions.served_select(now, CertificateRow))
    out: dict[str, CertificateRow] = {}
    for row in rows:
        out.setdefault(row.domain, row)
    return list(out.values())


def find_due(tx: Tx, settings: Settings, now: datetime) -> list[Due]:
    out = []
    for row in served(tx, now):
        if not row.auto_renew or row.issuer not in RENEWABLE:
            continue
        renewal = row.renewal or {}
        if renewal.get("renewed_by"):
            continue
        nxt = renewal.get("next_attempt_at")
        if nxt and datetime.fromisoformat(str(nxt)) > now:
            continue
        if now >= due_at(row, settings.renew_at_fraction):
            out.append(Due(row.project_id, row.domain, row.id))
    return out


def _update(db: Database, due: Due, changes: dict[str, Any]) -> None:
    with db.transaction(LOCAL, due.project) as tx:
        row = tx.session.get(CertificateRow, (due.project, due.certificate_id))
        if row is not None:
            row.renewal = {**(row.renewal or {}), **changes}


def renewal_key(tx: Tx, due: Due) -> str | None:
    """The private key a renewal keeps: the renewed certificate's.

    The edge swaps a name's certificate without a reload, and nginx reads a certificate's
    file twice per handshake (chain, then key): a handshake in the middle of the swap would
    get the old chain with the new key and fail. With the key kept, every pair matches (as
    certbot's ``--reuse-key``); a new key comes with a certificate asked for anew."""
    row = tx.session.get(CertificateRow, (due.project, due.certificate_id))
    if row is None or not row.key_encrypted:
        return None
    return tx.secrets.decrypt(row.key_encrypted)


def renew(db: Database, settings: Settings, due: Due) -> bool:
    """One renewal attempt (network I/O outside transactions); True when it succeeded."""
    now = utcnow()
    try:
        with db.read(LOCAL, due.project) as tx:
            request = renewal_request(tx, due.domain)
            key_pem = renewal_key(tx, due)
        if request.type == "internal":
            with db.transaction(LOCAL, due.project) as tx:
                new = internal.provision(
                    tx, due.domain, key_pem, auto_renew=request.auto_renew
                )
        else:
            new = acme_orders.provision(
                db, LOCAL, due.project, due.domain, request, settings, key_pem=key_pem
            )
    except (acme_client.AcmeError, EdgeplaneError, ValueError) as exc:
        with db.read(LOCAL, due.project) as tx:
            row = tx.session.get(CertificateRow, (due.project, due.certificate_id))
            attempts = int((row.renewal or {}).get("attempts") or 0) + 1 if row else 1
        wait = backoff_s(attempts, settings.renew_retry_s)
        _update(
            db,
            due,
            {
                "attempts": attempts,
                "last_attempt_at": now.isoformat(),
                "last_error": str(exc)[:2000],
                "next_attempt_at": (now + timedelta(seconds=wait)).isoformat(),
            },
        )
        with db.transaction(LOCAL, due.project) as tx:
            alerts.raise_once(
                tx,
                due.project,
                "certificate_renewal_failed",
                due.certificate_id,
                f"attempt-{attempts}",
                "warning",
                f"renewing the certificate of {due.domain} failed (attempt {attempts}, next in "
                f"{wait:.0f} s): {exc}",
                {"domain": due.domain, "attempts": attempts},
            )
        log.warning("renewal of %s failed (attempt %d): %s", due.domain, attempts, exc)
        return False
    _update(
        db,
        due,
        {
            "renewed_by": new.certificate.id,
            "last_attempt_at": now.isoformat(),
            "last_error": None,
            "next_attempt_at": None,
        },
    )
    log.info("renewed the certificate of %s: %s", due.domain, new.certificate.id)
    return True


def check_ari(db: Database, settings: Settings, now: datetime) -> int:
    """Ask the CA for renewal information about ACME certificates not asked recently."""
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        wanted = [
            (r.project_id, r.id, r.cert_pem)
            for r in served(tx, now)
            if r.issuer == "lets_encrypt"
            and (
                not (r.renewal or {}).get("ari_checked_at")
                or datetime.fromisoformat(str(r.renewal["ari_checked_at"])) < now - ARI_EVERY
            )
        ]
    if not wanted:
        return 0
    config = acme_orders.acme_settings(settings)
    key, url = acme_orders.account(db, config)
    for project, cert_id, pem in wanted:
        suggested = acme_client.renewal_time(config, key, url, pem)
        changes: dict[str, Any] = {"ari_checked_at": now.isoformat()}
        if suggested is not None:
            changes["ari_time"] = suggested.isoformat()
        _update(db, Due(project, "", cert_id), changes)
    return len(wanted)


def run_once(db: Database, settings: Settings, *, stopping: Event | None = None) -> int:
    """One pass of the renewal loop; the number of renewals attempted (with ``stopping`` set,
    the renewals not started yet wait for the next pass)."""
    now = utcnow()
    try:
        check_ari(db, settings, now)
    except (acme_client.AcmeError, ValueError) as exc:
        log.debug("renewal information not read: %s", exc)
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        due = find_due(tx, settings, now)
    attempted = origin_client.renew_due(db, now)  # the edge's client certificates
    for item in due:
        if stopping is not None and stopping.is_set():
            return attempted
        renew(db, settings, item)
        attempted += 1
    return attempted
