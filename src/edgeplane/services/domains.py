"""Domains of a project: added, verified, configured, locked, removed.

A name belongs to one project at a time, and no project may add a name inside or above a name
another project holds (the zones would overlap). A new domain is ``pending`` until its
ownership is verified (``edgeplane.services.verification``), then ``active``: served by the
edge and given a certificate. Names under reserved top-level domains (``.test``,
``.localhost``, ...) are verified at once. Every domain is a zone on the edge nodes' DNS
servers; with ``auto_configure`` its apex and ``www`` answer with the edge (proxied) and a CAA
record names the configured CA.
"""

from __future__ import annotations

import contextlib
import secrets as pysecrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import idna
from sqlalchemy import or_, select

from edgeplane.certificates import internal, versions
from edgeplane.errors import Conflict
from edgeplane.model.dns_records import (
    CHALLENGE_LABEL,
    DEFAULT_TTL,
    DNSRecordOut,
)
from edgeplane.model.domains import (
    Domain,
    DomainAdded,
    DomainCheck,
    DomainCreate,
    DomainList,
    DomainUpdate,
    Verification,
    display_name,
    is_reserved,
    registrable_domain,
)
from edgeplane.model.enums import Environment, Role
from edgeplane.services.common import lock_name, page_size, paged, validate
from edgeplane.settings import Settings
from edgeplane.store.db import Tx
from edgeplane.store.domains import ACTIVE, PENDING, RESERVED, get_row
from edgeplane.store.tables import CertificateRow, DNSRecordRow, DomainRow, utcnow

KIND = "domain"
WELL_KNOWN = "/.well-known/edgeplane-verification/"
ADMIN_LOCALPARTS = ("admin", "administrator", "hostmaster", "postmaster", "webmaster")


def challenge_record(row: DomainRow) -> DNSRecordOut:
    token = str((row.verification or {}).get("token") or "")
    return DNSRecordOut(
        name=CHALLENGE_LABEL,
        fqdn=f"{CHALLENGE_LABEL}.{row.name}.",
        type="TXT",
        ttl=DEFAULT_TTL,
        values=[f'"{token}"'],
        proxied=False,
        managed=True,
    )


def _dt(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value))


def verification_model(row: DomainRow) -> Verification:
    v = row.verification or {}
    token = str(v.get("token") or "")
    state = "verified" if row.status == ACTIVE else ("failed" if v.get("failed") else "pending")
    return Verification(
        state=state,
        method=v.get("method"),
        token=token,
        expires_at=_dt(v.get("expires_at")),
        dns_record=challenge_record(row),
        file_url=f"http://{row.name}{WELL_KNOWN}{token}",
        file_content=token,
        email_addresses=[f"{p}@{row.name}" for p in ADMIN_LOCALPARTS],
        email_sent_at=_dt(v.get("email_sent_at")),
        last_checked_at=_dt(v.get("checked_at")),
        last_result=v.get("result"),
        failures=int(v.get("failures") or 0),
    )


def to_model(tx: Tx, row: DomainRow) -> Domain:
    return _model(row, versions.newest_valid(tx, row.name))


def to_models(tx: Tx, rows: Sequence[DomainRow]) -> list[Domain]:
    """``to_model`` of a page of rows, their certificates read in one query (not one each)."""
    valid = versions.newest_valid_of(tx, (r.name for r in rows))
    return [_model(r, valid.get(r.name)) for r in rows]


