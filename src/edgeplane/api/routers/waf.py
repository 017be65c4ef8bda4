"""The WAF: edge nodes report matches (edge token); people read them and manage exclusions.

``POST /api/v1/edge/nodes/{id}/waf`` is the edge protocol (prefix ``/api/v1/edge``, as
``edge_logs.py``); the rest is project-scoped under ``/api/v1/infrastructure/cdn/waf``:
the status and settings, the matches, the exclusions (``edgeplane.services.waf``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from edgeplane.api.deps import Ctx, EdgeActor
from edgeplane.model.common import DateTime
from edgeplane.model.waf import (
    WafExclusion,
    WafExclusionCreate,
    WafMatchPage,
    WafSettings,
    WafSettingsPatch,
    WafStatus,
)
from edgeplane.protocol.messages import WafReport
from edgeplane.services import waf
from edgeplane.store.actor import PLATFORM_PROJECT
from edgeplane.store.db import Database

edge_router = APIRouter(prefix="/api/v1/edge", tags=["edge"])
waf_router = APIRouter(prefix="/api/v1/infrastructure/cdn/waf", tags=["waf"])


@edge_router.post(
    "/nodes/{node_id}/waf", status_code=204, summary="Report WAF matches (edge token)"
)
def report_matches(request: Request, actor: EdgeActor, node_id: str, body: WafReport) -> Response:
    db: Database = request.app.state.db
    with db.transaction(actor, PLATFORM_PROJECT) as tx:
        waf.store(tx, node_id, body)
    return Response(status_code=204)


@waf_router.get("", response_model=WafStatus)
def get_waf_status(ctx: Ctx) -> WafStatus:
    """The project's WAF settings and the last 24 hours' matches."""
    with ctx.read() as tx:
        return waf.status(tx)


@waf_router.patch("", response_model=WafSettings)
def update_waf(ctx: Ctx, body: WafSettingsPatch) -> WafSettings:
    """Change the mode (off, detect, block), the paranoia level or the anomaly threshold."""
    with ctx.write() as tx:
        return waf.update_settings(tx, body)


@waf_router.get("/matches", response_model=WafMatchPage)
def list_waf_matches(
    ctx: Ctx,
    request_id: Annotated[
        str | None, Query(max_length=64, description="the X-Request-Id of a response")
    ] = None,
    rule: Annotated[int | None, Query(ge=1, le=999_999_999, description="a rule id")] = None,
    host: Annotated[str | None, Query(max_length=253, description="the request's host")] = None,
    since: Annotated[DateTime | None, Query(description="ISO 8601")] = None,
    limit: Annotated[int, Query(ge=1, le=waf.MAX_LIMIT)] = 50,
    before: Annotated[
        int | None,
        Query(ge=1, le=2**63 - 1, description="the next page: `next_before` of the last one"),
    ] = None,
) -> WafMatchPage:
    """Requests that matched WAF rules at the edge, newest first."""
    with ctx.read() as tx:
        return waf.matches(
            tx,
            request_id=request_id,
            rule=rule,
            host=host,
            since=since,
            limit=limit,
            before=before,
        )


@waf_router.get("/exclusions", response_model=list[WafExclusion])
def list_waf_exclusions(ctx: Ctx) -> list[WafExclusion]:
    with ctx.read() as tx:
        return waf.exclusions(tx)


@waf_router.post("/exclusions", response_model=WafExclusion, status_code=201)
def create_waf_exclusion(ctx: Ctx, body: WafExclusionCreate) -> WafExclusion:
    """Switch rules off for the project, under a path prefix when given."""
    with ctx.write() as tx:
        return waf.add_exclusion(tx, body)


@waf_router.delete("/exclusions/{exclusion_id}", status_code=204)
def delete_waf_exclusion(ctx: Ctx, exclusion_id: str) -> Response:
    with ctx.write() as tx:
        waf.delete_exclusion(tx, exclusion_id)
    return Response(status_code=204)


router = APIRouter()
router.include_router(edge_router)
router.include_router(waf_router)
