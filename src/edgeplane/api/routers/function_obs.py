"""Edge functions at work: the edge nodes report invocations and console lines (edge token),
people read a function's console and metrics.

``router`` holds both: ``POST /api/v1/edge/nodes/{id}/function-traffic`` and
``POST /api/v1/edge/nodes/{id}/function-logs`` (the edge protocol, as ``edge.py``), and
``GET /api/v1/infrastructure/functions/{name}/logs`` and ``.../{name}/metrics``
(project-scoped like the rest of ``functions.py``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from edgeplane.api.deps import Ctx, EdgeActor
from edgeplane.api.routers.edge import ProtocolRoute, protocol_version
from edgeplane.api.routers.functions import Name
from edgeplane.model.function_obs import FunctionLogPage, FunctionMetrics, LogLevel
from edgeplane.protocol.messages import FunctionLogReport, FunctionTrafficReport
from edgeplane.services import function_obs
from edgeplane.store.actor import PLATFORM_PROJECT
from edgeplane.store.db import Database

edge_router = APIRouter(prefix="/api/v1/edge", tags=["edge"], route_class=ProtocolRoute)
function_router = APIRouter(prefix="/api/v1/infrastructure/functions", tags=["functions"])


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


@edge_router.post(
    "/nodes/{node_id}/function-traffic",
    status_code=204,
    summary="Report edge function invocations per minute (edge token)",
    dependencies=[Depends(protocol_version)],
)
def report_traffic(
    request: Request, actor: EdgeActor, node_id: str, body: FunctionTrafficReport
) -> Response:
    with _db(request).transaction(actor, PLATFORM_PROJECT) as tx:
        function_obs.store_traffic(tx, node_id, body)
    return Response(status_code=204)


@edge_router.post(
    "/nodes/{node_id}/function-logs",
    status_code=204,
    summary="Report edge function console lines (edge token)",
    dependencies=[Depends(protocol_version)],
)
def report_logs(
    request: Request, actor: EdgeActor, node_id: str, body: FunctionLogReport
) -> Response:
    with _db(request).transaction(actor, PLATFORM_PROJECT) as tx:
        function_obs.store_logs(tx, node_id, body)
    return Response(status_code=204)


@function_router.get("/{name}/logs", response_model=FunctionLogPage)
def function_logs(
    ctx: Ctx,
    name: Name,
    after: Annotated[
        int | None,
        Query(
            ge=0,
            le=2**63 - 1,
            description="only the lines after this id, oldest first (`next_after`)",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=function_obs.MAX_LIMIT)] = 100,
    level: Annotated[
        LogLevel | None,
        Query(description="this level and the more severe (debug < log = info < warn < error)"),
    ] = None,
    node: Annotated[str | None, Query(max_length=63, description="an edge node's name")] = None,
    version: Annotated[
        int | None, Query(ge=1, le=2_000_000_000, description="a version number")
    ] = None,
) -> FunctionLogPage:
    """The function's latest console lines from every edge node, newest first (with `after`:
    the ones after it, oldest first), kept `function_log_retention_s` and at most
    `function_log_per_function`."""
    with ctx.read() as tx:
        return function_obs.logs(
            tx, name, after_id=after, limit=limit, level=level, node=node, version=version
        )


@function_router.get("/{name}/metrics", response_model=FunctionMetrics)
def function_metrics(
    ctx: Ctx,
    name: Name,
    since: Annotated[
        str | None,
        Query(
            description="15m, 1h, 6h, 24h, 7d or 30d (default 1h)",
            json_schema_extra={"enum": list(function_obs.SINCE)},
        ),
    ] = None,
    region: Annotated[
        str | None,
        Query(max_length=63, description="a location, region code or region type"),
    ] = None,
) -> FunctionMetrics:
    """The function's invocations over the last `since`, per region of the edge nodes that ran
    it and in total: invocations, errors by outcome, error rate, p50 / p95 / p99 duration."""
    with ctx.read() as tx:
        return function_obs.metrics(tx, name, since=since, region=region)


router = APIRouter()
router.include_router(edge_router)
router.include_router(function_router)