def _model(row: DomainRow, valid: CertificateRow | None) -> Domain:
    return Domain(
        domain=row.name,
        display_name=display_name(row.name),
        project=row.project_id,
        environment=Environment(row.environment),
        status=row.status,
        apex=registrable_domain(row.name) == row.name,
        verified_at=row.verified_at,
        auto_configure=bool((row.settings or {}).get("auto_configure", True)),
        locked=bool(row.locked),
        dnssec=bool(row.dnssec),
        verification=verification_model(row),
        certificate=versions.to_model(valid) if valid else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _audit_view(row: DomainRow) -> dict[str, Any]:
    return {
        "domain": row.name,
        "project": row.project_id,
        "environment": row.environment,
        "status": row.status,
        "locked": bool(row.locked),
        "dnssec": bool(row.dnssec),
        "settings": dict(row.settings or {}),
    }


def new_token() -> str:
    return pysecrets.token_hex(16)


def _overlapping(tx: Tx, name: str) -> DomainRow | None:
    """A domain of another project inside or above ``name``."""
    labels = name.split(".")
    parents = [".".join(labels[i:]) for i in range(1, len(labels))]
    q = select(DomainRow).where(
        DomainRow.project_id != tx.project,
        or_(DomainRow.name.in_(parents), DomainRow.name.like(f"%.{name}")),
    )
    return tx.session.scalars(q.limit(1)).first()


def new_dnssec_key(tx: Tx) -> str:
    from edgeplane.protocol.dnssec import generate_key

    return tx.secrets.encrypt(generate_key())


def _auto_records(tx: Tx, row: DomainRow, settings: Settings) -> None:
    now = utcnow()
    wanted = [
        ("@", "A", (), True),
        ("www", "A", (), True),
        (
            "@",
            "CAA",
            (f'0 issue "{settings.caa_issuer}"', f'0 issuewild "{settings.caa_issuer}"'),
            False,
        ),
    ]
    for name, rtype, values, proxied in wanted:
        tx.session.add(
            DNSRecordRow(
                domain=row.name,
                name=name,
                type=rtype,
                ttl=DEFAULT_TTL,
                values=sorted(values),
                proxied=proxied,
                created_at=now,
                updated_at=now,
            )
        )


def mark_verified(tx: Tx, row: DomainRow, method: str, result: str) -> None:
    """The domain is proved to be the project's: served by the edge, with a certificate."""
    now = utcnow()
    v = dict(row.verification or {})
    v.update(method=method, result=result, checked_at=now.isoformat(), failures=0)
    v.pop("failed", None)
    row.verification = v
    row.status = ACTIVE
    row.verified_at = now
    if versions.newest_valid(tx, row.name) is None:
        internal.issue(tx, row.name)


def _refuse_clash(tx: Tx, spec: DomainCreate) -> None:
    existing = tx.session.get(DomainRow, spec.domain)
    if existing is not None:
        where = "this project" if existing.project_id == tx.project else "another project"
        raise Conflict(f"domain {spec.domain!r} is already added to {where}", field="domain")
    other = _overlapping(tx, spec.domain)
    if other is not None:
        raise Conflict(
            f"domain {spec.domain!r} overlaps {other.name!r}, which another project holds",
            field="domain",
        )


def check(tx: Tx, data: DomainCreate | dict[str, Any]) -> DomainCheck:
    """What ``add`` would refuse, without adding: the dashboard's validation as you type."""
    tx.actor.require(tx.project, Role.EDITOR)
    spec = validate(DomainCreate, data) if isinstance(data, dict) else data
    _refuse_clash(tx, spec)
    return DomainCheck(
        domain=spec.domain,
        display_name=display_name(spec.domain),
        apex=registrable_domain(spec.domain) == spec.domain,
        verification_required=not is_reserved(spec.domain),
    )


def add(tx: Tx, data: DomainCreate | dict[str, Any], settings: Settings) -> DomainAdded:
    tx.actor.require(tx.project, Role.EDITOR)
    spec = validate(DomainCreate, data) if isinstance(data, dict) else data
    lock_name(tx, DomainRow.__tablename__, spec.domain)
    _refuse_clash(tx, spec)
    now = utcnow()
    expires = now + timedelta(seconds=settings.verification_token_ttl_s)
    row = DomainRow(
        name=spec.domain,
        project_id=tx.project,
        environment=(spec.environment or Environment.PROD).value,
        status=PENDING,
        verified_at=None,
        settings={"auto_configure": spec.auto_configure},
        verification={"token": new_token(), "expires_at": expires.isoformat()},
        locked=spec.locked,
        dnssec=spec.dnssec,
        dnssec_key_encrypted=new_dnssec_key(tx) if spec.dnssec else None,
        zone_revision=tx.next_revision(),
        checks={},
        created_at=now,
        updated_at=now,
    )
    tx.session.add(row)
    tx.session.flush()
    if spec.auto_configure:
        _auto_records(tx, row, settings)
    reserved = is_reserved(spec.domain)
    if reserved:
        mark_verified(tx, row, RESERVED, f"{spec.domain} is a reserved name: nothing to verify")
    tx.session.flush()
    tx.record("create", KIND, row.name, None, _audit_view(row))
    return DomainAdded(domain_config=to_model(tx, row), verification_required=not reserved)


def get(tx: Tx, domain: str) -> Domain:
    tx.actor.require(tx.project, Role.VIEWER)
    return to_model(tx, get_row(tx, domain))


def search_term(q: str) -> str:
    """A search's text as names are stored and shown: lower case, UTS 46 mapped (full-width
    dots and letters, ``ß``), without a trailing dot; text IDNA refuses stays as typed."""
    text = q.strip().lower()
    if not text.isascii():
        # Text no name can hold (a code point IDNA refuses) is searched as typed: it finds
        # nothing, as a search box should answer, rather than an error.
        with contextlib.suppress(idna.IDNAError):
            text = idna.uts46_remap(text, std3_rules=False, transitional=False)
    return text.rstrip(".") or text


def _unicode_matches(
    tx: Tx, term: str, cursor: str | None, limit: int | None
) -> tuple[list[DomainRow], str | None]:
    """Names whose U-label form contains a non-ASCII ``term``: only names with an A-label
    (``xn--``) can, so those are read and decoded."""
    size = page_size(limit)
    q = select(DomainRow.name).where(
        DomainRow.project_id == tx.project, DomainRow.name.contains("xn--", autoescape=True)
    )
    if cursor:
        q = q.where(DomainRow.name > cursor)
    hits: list[str] = []
    for name in tx.session.scalars(q.order_by(DomainRow.name)):
        if term in display_name(name):
            hits.append(name)
            if len(hits) > size:
                break
    nxt = hits[size - 1] if len(hits) > size else None
    rows = [tx.session.get(DomainRow, name) for name in hits[:size]]
    return [r for r in rows if r is not None], nxt


def list_page(
    tx: Tx, *, cursor: str | None = None, limit: int | None = None, q: str | None = None
) -> DomainList:
    """The project's domains by name, a page at a time; ``q`` keeps the names containing it
    (case-insensitive; Unicode text is matched against the names' U-label form)."""
    tx.actor.require(tx.project, Role.VIEWER)
    term = search_term(q) if q else ""
    if term and not term.isascii():
        rows, nxt = _unicode_matches(tx, term, cursor, limit)
        return DomainList(domains=to_models(tx, rows), next_cursor=nxt)
    query = select(DomainRow).where(DomainRow.project_id == tx.project)
    if term:
        query = query.where(DomainRow.name.contains(term, autoescape=True))
    rows, nxt = paged(tx, query, DomainRow.name, cursor, limit)
    return DomainList(domains=to_models(tx, rows), next_cursor=nxt)


def update(tx: Tx, domain: str, data: DomainUpdate | dict[str, Any]) -> Domain:
    tx.actor.require(tx.project, Role.EDITOR)
    spec = validate(DomainUpdate, data) if isinstance(data, dict) else data
    row = get_row(tx, domain, lock=True)
    before = _audit_view(row)
    if spec.locked is not None:
        row.locked = spec.locked
    if spec.dnssec is not None and spec.dnssec != row.dnssec:
        row.dnssec = spec.dnssec
        if spec.dnssec and not row.dnssec_key_encrypted:
            row.dnssec_key_encrypted = new_dnssec_key(tx)
        row.zone_revision = tx.next_revision()
    after = _audit_view(row)
    if after != before:
        row.updated_at = utcnow()
        tx.record("update", KIND, row.name, before, after)
    return to_model(tx, row)


def delete(tx: Tx, domain: str) -> None:
    tx.actor.require(tx.project, Role.EDITOR)
    row = get_row(tx, domain)
    if row.locked:
        raise Conflict(
            f'domain {row.name!r} is locked; unlock it first (PATCH {{"locked": false}})',
            field="locked",
        )
    before = _audit_view(row)
    versions.delete_for_domain(tx, row.name)
    tx.session.delete(row)
    tx.record("delete", KIND, row.name, before, None)
