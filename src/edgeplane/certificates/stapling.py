"""The control plane fetches the OCSP staples of the certificates the edge serves.

Once per run (``services.jobs``): every active, unexpired certificate version whose leaf names
an OCSP responder (internal CA, uploads, ACME alike) gets a response fetched by the control
plane, not by the nodes (one fetch for every node, a staple from the first handshake, no
egress needed on the edge), checked (``staples.check``) and stored in ``ocsp_staples``. A new
response bumps the revision, so the snapshot carries it to every node. It is fetched again at
half its validity; when a fetch fails the last good one is kept until its ``nextUpdate`` (then
dropped, with a bump) and the failure is kept in the row (``GET /ssl/{domain}`` shows it) and
logged with the URL and the reason, nothing secret.

Fetches run outside transactions, several at once; results are written in one transaction
per project, so a run with many new staples is one revision per project.
"""

from __future__ import annotations

import base64
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from threading import Event, Lock

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from edgeplane.certificates import ocsp_responder, serials, staples, versions
from edgeplane.certificates.internal_ca import InternalCA
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.store.db import Database
from edgeplane.store.tables import CertificateRow, OcspStapleRow, utcnow

log = logging.getLogger("edgeplane.ocsp")

KIND = "ocsp_staple"
TIMEOUT_S = 5.0  # a pass never holds a stopping control plane long
MAX_RESPONSE_BYTES = 64 * 1024
MAX_PER_RUN = 500
PARALLEL = 8

Fetch = Callable[[str, bytes], bytes]


