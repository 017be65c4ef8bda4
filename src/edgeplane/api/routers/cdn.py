"""The project's CDN: its config, cache rules, purges and analytics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response
from fastapi.responses import JSONResponse

from edgeplane.api.deps import Ctx
from edgeplane.model.cdn import (
    CacheRule,
    CacheRuleCreate,
    CacheRulePatch,
    CDNAnalytics,
    CDNConfigCreate,
    CDNDeployment,
    PurgeRequest,
    PurgeResult,
)
from edgeplane.model.common import DateTime, Output
from edgeplane.services import analytics, cdn, purges

router = APIRouter(prefix="/api/v1/infrastructure/cdn", tags=["cdn"])

Position = Annotated[
    int | None, Query(ge=0, le=1000, description="where the rule goes, 0 first (default: last)")
]
Patch = Annotated[dict[str, Any], Body(description="the fields to change")]


class CDNConfigured(Output):
    cdn_deployment: CDNDeployment


@router.post(
    "",
    response_model=CDNConfigured,
    status_code=200,
    responses={201: {"model": CDNConfigured, "description": "the first config of the project"}},
)
def configure_cdn(ctx: Ctx, body: CDNConfigCreate, response: Response) -> CDNConfigured:
    """Replace the project's CDN config: origins, cache rules (first match wins), security."""
    with ctx.write() as tx:
        deployment, created = cdn.configure(tx, body)
    deployment = deployment.model_copy(update={"revision": tx.revision})
    response.status_code = 201 if created else 200
    return CDNConfigured(cdn_deployment=deployment)


@router.get("", response_model=CDNDeployment)
def get_cdn(ctx: Ctx) -> CDNDeployment:
    with ctx.read() as tx:
        return cdn.get(tx)


class CDNState(Output):
    configured: bool
    cdn_deployment: CDNDeployment | None  # None: the project has no CDN config
    domains: list[str]  # the project's active domains: what a config would serve


@router.get("/state", response_model=CDNState)
def get_cdn_state(ctx: Ctx) -> CDNState:
    """The project's CDN config, or that it has none (200 either way, where ``GET`` answers
    404): what the dashboard reads to offer a first config."""
    with ctx.read() as tx:
        deployment = cdn.find(tx)
        domains = deployment.domains if deployment is not None else cdn.active_domains(tx)
    return CDNState(configured=deployment is not None, cdn_deployment=deployment, domains=domains)


@router.delete("", status_code=204)
def delete_cdn(ctx: Ctx) -> Response:
    with ctx.write() as tx:
        cdn.delete(tx)
    return Response(status_code=204)


@router.get("/rules", response_model=list[CacheRule])
def list_cache_rules(ctx: Ctx) -> list[CacheRule]:
    """The cache rules in the order they are tried."""
    with ctx.read() as tx:
        return cdn.list_rules(tx)


@router.post("/rules", response_model=CacheRule, status_code=201)
def create_cache_rule(ctx: Ctx, body: CacheRuleCreate, position: Position = None) -> CacheRule:
    with ctx.write() as tx:
        return cdn.create_rule(tx, body, position=position)


@router.get("/rules/{rule_id}", response_model=CacheRule)
def get_cache_rule(ctx: Ctx, rule_id: str) -> CacheRule:
    with ctx.read() as tx:
        return cdn.get_rule(tx, rule_id)


@router.patch("/rules/{rule_id}", response_model=CacheRule)
def update_cache_rule(
    ctx: Ctx, rule_id: str, body: CacheRulePatch, position: Position = None
) -> CacheRule:
    """A JSON merge patch of the rule; ``position`` moves it."""
    with ctx.write() as tx:
        return cdn.update_rule(
            tx, rule_id, body.model_dump(mode="json", exclude_unset=True), position=position
        )


@router.delete("/rules/{rule_id}", status_code=204)
def delete_cache_rule(ctx: Ctx, rule_id: str) -> Response:
    with ctx.write() as tx:
        cdn.delete_rule(tx, rule_id)
    return Response(status_code=204)


@router.post(
    "/purge",
    response_model=PurgeResult,
    responses={202: {"model": PurgeResult, "description": "not every edge node has purged yet"}},
)
def purge_cache(ctx: Ctx, body: PurgeRequest) -> JSONResponse:
    """Purge by exact path, by prefix (``/static/*``) or everything, on every edge node.

    With ``wait`` the answer comes when every online edge node has purged (or after
    ``timeout_s``): 200 when complete, else 202 with the nodes that have not finished."""
    result = purges.purge(ctx.db, ctx.actor, ctx.project, body)
    return JSONResponse(result.model_dump(mode="json"), status_code=200 if result.complete else 202)


@router.get("/purges/{purge_id}", response_model=PurgeResult)
def get_purge(ctx: Ctx, purge_id: str) -> PurgeResult:
    with ctx.read() as tx:
        return purges.get(tx, purge_id)


@router.get("/analytics", response_model=CDNAnalytics)
def get_cdn_analytics(
    ctx: Ctx,
    start: Annotated[DateTime | None, Query(description="ISO 8601 with a time zone")] = None,
    end: Annotated[DateTime | None, Query(description="ISO 8601 (default: now)")] = None,
    timeframe: Annotated[
        str | None,
        Query(
            description="1h, 6h, 24h, 7d or 30d, ending now (default 1h)",
            json_schema_extra={"enum": list(analytics.TIMEFRAMES)},
        ),
    ] = None,
) -> CDNAnalytics:
    """Requests, hits, misses, hit ratio, bytes, status classes and upstream time percentiles,
    in total and per domain, over ``[start, end)``."""
    with ctx.read() as tx:
        return analytics.get_analytics(tx, start=start, end=end, timeframe=timeframe)
