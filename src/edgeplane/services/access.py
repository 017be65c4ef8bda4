"""Projects, API tokens (stored as hashes) and authentication."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select, update

from edgeplane.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from edgeplane.model import scopes as sc
from edgeplane.model.access import (
    Expiry,
    Project,
    ProjectCreate,
    Token,
    TokenCreate,
    TokenIssued,
    TokenRotate,
)
from edgeplane.model.enums import Role
from edgeplane.services.common import lock_name, validate
from edgeplane.store.access_tables import ServiceAccountRoleRow, ServiceAccountRow
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT, Actor
from edgeplane.store.db import Database, Tx
from edgeplane.store.tables import (
    DataCenterRow,
    DRConfigRow,
    LoadBalancerRow,
    ProjectRow,
    ServerRow,
    TokenRoleRow,
    TokenRow,
    utcnow,
)

TOKEN_PREFIX = "ep_"
LAST_USED_GRANULARITY = timedelta(minutes=1)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_roles(tx: Tx, token_id: str) -> dict[str, Role]:
    """A token's roles: its own, or for a service account's token the account's."""
    account = tx.session.scalar(select(TokenRow.service_account_id).where(TokenRow.id == token_id))
    if account is not None:
        return account_roles(tx, account)
    rows = tx.session.scalars(select(TokenRoleRow).where(TokenRoleRow.token_id == token_id))
    return {r.project_id: Role(r.role) for r in rows}


def account_roles(tx: Tx, account_id: str) -> dict[str, Role]:
    rows = tx.session.scalars(
        select(ServiceAccountRoleRow).where(ServiceAccountRoleRow.account_id == account_id)
    )
    return {r.project_id: Role(r.role) for r in rows}


def _token_model(tx: Tx, row: TokenRow) -> Token:
    grace = row.previous_expires_at
    return Token(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        roles=token_roles(tx, row.id),
        scope=row.scope if row.scope in ("edge", "metrics") else "api",
        created_at=row.created_at,
        created_by=row.created_by,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        scopes=row.scopes,
        expires_at=row.expires_at,
        rotated_at=row.rotated_at,
        previous_valid_until=grace if grace is not None and grace > utcnow() else None,
        service_account=row.service_account_id,
    )


# Projects ---------------------------------------------------------------------------------


def _project_model(row: ProjectRow) -> Project:
    return Project(id=row.id, name=row.name, created_at=row.created_at)


def create_project(tx: Tx, data: ProjectCreate | dict[str, Any]) -> Project:
    tx.actor.require_platform_admin()
    spec = validate(ProjectCreate, data) if isinstance(data, dict) else data
    lock_name(tx, ProjectRow.__tablename__, spec.id)
    if tx.session.get(ProjectRow, spec.id) is not None:
        raise Conflict(f"project {spec.id!r} already exists", field="id")
    row = ProjectRow(id=spec.id, name=spec.name or spec.id, created_at=utcnow())
    tx.session.add(row)
    if tx.actor.token_id is not None:
        tx.session.add(TokenRoleRow(token_id=tx.actor.token_id, project_id=spec.id, role="admin"))
    tx.session.flush()
    out = _project_model(row)
    tx.record("create", "project", spec.id, None, out.model_dump(mode="json"), global_object=True)
    return out


def list_projects(tx: Tx) -> list[Project]:
    rows = tx.session.scalars(select(ProjectRow).order_by(ProjectRow.id))
    return [
        _project_model(r)
        for r in rows
        if tx.actor.platform_admin or tx.actor.role_in(r.id) is not None
    ]


def get_project(tx: Tx, project_id: str) -> Project:
    row = tx.session.get(ProjectRow, project_id)
    if row is None or (not tx.actor.platform_admin and tx.actor.role_in(project_id) is None):
        raise NotFound(f"project {project_id!r} not found")
    return _project_model(row)


def require_project(tx: Tx) -> None:
    """The transaction's project must exist (checked once per request)."""
    if tx.session.get(ProjectRow, tx.project) is None:
        raise NotFound(f"project {tx.project!r} not found")


