"""Access logs: the edge nodes report their latest lines (edge token), people read a domain's.

``router`` holds both: ``POST /api/v1/edge/nodes/{id}/logs`` (the edge protocol, prefix
``/api/v1/edge`` as ``edge.py``) and ``GET /api/v1/infrastructure/domains/{domain}/logs``
(project-scoped like the other endpoints of a domain).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from edgeplane.api.deps import Ctx, EdgeActor
from edgeplane.model.access_logs import AccessLogPage
from edgeplane.protocol.messages import ACCESS_LOG_PATH_MAX, AccessLogReport
from edgeplane.services import access_logs
from edgeplane.store.actor import PLATFORM_PROJECT
from edgeplane.store.db import Database

edge_router = APIRouter(prefix="/api/v1/edge", tags=["edge"])
domain_router = APIRouter(prefix="/api/v1/infrastructure", tags=["domains"])


@edge_router.post(
    "/nodes/{node_id}/logs", status_code=204, summary="Report access log lines (edge token)"
)
def report_logs(
    request: Request, actor: EdgeActor, node_id: str, body: AccessLogReport
) -> Response:
    db: Database = request.app.state.db
    with db.transaction(actor, PLATFORM_PROJECT) as tx:
        access_logs.store(tx, node_id, body)
    return Response(status_code=204)


@domain_router.get("/domains/{domain}/logs", response_model=AccessLogPage)
# The patterns are in the schema but checked by the service, whose messages say the rule.
def domain_logs(
    ctx: Ctx,
    domain: str,
    status: Annotated[
        str | None,
        Query(
            description="a status code (404) or a class (5xx)",
            json_schema_extra={"pattern": access_logs.STATUS_PATTERN},
        ),
    ] = None,
    path_prefix: Annotated[
        str | None,
        Query(
            max_length=ACCESS_LOG_PATH_MAX,
            description="the path (query string included) starts with it",
            json_schema_extra={"pattern": "^/"},
        ),
    ] = None,
    client: Annotated[
        str | None,
        Query(
            max_length=64,
            description="the client's address, or a network in CIDR notation (10.0.0.0/8)",
        ),
    ] = None,
    cache: Annotated[
        str | None,
        Query(
            description="HIT, MISS, BYPASS, STATIC, ...",
            json_schema_extra={"pattern": access_logs.CACHE_PATTERN},
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=access_logs.MAX_LIMIT)] = 100,
    after: Annotated[
        int | None,
        Query(
            ge=0,
            le=2**63 - 1,
            description="only the lines after this id, oldest first (`next_after`)",
        ),
    ] = None,
) -> AccessLogPage:
    """The domain's latest requests at the edge, newest first (with `after`: the ones after
    it, oldest first), kept `access_log_retention_s` and at most `access_log_per_domain`."""
    with ctx.read() as tx:
        return access_logs.recent(
            tx,
            domain,
            status=status,
            path_prefix=path_prefix,
            client=client,
            cache=cache,
            limit=limit,
            after_id=after,
        )


router = APIRouter()
router.include_router(edge_router)
router.include_router(domain_router)