def fetch_http(url: str, request: bytes) -> bytes:
    """POST the request to the responder (RFC 6960 A.1); the DER response."""
    http = urllib.request.Request(
        url, data=request, method="POST", headers={"Content-Type": "application/ocsp-request"}
    )
    try:
        with urllib.request.urlopen(http, timeout=TIMEOUT_S) as answer:
            body: bytes = answer.read(MAX_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise staples.StapleError(f"the responder answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise staples.StapleError(f"the responder is unreachable: {reason}") from None
    if len(body) > MAX_RESPONSE_BYTES:
        raise staples.StapleError(f"the response is over {MAX_RESPONSE_BYTES} bytes")
    return body


@dataclass(frozen=True)
class Due:
    project: str
    certificate_id: str
    cert_pem: str


@dataclass(frozen=True)
class Outcome:
    due: Due
    url: str
    response: bytes | None = None
    checked: staples.Checked | None = None
    error: str | None = None


def _due(db: Database, now: datetime) -> tuple[list[Due], list[tuple[str, str]]]:
    """Certificates to fetch a staple for, and kept staples that expired (to drop)."""
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        current = tx.session.execute(
            select(CertificateRow.project_id, CertificateRow.id).where(
                CertificateRow.status == versions.ACTIVE,
                CertificateRow.not_after > now,
                CertificateRow.not_before <= now,
            )
        ).all()
        light = select(  # not the responses: light columns, every run
            OcspStapleRow.project_id,
            OcspStapleRow.certificate_id,
            OcspStapleRow.ocsp_url,
            OcspStapleRow.next_update,
            OcspStapleRow.next_fetch_at,
            OcspStapleRow.response.is_not(None).label("has_response"),
        )
        rows = {(r.project_id, r.certificate_id): r for r in tx.session.execute(light)}
        wanted: list[tuple[str, str]] = []
        expired: list[tuple[str, str]] = []
        refresh: list[tuple[str, str, datetime]] = []
        for project, cert_id in current:
            row = rows.get((project, cert_id))
            if row is None:
                wanted.append((project, cert_id))
                continue
            if row.has_response and not staples.usable(row.next_update, now):
                expired.append((project, cert_id))
            if row.ocsp_url:
                refresh.append((project, cert_id, row.next_fetch_at or now))
        until = staples.horizon([at for _p, _c, at in refresh], now)
        wanted += [(p, c) for p, c, at in sorted(refresh, key=lambda r: r[2]) if at <= until]
        picked = wanted[:MAX_PER_RUN]
        pems = {
            (r.project_id, r.id): r.cert_pem
            for r in tx.session.execute(
                select(CertificateRow.project_id, CertificateRow.id, CertificateRow.cert_pem).where(
                    CertificateRow.id.in_({cert_id for _p, cert_id in picked})
                )
            )
        }
        due = [Due(p, c, pems[(p, c)]) for p, c in picked if (p, c) in pems]
        return due, expired


def _roots(db: Database) -> list[x509.Certificate]:
    """Issuers that may be missing from a chain: the internal root (legacy leaves it signed)."""
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        pem = InternalCA.root_pem(tx.session)
    return [x509.load_pem_x509_certificate(pem.encode())] if pem else []


def _fetch_one(due: Due, roots: list[x509.Certificate], fetch: Fetch, now: datetime) -> Outcome:
    try:
        chain = staples.chain(due.cert_pem)
        leaf = chain[0]
    except (ValueError, IndexError):
        return Outcome(due, "", error="the stored certificate does not parse")
    url = staples.ocsp_url(leaf)
    if url is None:
        return Outcome(due, "")
    try:
        issuer = staples.issuer_of(leaf, [*chain[1:], *roots])
        response = fetch(url, staples.request_der(leaf, issuer))
        checked = staples.check(response, leaf, issuer, now)
    except staples.StapleError as exc:
        return Outcome(due, url, error=str(exc))
    return Outcome(due, url, response=response, checked=checked)


def _write(db: Database, project: str, outcomes: list[Outcome], now: datetime) -> int:
    """Store one project's outcomes; the number of staples that changed (each a record)."""
    changed = 0
    ids = {out.due.certificate_id for out in outcomes}
    with db.transaction(LOCAL, project) as tx:
        # Two queries for the lot: a row read on its own per certificate was most of the
        # job's time after a bulk load of 10,000 certificates.
        alive = set(
            tx.session.scalars(
                select(CertificateRow.id).where(
                    CertificateRow.project_id == project, CertificateRow.id.in_(ids)
                )
            )
        )
        rows = {
            r.certificate_id: r
            for r in tx.session.scalars(
                select(OcspStapleRow).where(
                    OcspStapleRow.project_id == project, OcspStapleRow.certificate_id.in_(ids)
                )
            )
        }
        for out in outcomes:
            key = (project, out.due.certificate_id)
            if key[1] not in alive:
                continue  # deleted meanwhile
            row = rows.get(key[1])
            if row is None:
                row = OcspStapleRow(project_id=project, certificate_id=key[1], attempts=0)
                tx.session.add(row)
            row.ocsp_url = out.url
            if not out.url:
                row.next_fetch_at = None
                row.last_error = out.error
                continue
            if out.checked is not None and out.response is not None:
                row.response = base64.b64encode(out.response).decode()
                row.cert_status = out.checked.status
                row.this_update = out.checked.this_update
                row.next_update = out.checked.next_update
                row.fetched_at = now
                row.attempts = 0
                row.last_error = None
                row.next_fetch_at = staples.refresh_at(
                    out.checked.this_update, out.checked.next_update, now
                )
                tx.record("staple", KIND, key[1], None, _view(row))
                changed += 1
                continue
            row.attempts = (row.attempts or 0) + 1
            row.last_error = out.error
            kept = row.response is not None and staples.usable(row.next_update, now)
            row.next_fetch_at = staples.retry_at(
                row.attempts, now, row.next_update if kept else None
            )
            log.warning(
                "OCSP staple for certificate %s (%s) failed: %s; %s",
                key[1],
                out.url,
                out.error,
                f"the last good one is kept until {row.next_update}" if kept else "no staple",
            )
    return changed


def _drop_expired(db: Database, expired: list[tuple[str, str]], now: datetime) -> None:
    by_project: dict[str, set[str]] = {}
    for project, cert_id in expired:
        by_project.setdefault(project, set()).add(cert_id)
    for project, ids in sorted(by_project.items()):
        ordered = sorted(ids)
        for start in range(0, len(ordered), MAX_PER_RUN):  # a bounded IN list
            _drop_some(db, project, ordered[start : start + MAX_PER_RUN], now)


def _drop_some(db: Database, project: str, ids: list[str], now: datetime) -> None:
    with db.transaction(LOCAL, project) as tx:
        rows = tx.session.scalars(
            select(OcspStapleRow)
            .where(OcspStapleRow.project_id == project, OcspStapleRow.certificate_id.in_(ids))
            .order_by(OcspStapleRow.certificate_id)
        ).all()
        for row in rows:
            if row.response is None or staples.usable(row.next_update, now):
                continue
            row.response = None
            row.cert_status = None
            tx.record("expire", KIND, row.certificate_id, None, _view(row))
            log.warning(
                "OCSP staple for certificate %s expired: no longer stapled", row.certificate_id
            )


def _view(row: OcspStapleRow) -> dict[str, object]:
    return {
        "certificate_id": row.certificate_id,
        "ocsp_url": row.ocsp_url,
        "status": row.cert_status,
        "this_update": row.this_update.isoformat() if row.this_update else None,
        "next_update": row.next_update.isoformat() if row.next_update else None,
    }


def own_or_http(db: Database) -> Fetch:
    """Asks the internal CA's responder in process when the URL is this control plane's own
    (no request to itself, whether or not its public URL is reachable from here), any other
    responder over HTTP. The internal CA is loaded (its keys decrypted) once per
    ``own_or_http``, which a run calls once, not once per certificate."""
    loaded: list[InternalCA | None] = []
    lock = Lock()

    def signers() -> list[tuple[x509.Certificate, ec.EllipticCurvePrivateKey]]:
        with lock:
            if not loaded:
                with db.read(LOCAL, PLATFORM_PROJECT) as tx:
                    loaded.append(InternalCA.load(tx.session, tx.secrets))
        ca = loaded[0]
        return ca.signers() if ca is not None else []

    def fetch(url: str, request: bytes) -> bytes:
        if not db.ocsp_url or url != db.ocsp_url:
            return fetch_http(url, request)
        try:
            keys = signers()
            with db.read(LOCAL, PLATFORM_PROJECT) as tx:
                return ocsp_responder.respond(
                    request, keys, lambda serial: serials.lookup(tx.session, serial), utcnow()
                )
        except ocsp_responder.MalformedRequest as exc:
            raise staples.StapleError(str(exc)) from None

    return fetch


def run_once(
    db: Database,
    *,
    fetch: Fetch | None = None,
    now: datetime | None = None,
    stopping: Event | None = None,
) -> int:
    """Fetch the staples that are due (``fetch``: by default ``own_or_http``); the number of
    new staples stored. With ``stopping`` set, the staples not fetched yet wait for the next
    pass (those fetched are stored)."""
    fetch = fetch or own_or_http(db)
    now = now or utcnow()
    due, expired = _due(db, now)
    if expired:
        _drop_expired(db, expired, now)
    if not due:
        return 0
    roots = _roots(db)
    stop = stopping or Event()
    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(due))) as pool:
        fetched = pool.map(
            lambda d: None if stop.is_set() else _fetch_one(d, roots, fetch, now), due
        )
        outcomes = [out for out in fetched if out is not None]
    by_project: dict[str, list[Outcome]] = {}
    for out in outcomes:
        by_project.setdefault(out.due.project, []).append(out)
    return sum(_write(db, project, outs, now) for project, outs in sorted(by_project.items()))