def delete_project(tx: Tx, project_id: str) -> None:
    tx.actor.require_platform_admin()
    if project_id == PLATFORM_PROJECT:
        raise Conflict("the default project cannot be deleted")
    row = tx.session.get(ProjectRow, project_id)
    if row is None:
        raise NotFound(f"project {project_id!r} not found")
    for table, what in (
        (ServerRow, "servers"),
        (DataCenterRow, "data centers"),
        (LoadBalancerRow, "load balancers"),
        (DRConfigRow, "DR configs"),
    ):
        n = tx.session.scalar(select(func.count()).where(table.project_id == project_id))
        if n:
            raise Conflict(f"project {project_id!r} still has {n} {what}; delete them first")
    before = _project_model(row)
    tx.session.delete(row)
    tx.record(
        "delete", "project", project_id, before.model_dump(mode="json"), None, global_object=True
    )


# Tokens -----------------------------------------------------------------------------------


def issue(
    tx: Tx,
    name: str,
    roles: dict[str, Role],
    created_by: str,
    scope: str = "api",
    *,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
    service_account: str | None = None,
) -> TokenIssued:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(30)
    row = TokenRow(
        id=f"tok-{secrets.token_hex(6)}",
        name=name,
        secret_hash=hash_secret(secret),
        prefix=secret[:10],
        created_at=utcnow(),
        created_by=created_by,
        scope=scope,
        scopes=scopes,
        expires_at=expires_at,
        service_account_id=service_account,
    )
    tx.session.add(row)
    tx.session.flush()
    if service_account is None:
        for project, role in roles.items():
            tx.session.add(TokenRoleRow(token_id=row.id, project_id=project, role=role.value))
    tx.session.flush()
    view = _token_model(tx, row)
    tx.record("create", "token", row.id, None, view.model_dump(mode="json"), global_object=True)
    return TokenIssued(**view.model_dump(), token=secret)


def expiry_of(spec: Expiry) -> datetime | None:
    """When a token made from ``spec`` expires; InvalidInput for a time already past."""
    if spec.ttl_s is not None:
        return utcnow() + timedelta(seconds=spec.ttl_s)
    if spec.expires_at is not None and spec.expires_at <= utcnow():
        raise InvalidInput.at("expires_at", "is in the past: a token must expire later")
    return spec.expires_at


def checked_scopes(
    tx: Tx, given: Sequence[str] | None, roles: dict[str, Role], field: str = "scopes"
) -> list[str] | None:
    """The scopes of a new token or account, normalised, after the checks: each one usable
    with ``roles`` (a scope is never wider than the role: 422 naming it), each one held by
    the caller when the caller has scopes itself (403: a token cannot hand on more than it
    has)."""
    if given is None:
        if tx.actor.scoped:
            raise InvalidInput.at(
                field,
                "is required: the calling token has scopes, so what it makes needs scopes "
                "it holds itself",
            )
        return None
    best = max(roles.values(), key=lambda r: r.rank, default=None)
    for i, text in enumerate(given):
        scope = sc.parse(text)
        needed = sc.min_role(scope)
        if best is None or not best.allows(needed):
            raise InvalidInput.at(
                f"{field}.{i}",
                f"{scope} needs the {needed.value} role, wider than the roles given "
                f"(at most {best.value if best else 'none'}): a scope never grants more "
                "than the role",
            )
        for held in tx.actor.scope_sets:
            if not sc.covers(held, scope):
                raise Forbidden(
                    f"the calling token's scopes do not cover {scope}: a token can only hand "
                    "on scopes it holds",
                    field=f"{field}.{i}",
                )
    return sc.normalise(given)


def create_token(tx: Tx, data: TokenCreate | dict[str, Any]) -> TokenIssued:
    spec = validate(TokenCreate, data) if isinstance(data, dict) else data
    expires_at = expiry_of(spec)
    if spec.scope in ("edge", "metrics"):
        if spec.roles:
            raise InvalidInput.at("roles", f"an {spec.scope} token has no roles; leave roles out")
        tx.actor.require_platform_admin()
        return issue(tx, spec.name, {}, tx.actor.name, scope=spec.scope, expires_at=expires_at)
    if not spec.roles:
        raise InvalidInput.at("roles", "give at least one project role")
    for project in spec.roles:
        if tx.session.get(ProjectRow, project) is None:
            raise InvalidInput.at(f"roles.{project}", f"no project {project!r}")
        if tx.actor.role_in(project) is not Role.ADMIN and not tx.actor.platform_admin:
            raise Forbidden(f"granting roles in project {project!r} needs its admin role")
    scopes = checked_scopes(tx, spec.scopes, dict(spec.roles))
    return issue(
        tx, spec.name, dict(spec.roles), tx.actor.name, scopes=scopes, expires_at=expires_at
    )


