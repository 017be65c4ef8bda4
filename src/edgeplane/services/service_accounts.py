"""Service accounts: non-human principals (a CI job, a deploy bot) that own tokens.

A platform admin creates one with roles per project and, optionally, scopes; every token it
owns acts with the account's roles (read at each request) and within the account's scopes and
its own (both must allow a call). Disabling an account stops all its tokens at the next
request; audit events name the account (``service-account ID (tok-...)``) as the actor.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from edgeplane.errors import Conflict, InvalidInput, NotFound
from edgeplane.model import scopes as sc
from edgeplane.model.access import (
    ServiceAccount,
    ServiceAccountCreate,
    ServiceAccountTokenCreate,
    TokenIssued,
)
from edgeplane.model.enums import Role
from edgeplane.services import access
from edgeplane.services.common import lock_name, validate
from edgeplane.store.access_tables import ServiceAccountRoleRow, ServiceAccountRow
from edgeplane.store.db import Tx
from edgeplane.store.tables import ProjectRow, TokenRow, utcnow

KIND = "service_account"


def _model(tx: Tx, row: ServiceAccountRow) -> ServiceAccount:
    tokens = tx.session.scalar(
        select(func.count()).where(
            TokenRow.service_account_id == row.id, TokenRow.revoked_at.is_(None)
        )
    )
    return ServiceAccount(
        id=row.id,
        description=row.description,
        roles=access.account_roles(tx, row.id),
        scopes=row.scopes,
        created_at=row.created_at,
        created_by=row.created_by,
        disabled_at=row.disabled_at,
        tokens=int(tokens or 0),
    )


def _get(tx: Tx, account_id: str) -> ServiceAccountRow:
    row = tx.session.get(ServiceAccountRow, account_id)
    if row is None:
        raise NotFound(f"service account {account_id!r} not found")
    return row


def create(tx: Tx, data: ServiceAccountCreate | dict[str, Any]) -> ServiceAccount:
    tx.actor.require_platform_admin()
    spec = validate(ServiceAccountCreate, data) if isinstance(data, dict) else data
    lock_name(tx, ServiceAccountRow.__tablename__, spec.id)
    if tx.session.get(ServiceAccountRow, spec.id) is not None:
        raise Conflict(f"service account {spec.id!r} already exists", field="id")
    for project in spec.roles:
        if tx.session.get(ProjectRow, project) is None:
            raise InvalidInput.at(f"roles.{project}", f"no project {project!r}")
    scopes = access.checked_scopes(tx, spec.scopes, dict(spec.roles))
    row = ServiceAccountRow(
        id=spec.id,
        description=spec.description,
        scopes=scopes,
        created_at=utcnow(),
        created_by=tx.actor.name,
    )
    tx.session.add(row)
    tx.session.flush()
    for project, role in spec.roles.items():
        tx.session.add(ServiceAccountRoleRow(account_id=spec.id, project_id=project, role=role))
    tx.session.flush()
    out = _model(tx, row)
    tx.record("create", KIND, spec.id, None, out.model_dump(mode="json"), global_object=True)
    return out


def list_accounts(tx: Tx) -> list[ServiceAccount]:
    tx.actor.require_platform_admin()
    rows = tx.session.scalars(select(ServiceAccountRow).order_by(ServiceAccountRow.id))
    return [_model(tx, r) for r in rows]


def get(tx: Tx, account_id: str) -> ServiceAccount:
    tx.actor.require_platform_admin()
    return _model(tx, _get(tx, account_id))


def set_disabled(tx: Tx, account_id: str, disabled: bool) -> ServiceAccount:
    """Disable (every token it owns stops at once) or enable an account."""
    tx.actor.require_platform_admin()
    row = _get(tx, account_id)
    before = _model(tx, row)
    if (row.disabled_at is not None) == disabled:
        return before
    row.disabled_at = utcnow() if disabled else None
    tx.session.flush()
    after = _model(tx, row)
    tx.record(
        "disable" if disabled else "enable",
        KIND,
        account_id,
        before.model_dump(mode="json"),
        after.model_dump(mode="json"),
        global_object=True,
    )
    return after


def issue_token(
    tx: Tx, account_id: str, data: ServiceAccountTokenCreate | dict[str, Any]
) -> TokenIssued:
    """A token owned by the account: the account's roles, its scopes and the token's own."""
    tx.actor.require_platform_admin()
    spec = validate(ServiceAccountTokenCreate, data) if isinstance(data, dict) else data
    row = _get(tx, account_id)
    if row.disabled_at is not None:
        raise Conflict(f"service account {account_id!r} is disabled", field="account_id")
    roles: dict[str, Role] = access.account_roles(tx, account_id)
    scopes = spec.scopes
    if scopes is None and tx.actor.scoped:
        scopes = row.scopes  # checked below against the caller's own
    if scopes is not None and row.scopes is not None:
        held = sc.parse_all(row.scopes)
        for i, text in enumerate(scopes):
            if not sc.covers(held, sc.parse(text)):
                raise InvalidInput.at(
                    f"scopes.{i}", f"{text} is wider than the account's scopes ({row.scopes})"
                )
    checked = access.checked_scopes(tx, scopes, roles) if scopes is not None else None
    return access.issue(
        tx,
        spec.name,
        roles,
        tx.actor.name,
        scopes=checked,
        expires_at=access.expiry_of(spec),
        service_account=account_id,
    )
