"""Logins of the dashboard: a name and a password standing for a token (edgeplane.store.tables
``LoginRow``). Creating one needs what granting its roles in a token needs; deleting one revokes
its token, which ends its sessions."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import delete, select

from edgeplane.errors import Conflict, NotFound
from edgeplane.model.access import TokenCreate
from edgeplane.model.sessions import Login, LoginCreate
from edgeplane.services import access
from edgeplane.services.common import lock_name, validate
from edgeplane.services.passwords import hash_password
from edgeplane.store.db import Tx
from edgeplane.store.tables import LoginRow, SessionRow


def _model(tx: Tx, row: LoginRow) -> Login:
    return Login(
        name=row.name,
        roles=access.token_roles(tx, row.token_id),
        token_id=row.token_id,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def create_login(tx: Tx, data: LoginCreate | dict[str, Any]) -> Login:
    spec = validate(LoginCreate, data) if isinstance(data, dict) else data
    lock_name(tx, LoginRow.__tablename__, spec.name)
    if tx.session.get(LoginRow, spec.name) is not None:
        raise Conflict(f"login {spec.name!r} already exists", field="name")
    # The token's secret is thrown away: the login signs in with its password only.
    token_id = access.create_token(tx, TokenCreate(name=f"login {spec.name}", roles=spec.roles)).id
    row = LoginRow(
        name=spec.name,
        password_hash=hash_password(spec.password.get_secret_value()),
        token_id=token_id,
        created_by=tx.actor.name,
    )
    tx.session.add(row)
    tx.session.flush()
    out = _model(tx, row)
    tx.record("create", "login", spec.name, None, out.model_dump(mode="json"), global_object=True)
    return out


def list_logins(tx: Tx) -> list[Login]:
    visible = {t.id for t in access.list_tokens(tx)}
    rows = tx.session.scalars(select(LoginRow).order_by(LoginRow.name))
    return [_model(tx, r) for r in rows if r.token_id in visible]


def delete_login(tx: Tx, name: str) -> None:
    row = tx.session.get(LoginRow, name)
    if row is None or row.token_id not in {t.id for t in access.list_tokens(tx)}:
        raise NotFound(f"login {name!r} not found")
    before = _model(tx, row)
    access.revoke_token(tx, row.token_id)
    tx.session.execute(delete(SessionRow).where(SessionRow.token_id == row.token_id))
    tx.session.delete(row)
    tx.record("delete", "login", name, before.model_dump(mode="json"), None, global_object=True)


def new_password() -> str:
    """A generated password (for ``edgeplane user create`` without one)."""
    return secrets.token_urlsafe(15)
