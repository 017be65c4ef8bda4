"""Dashboard sessions: signing in with an API token or a login, the session a browser's cookie
stands for, signing out.

A session acts as a token (the one signed in with, or the login's own): its roles, and its
revocation, are the token's. The cookie holds a random secret of which only the hash is stored;
the CSRF token, which every write made with the cookie must carry as ``X-CSRF-Token``, is given
to the page in the session's description (a script of the dashboard's origin reads it; another
site's page cannot)."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select

from edgeplane.errors import Forbidden, Unauthenticated
from edgeplane.model.sessions import SessionCreate, SessionInfo
from edgeplane.services import access
from edgeplane.services.passwords import DUMMY, check_password
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT, Actor
from edgeplane.store.db import Database
from edgeplane.store.tables import LoginRow, SessionRow, TokenRow, utcnow

COOKIE = "edgeplane_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Session:
    actor: Actor
    info: SessionInfo


def _token_actor(db: Database, token_id: str, login: str | None) -> Actor:
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        row = tx.session.get(TokenRow, token_id)
        if row is None or row.revoked_at is not None:
            raise Unauthenticated("this session's token has been revoked; sign in again")
        # expiry, scopes and service accounts as for the token itself
        return access.token_actor(tx, row, name=f"login {login}" if login else None)


def _info(actor: Actor, row: SessionRow) -> SessionInfo:
    assert actor.token_id is not None
    return SessionInfo(
        actor=actor.name,
        login=row.login,
        token_id=actor.token_id,
        roles=actor.roles,
        platform_admin=actor.platform_admin,
        csrf_token=row.csrf,
        expires_at=row.expires_at,
    )


def sign_in(db: Database, spec: SessionCreate, ttl_s: float) -> tuple[str, Session]:
    """A new session for the token or login of ``spec``: (the cookie's secret, the session)."""
    login: str | None = None
    if spec.token is not None:
        actor = access.authenticate(db, spec.token.get_secret_value())
        if actor.edge or actor.metrics:
            raise Forbidden("this token cannot sign in: it is for the edge protocol or /metrics")
        assert actor.token_id is not None
        token_id = actor.token_id
    else:
        password = spec.password.get_secret_value() if spec.password is not None else ""
        with db.read(LOCAL, PLATFORM_PROJECT) as tx:
            row = tx.session.get(LoginRow, spec.login)
            stored = row.password_hash if row is not None else DUMMY
            token_id = row.token_id if row is not None else ""
        if not check_password(password, stored) or row is None:
            raise Unauthenticated("unknown login name or wrong password")
        login = spec.login
        actor = _token_actor(db, token_id, login)
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    with db.writing() as conn:
        conn.execute(delete(SessionRow).where(SessionRow.expires_at < now))
    session_row = SessionRow(
        id_hash=access.hash_secret(secret),
        token_id=token_id,
        login=login,
        csrf=secrets.token_urlsafe(24),
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_s),
    )
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        tx.session.add(session_row)
        tx.session.flush()
        info = _info(actor, session_row)
    return secret, Session(actor, info)


def authenticate(db: Database, secret: str) -> Session:
    """The session a cookie's secret stands for; Unauthenticated when it is unknown, expired
    or its token revoked."""
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        row = tx.session.scalar(
            select(SessionRow).where(SessionRow.id_hash == access.hash_secret(secret))
        )
        if row is None or row.expires_at <= utcnow():
            raise Unauthenticated("the session has ended; sign in again")
        tx.session.expunge(row)
    actor = _token_actor(db, row.token_id, row.login)
    return Session(actor, _info(actor, row))


def check_csrf(session: Session, method: str, header: str | None) -> None:
    """A write made with the session's cookie must carry its CSRF token."""
    if method.upper() in SAFE_METHODS:
        return
    if not header or not hmac.compare_digest(header, session.info.csrf_token):
        raise Forbidden(
            f"a write made with the session cookie needs the session's {CSRF_HEADER} header",
            field=CSRF_HEADER,
        )


def sign_out(db: Database, secret: str) -> None:
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        tx.session.execute(
            delete(SessionRow).where(SessionRow.id_hash == access.hash_secret(secret))
        )
