"""Domains of a project: added (with an internal certificate at once), listed, removed.

A name belongs to one project at a time. A domain is ``active`` from its creation (served by
the edge); ownership verification makes new domains ``pending`` until verified.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from edgeplane.errors import Conflict, NotFound
from edgeplane.model.domains import Domain, DomainAdded, DomainCreate, DomainList, normalise_domain
from edgeplane.model.enums import Environment, Role
from edgeplane.services import certificates
from edgeplane.services.common import lock_name, paged, validate
from edgeplane.store.db import Tx
from edgeplane.store.tables import DomainRow, utcnow

KIND = "domain"
ACTIVE = "active"


def to_model(tx: Tx, row: DomainRow) -> Domain:
    valid = certificates.newest_valid(tx, row.name)
    return Domain(
        domain=row.name,
        project=row.project_id,
        environment=Environment(row.environment),
        status=row.status,
        verified_at=row.verified_at,
        auto_configure=bool((row.settings or {}).get("auto_configure", True)),
        certificate=certificates.to_model(valid) if valid else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _audit_view(row: DomainRow) -> dict[str, Any]:
    return {
        "domain": row.name,
        "project": row.project_id,
        "environment": row.environment,
        "status": row.status,
        "settings": dict(row.settings or {}),
    }


def add(tx: Tx, data: DomainCreate | dict[str, Any]) -> DomainAdded:
    tx.actor.require(tx.project, Role.EDITOR)
    spec = validate(DomainCreate, data) if isinstance(data, dict) else data
    lock_name(tx, DomainRow.__tablename__, spec.domain)
    existing = tx.session.get(DomainRow, spec.domain)
    if existing is not None:
        where = "this project" if existing.project_id == tx.project else "another project"
        raise Conflict(f"domain {spec.domain!r} is already added to {where}", field="domain")
    now = utcnow()
    row = DomainRow(
        name=spec.domain,
        project_id=tx.project,
        environment=(spec.environment or Environment.PROD).value,
        status=ACTIVE,
        verified_at=None,
        settings={"auto_configure": spec.auto_configure},
        created_at=now,
        updated_at=now,
    )
    tx.session.add(row)
    tx.session.flush()
    tx.record("create", KIND, row.name, None, _audit_view(row))
    certificates.issue_internal(tx, row.name)
    return DomainAdded(domain_config=to_model(tx, row), verification_required=False)


def _get(tx: Tx, domain: str) -> DomainRow:
    try:
        name = normalise_domain(domain)
    except ValueError:
        name = domain
    row = tx.session.get(DomainRow, name)
    if row is None or row.project_id != tx.project:
        raise NotFound(f"domain {domain!r} not found in project {tx.project!r}")
    return row


def get(tx: Tx, domain: str) -> Domain:
    tx.actor.require(tx.project, Role.VIEWER)
    return to_model(tx, _get(tx, domain))


def list_page(tx: Tx, *, cursor: str | None = None, limit: int | None = None) -> DomainList:
    tx.actor.require(tx.project, Role.VIEWER)
    q = select(DomainRow).where(DomainRow.project_id == tx.project)
    rows, nxt = paged(tx, q, DomainRow.name, cursor, limit)
    return DomainList(domains=[to_model(tx, r) for r in rows], next_cursor=nxt)


def delete(tx: Tx, domain: str) -> None:
    tx.actor.require(tx.project, Role.EDITOR)
    row = _get(tx, domain)
    before = _audit_view(row)
    certificates.delete_for_domain(tx, row.name)
    tx.session.delete(row)
    tx.record("delete", KIND, row.name, before, None)