def list_tokens(tx: Tx) -> list[Token]:
    rows = list(tx.session.scalars(select(TokenRow).order_by(TokenRow.created_at, TokenRow.id)))
    out = []
    for row in rows:
        view = _token_model(tx, row)
        visible = (
            tx.actor.platform_admin
            or row.id == tx.actor.token_id
            or any(tx.actor.role_in(p) is Role.ADMIN for p in view.roles)
        )
        if not visible:
            continue
        if not tx.actor.platform_admin and row.id != tx.actor.token_id:
            # Show only the roles in projects the caller may see: a project admin must not
            # learn of other projects through a shared token (get_project answers 404 too).
            roles = {p: r for p, r in view.roles.items() if tx.actor.role_in(p) is not None}
            view = view.model_copy(update={"roles": roles})
        out.append(view)
    return out


PLATFORM_ADMINS_LOCK = "platform-admin-tokens"


def _platform_admin_tokens(tx: Tx) -> list[str]:
    """The ids of the tokens, not revoked, with the admin role in the default project."""
    query = (
        select(TokenRow.id)
        .join(TokenRoleRow, TokenRoleRow.token_id == TokenRow.id)
        .where(
            TokenRoleRow.project_id == PLATFORM_PROJECT,
            TokenRoleRow.role == Role.ADMIN.value,
            TokenRow.revoked_at.is_(None),
            TokenRow.scope != "edge",
            TokenRow.scopes.is_(None),
            or_(TokenRow.expires_at.is_(None), TokenRow.expires_at > utcnow()),
        )
    )
    return list(tx.session.scalars(query))


def keep_a_platform_admin(tx: Tx, token_id: str, action: str) -> None:
    """Refuse ``action`` (revoking or demoting ``token_id``) when the token is the last one
    that administers the platform: nobody could then grant roles, add regions or projects.

    Call it before changing the token: on PostgreSQL it takes a lock, held until the
    transaction ends, that serialises such changes, so two admins revoking each other at once
    cannot both succeed (the second one counts after the first one's commit; READ COMMITTED
    gives each statement a fresh snapshot). SQLite serialises writers already."""
    lock_name(tx, PLATFORM_ADMINS_LOCK)
    admins = _platform_admin_tokens(tx)
    if admins == [token_id]:
        raise Conflict(
            f"token {token_id!r} is the last token with the admin role in the "
            f"{PLATFORM_PROJECT!r} project; {action} it would leave nobody to administer the "
            "platform: create another admin token first (edgeplane token create --role "
            "default=admin)",
            field="token_id",
        )


def _manageable(tx: Tx, token_id: str, verb: str) -> tuple[TokenRow, Token]:
    row = tx.session.get(TokenRow, token_id)
    if row is None:
        raise NotFound(f"token {token_id!r} not found")
    view = _token_model(tx, row)
    allowed = (
        tx.actor.platform_admin
        or row.id == tx.actor.token_id
        or all(tx.actor.role_in(p) is Role.ADMIN for p in view.roles)
    )
    if not allowed:
        raise Forbidden(f"{verb} this token needs the admin role in each of its projects")
    return row, view


def revoke_token(tx: Tx, token_id: str) -> Token:
    row, view = _manageable(tx, token_id, "revoking")
    if row.revoked_at is None:
        keep_a_platform_admin(tx, token_id, "revoking")
        row.revoked_at = utcnow()
        tx.session.flush()
        after = _token_model(tx, row)
        tx.record(
            "revoke",
            "token",
            token_id,
            view.model_dump(mode="json"),
            after.model_dump(mode="json"),
            global_object=True,
        )
        return after
    return view


