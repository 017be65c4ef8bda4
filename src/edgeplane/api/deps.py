"""Request dependencies: who is calling, in which project, and transactions for them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from edgeplane.api import scopes
from edgeplane.errors import Forbidden, InvalidInput
from edgeplane.model.common import SLUG_PATTERN, control_character
from edgeplane.routing.geoip import GeoLocator
from edgeplane.services import access, sessions
from edgeplane.settings import Settings
from edgeplane.snapshot.cache import SnapshotCache
from edgeplane.store.actor import PLATFORM_PROJECT, Actor
from edgeplane.store.db import Database, Tx

bearer = HTTPBearer(auto_error=False, description="an Edgeplane API token")


@dataclass
class Context:
    db: Database
    settings: Settings
    locator: GeoLocator
    snapshots: SnapshotCache
    actor: Actor
    project: str

    @contextmanager
    def write(self, *, scoped: bool = True) -> Iterator[Tx]:
        """A transaction in the request's project (which must exist when ``scoped``)."""
        with self.db.transaction(self.actor, self.project) as tx:
            if scoped:
                access.require_project(tx)
            yield tx

    @contextmanager
    def read(self, *, scoped: bool = True) -> Iterator[Tx]:
        with self.db.read(self.actor, self.project) as tx:
            if scoped:
                access.require_project(tx)
            yield tx


def check_parameters(request: Request) -> None:
    """Path and query parameters hold no control characters (``Text``'s rule): they reach the
    database, and PostgreSQL refuses NUL. Every operation with parameters depends on it."""
    for name, value in (*request.path_params.items(), *request.query_params.multi_items()):
        reason = control_character(str(value))
        if reason is not None:
            raise InvalidInput.at(name, reason)


def get_actor(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    check_parameters(request)
    local: Actor | None = request.app.state.local_actor
    if local is not None:
        return local
    cookie = request.cookies.get(sessions.COOKIE)
    if creds is None and cookie:
        # A browser of the dashboard: its session, and for a write the session's CSRF token.
        session = sessions.authenticate(request.app.state.db, cookie)
        sessions.check_csrf(session, request.method, request.headers.get(sessions.CSRF_HEADER))
        scopes.check(session.actor, request)
        return session.actor
    actor = access.authenticate(request.app.state.db, creds.credentials if creds else None)
    if actor.edge:
        raise Forbidden("this token is for the edge protocol only")
    if actor.metrics:
        raise Forbidden("this token is for scraping /metrics only")
    scopes.check(actor, request)  # the endpoint's scope (edgeplane.api.scopes)
    return actor


def get_edge_actor(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    """The caller of the edge protocol: an edge token (or the embedded local actor)."""
    check_parameters(request)
    local: Actor | None = request.app.state.local_actor
    if local is not None:
        return local
    actor = access.authenticate(request.app.state.db, creds.credentials if creds else None)
    if not actor.edge:
        raise Forbidden("the edge protocol needs an edge token (edgeplane token create --edge)")
    return actor


EdgeActor = Annotated[Actor, Depends(get_edge_actor)]


def _context(request: Request, actor: Actor, project: str) -> Context:
    state = request.app.state
    return Context(
        db=state.db,
        settings=state.settings,
        locator=state.locator,
        snapshots=state.snapshots,
        actor=actor,
        project=project,
    )


def get_context(
    request: Request,
    actor: Annotated[Actor, Depends(get_actor)],
    project: Annotated[
        str | None,
        Query(description="the project; `default` when omitted", pattern=SLUG_PATTERN),
    ] = None,
    x_edgeplane_project: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Context:
    return _context(request, actor, project or x_edgeplane_project or PLATFORM_PROJECT)


Ctx = Annotated[Context, Depends(get_context)]
"""The request's context in its project (``?project=``, default ``default``)."""


def get_global_context(request: Request, actor: Annotated[Actor, Depends(get_actor)]) -> Context:
    """The context of an operation on global objects (regions, projects, tokens, edge nodes),
    which takes no project."""
    return _context(request, actor, PLATFORM_PROJECT)


GlobalCtx = Annotated[Context, Depends(get_global_context)]
