"""The project's security at the edge: one document (``GET`` / ``PATCH`` as a JSON merge patch)
and the under-attack switch."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from edgeplane.api.deps import Ctx
from edgeplane.model.edge_security import CDNSecurity, UnderAttack, UnderAttackSet
from edgeplane.services import cdn_security

router = APIRouter(prefix="/api/v1/infrastructure/cdn", tags=["cdn"])

SecurityPatch = Annotated[
    dict[str, Any],
    Body(
        description="a JSON merge patch (RFC 7396) of the project's EdgeSecurity, e.g. "
        '{"limits": {"max_connections": 20}, "rate_limit": null}',
        openapi_examples={
            "limits": {"value": {"limits": {"max_connections": 20, "header_timeout_s": 10}}},
            "under attack": {"value": {"under_attack": True}},
        },
    ),
]


@router.get("/security", response_model=CDNSecurity)
def get_security(ctx: Ctx) -> CDNSecurity:
    """The project's security at the edge: HTTPS, HSTS, IP lists, rate and client limits, the
    under-attack switch (the defaults when the project has no CDN config)."""
    with ctx.read() as tx:
        return cdn_security.get_security(tx)


@router.patch("/security", response_model=CDNSecurity)
def update_security(ctx: Ctx, body: SecurityPatch) -> CDNSecurity:
    """Change some of the project's security settings (a JSON merge patch: objects merge,
    ``null`` clears); the whole result is validated, and every edge node gets it with the
    revision answered."""
    with ctx.write() as tx:
        doc = cdn_security.update_security(tx, body)
    return doc if tx.revision is None else doc.model_copy(update={"revision": tx.revision})


@router.get("/under-attack", response_model=UnderAttack)
def get_under_attack(ctx: Ctx) -> UnderAttack:
    """Whether the project is under attack, and the client limits the edge applies."""
    with ctx.read() as tx:
        return cdn_security.under_attack(tx)


@router.post("/under-attack", response_model=UnderAttack)
def set_under_attack(ctx: Ctx, body: UnderAttackSet) -> UnderAttack:
    """Tighten every client limit of the project at once (``enabled: true``), or go back to
    its own limits (the same as ``PATCH /security`` with ``under_attack``)."""
    with ctx.write() as tx:
        doc = cdn_security.set_under_attack(tx, body.enabled)
    return doc if tx.revision is None else doc.model_copy(update={"revision": tx.revision})
