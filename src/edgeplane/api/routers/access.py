"""Projects, tokens, the audit trail and the revision."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from edgeplane.api.deps import Ctx, GlobalCtx
from edgeplane.model.access import (
    AuditEvent,
    Project,
    ProjectCreate,
    Token,
    TokenCreate,
    TokenIssued,
    TokenRotate,
)
from edgeplane.model.common import Page
from edgeplane.services import access, audit

router = APIRouter(prefix="/api/v1", tags=["access"])


class RevisionInfo(BaseModel):
    revision: int


class WhoAmI(BaseModel):
    actor: str
    token_id: str | None
    roles: dict[str, str]


@router.get("/whoami", response_model=WhoAmI)
def whoami(ctx: GlobalCtx) -> WhoAmI:
    roles = {p: r.value for p, r in ctx.actor.roles.items()}
    if ctx.actor.local:
        roles = {"*": "admin"}
    return WhoAmI(actor=ctx.actor.name, token_id=ctx.actor.token_id, roles=roles)


@router.get("/revision", response_model=RevisionInfo)
def revision(ctx: Ctx) -> RevisionInfo:
    with ctx.read() as tx:
        return RevisionInfo(revision=tx.current_revision())


@router.get("/projects", response_model=list[Project])
def list_projects(ctx: GlobalCtx) -> list[Project]:
    with ctx.read(scoped=False) as tx:
        return access.list_projects(tx)


@router.post("/projects", response_model=Project, status_code=201)
def create_project(ctx: GlobalCtx, body: ProjectCreate) -> Project:
    with ctx.write(scoped=False) as tx:
        return access.create_project(tx, body)


@router.get("/projects/{project_id}", response_model=Project)
def get_project(ctx: GlobalCtx, project_id: str) -> Project:
    with ctx.read(scoped=False) as tx:
        return access.get_project(tx, project_id)


@router.delete("/projects/{project_id}", status_code=204)
def delete_project(ctx: GlobalCtx, project_id: str) -> Response:
    with ctx.write(scoped=False) as tx:
        access.delete_project(tx, project_id)
    return Response(status_code=204)


@router.get("/tokens", response_model=list[Token])
def list_tokens(ctx: GlobalCtx) -> list[Token]:
    with ctx.read(scoped=False) as tx:
        return access.list_tokens(tx)


@router.post("/tokens", response_model=TokenIssued, status_code=201)
def create_token(ctx: GlobalCtx, body: TokenCreate) -> TokenIssued:
    with ctx.write(scoped=False) as tx:
        return access.create_token(tx, body)


@router.delete("/tokens/{token_id}", response_model=Token)
def revoke_token(ctx: GlobalCtx, token_id: str) -> Token:
    with ctx.write(scoped=False) as tx:
        return access.revoke_token(tx, token_id)


@router.post("/tokens/{token_id}/rotate", response_model=TokenIssued)
def rotate_token(ctx: GlobalCtx, token_id: str, body: TokenRotate | None = None) -> TokenIssued:
    """A new secret for the same token (id, roles, scopes, expiry); the old secret works
    ``grace_s`` seconds more. The new secret is shown once."""
    with ctx.write(scoped=False) as tx:
        return access.rotate_token(tx, token_id, body or TokenRotate())


@router.get("/audit", response_model=Page[AuditEvent])
def list_audit(
    ctx: Ctx,
    kind: str | None = None,
    object_id: str | None = None,
    include_global: bool = False,
    cursor: Annotated[
        str | None,
        Query(
            description="next_cursor of the previous page (an event id)",
            json_schema_extra={"pattern": audit.CURSOR_PATTERN},
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[AuditEvent]:
    with ctx.read() as tx:
        return audit.list_events(
            tx,
            kind=kind,
            object_id=object_id,
            include_global=include_global,
            cursor=cursor,
            limit=limit,
        )