def rotate_token(tx: Tx, token_id: str, data: TokenRotate | dict[str, Any]) -> TokenIssued:
    """A new secret for the token (same id, roles, scopes, expiry); the old one keeps working
    ``grace_s`` seconds more (0: it stops at once)."""
    spec = validate(TokenRotate, data) if isinstance(data, dict) else data
    row, view = _manageable(tx, token_id, "rotating")
    if row.revoked_at is not None:
        raise Conflict(f"token {token_id!r} is revoked; issue a new one", field="token_id")
    if row.expires_at is not None and row.expires_at <= utcnow():
        raise Conflict(f"token {token_id!r} has expired; issue a new one", field="token_id")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(30)
    now = utcnow()
    if spec.grace_s > 0:
        row.previous_secret_hash = row.secret_hash
        row.previous_expires_at = now + timedelta(seconds=spec.grace_s)
    else:
        row.previous_secret_hash = None
        row.previous_expires_at = None
    row.secret_hash = hash_secret(secret)
    row.prefix = secret[:10]
    row.rotated_at = now
    tx.session.flush()
    after = _token_model(tx, row)
    tx.record(
        "rotate",
        "token",
        token_id,
        view.model_dump(mode="json"),
        after.model_dump(mode="json"),
        global_object=True,
    )
    return TokenIssued(**after.model_dump(), token=secret)


def token_actor(tx: Tx, row: TokenRow, name: str | None = None) -> Actor:
    """The actor a token stands for (checked: not revoked, not expired, its service account
    enabled); Unauthenticated otherwise. The messages never hold the secret."""
    now = utcnow()
    if row.revoked_at is not None:
        raise Unauthenticated("this token has been revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthenticated("token expired")
    edge = row.scope == "edge"
    scraper = row.scope == "metrics"
    scope_sets: list[tuple[sc.Scope, ...]] = []
    account: str | None = row.service_account_id
    if account is not None:
        owner = tx.session.get(ServiceAccountRow, account)
        if owner is None or owner.disabled_at is not None:
            raise Unauthenticated(f"service account {account!r} is disabled")
        if owner.scopes is not None:
            scope_sets.append(sc.parse_all(owner.scopes))
    if row.scopes is not None:
        scope_sets.append(sc.parse_all(row.scopes))
    default = f"service-account {account} ({row.id})" if account else f"{row.name} ({row.id})"
    return Actor(
        name=name or default,
        roles={} if edge or scraper else token_roles(tx, row.id),
        token_id=row.id,
        edge=edge,
        metrics=scraper,
        scope_sets=tuple(scope_sets),
        service_account=account,
    )


def authenticate(db: Database, secret: str | None) -> Actor:
    """The actor a bearer token stands for; Unauthenticated for a missing, unknown, revoked
    or expired one (a rotated token's old secret works during its grace period)."""
    if not secret:
        raise Unauthenticated("missing bearer token (Authorization: Bearer <token>)")
    digest = hash_secret(secret.strip())
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        row = tx.session.scalar(select(TokenRow).where(TokenRow.secret_hash == digest))
        if row is None:
            row = tx.session.scalar(select(TokenRow).where(TokenRow.previous_secret_hash == digest))
            old = row is not None and row.previous_secret_hash is not None
            if not old or row is None or (row.previous_expires_at or utcnow()) <= utcnow():
                raise Unauthenticated("unknown token")
        actor = token_actor(tx, row)
        stale = row.last_used_at is None or utcnow() - row.last_used_at > LAST_USED_GRANULARITY
        token_id = row.id
    if stale:
        with db.writing() as conn:
            conn.execute(
                update(TokenRow).where(TokenRow.id == token_id).values(last_used_at=utcnow())
            )
    return actor


def create_edge_token(db: Database, name: str) -> str:
    """Issue a token for the edge protocol (an edge node's agent); returns the secret."""
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        issued = create_token(tx, TokenCreate(name=name, scope="edge"))
    return issued.token


def ensure_metrics_token(db: Database, path: Path) -> str:
    """The metrics (scrape) token kept in ``path`` (mode 0600), issued on first start."""
    if path.exists():
        secret = path.read_text().strip()
        try:
            if authenticate(db, secret).metrics:
                return secret
        except Unauthenticated:
            pass
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        issued = create_token(tx, TokenCreate(name="metrics", scope="metrics"))
    _keep_secret(path, issued.token)
    return issued.token


def ensure_admin_token(db: Database, path: Path) -> str:
    """The admin token kept in ``path`` (mode 0600), issued on first start."""
    if path.exists():
        secret = path.read_text().strip()
        try:
            actor = authenticate(db, secret)
            if actor.platform_admin:
                return secret
        except Unauthenticated:
            pass
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        issued = issue(tx, "admin", {PLATFORM_PROJECT: Role.ADMIN}, "edgeplane init")
    _keep_secret(path, issued.token)
    return issued.token


def _keep_secret(path: Path, secret: str) -> None:
    """Write a token to ``path``, mode 0600, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
