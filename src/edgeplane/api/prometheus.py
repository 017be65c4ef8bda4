"""``GET /metrics``: the control plane's Prometheus exposition, and the API's request metrics.

The exposition holds this process's events (``edgeplane.metrics``: requests, propagation,
purges, ACME orders, background jobs, and the process itself), or with ``serve --workers N``
every worker's events summed (prometheus_client's multiprocess mode, without the process
collectors), and the state read from the database at scrape time
(``edgeplane.services.plane_state``). It answers in the text format, or
OpenMetrics when the scraper asks for it, gzip-compressed when accepted.

Access needs a bearer token: a metrics token (``edgeplane token create --metrics``: scraping
only, the same token the edge nodes' metrics ports take) or an API token with a role in the
default project (the platform's own view).

``RequestMetrics`` is a pure ASGI middleware counting every HTTP request by method, route
template (``/api/v1/infrastructure/domains/{domain}``, never the path itself) and status, with
its duration: a counter and a histogram observation per request, a few microseconds.
"""

from __future__ import annotations

import gzip
import time
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgeplane import metrics
from edgeplane.api import scopes
from edgeplane.api.deps import bearer, check_parameters
from edgeplane.errors import Forbidden
from edgeplane.services import access
from edgeplane.services.plane_state import PlaneStateCollector
from edgeplane.services.runner import Runner
from edgeplane.store.actor import PLATFORM_PROJECT
from edgeplane.store.db import Database

UNMATCHED = "unmatched"  # the route label of a request no route matched (a 404)


class RequestMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope["method"]
            metrics.api_requests.labels(method, route, str(status)).inc()
            metrics.api_duration.labels(method, route).observe(time.perf_counter() - start)


class _Forward(Collector):
    """Another registry's metrics, as one collector (the process-wide events)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Any:
        return self.registry.collect()


def registry_for(db: Database, runner: Runner | None) -> CollectorRegistry:
    """What ``/metrics`` of one app shows: the process's events (every worker's, with
    several) and the state in ``db``."""
    registry = CollectorRegistry(auto_describe=False)
    folder = metrics.multiprocess_dir()
    if folder is None:
        registry.register(_Forward(metrics.REGISTRY))
    else:
        MultiProcessCollector(registry, folder)  # type: ignore[no-untyped-call]
    registry.register(PlaneStateCollector(db, runner))
    return registry


def require_scraper(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    check_parameters(request)
    if request.app.state.local_actor is not None:
        return
    actor = access.authenticate(request.app.state.db, creds.credentials if creds else None)
    if actor.metrics:
        return
    if actor.role_in(PLATFORM_PROJECT) is not None:
        scopes.check(actor, request)  # a token with scopes needs metrics:read
        return
    raise Forbidden(
        "/metrics needs a metrics token (edgeplane token create --metrics) or a role in the "
        "default project"
    )


def install(app: FastAPI, db: Database, runner: Runner | None) -> None:
    registry = registry_for(db, runner)
    app.add_middleware(RequestMetrics)

    @app.get(
        "/metrics",
        tags=["system"],
        summary="Prometheus metrics (a metrics token or a role in the default project)",
        response_class=Response,
        dependencies=[Depends(require_scraper)],
        responses={200: {"content": {"text/plain": {}}}},
    )
    def prometheus_metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        body = encoder(registry)
        headers = {}
        if "gzip" in request.headers.get("accept-encoding", ""):
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type=content_type, headers=headers)
