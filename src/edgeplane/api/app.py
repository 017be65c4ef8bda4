"""The FastAPI application of the control plane."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from edgeplane.api import dashboard, docs, openapi, problems, prometheus
from edgeplane.api.notify import RevisionNotifier
from edgeplane.api.routers import (
    access,
    alerts,
    backups,
    bots,
    cdn,
    cdn_security,
    control_plane,
    costs,
    domains,
    dr,
    edge,
    edge_deploy,
    edge_logs,
    function_obs,
    functions,
    iac,
    inventory,
    metrics,
    ocsp,
    operations,
    origin_client,
    overview,
    scaling,
    secrets,
    security_score,
    service_accounts,
    session,
    waf,
)
from edgeplane.routing.geoip import GeoLocator
from edgeplane.services.cert_orders import Orders
from edgeplane.services.heartbeats import HeartbeatBuffer
from edgeplane.services.realign import Realigner
from edgeplane.services.runner import Runner
from edgeplane.services.sign_in_throttle import sign_in_throttles
from edgeplane.settings import Settings
from edgeplane.snapshot.cache import SnapshotCache
from edgeplane.store.actor import Actor
from edgeplane.store.db import Database
from edgeplane.version import __version__


def create_app(
    settings: Settings,
    db: Database,
    *,
    locator: GeoLocator | None = None,
    local_actor: Actor | None = None,
    runner: Runner | None = None,
) -> FastAPI:
    """The API over ``db``. ``local_actor`` skips token checks (the embedded SDK's own app);
    ``runner`` is started and stopped with the app: the control plane's background work
    (``edgeplane.services.jobs``)."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        assert runner is not None
        async with runner.running():
            yield

    app = FastAPI(
        lifespan=lifespan if runner is not None else None,
        title="Edgeplane",
        version=__version__,
        description="Edge infrastructure from one control plane: inventory, routing, "
        "load balancing and disaster recovery. Authenticate with `Authorization: Bearer "
        "<token>`; choose the project with `?project=` (default: `default`).",
        docs_url=None,  # edgeplane.api.docs serves /docs and /redoc with local assets
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.db = db
    app.state.runner = runner  # None: no background work (embedded, tests)
    app.state.locator = locator or GeoLocator(settings.geoip_db)
    app.state.local_actor = local_actor
    if db.secrets is None:
        raise ValueError("the control plane's Database needs its secret box (secrets=...)")
    app.state.snapshots = SnapshotCache(db.secrets)
    app.state.realigner = Realigner(db, app.state.snapshots)  # revision numbers used twice
    app.state.notifier = RevisionNotifier(db, check=app.state.realigner.check)
    app.state.heartbeats = HeartbeatBuffer(db, settings)
    app.state.acme_orders = Orders(db, settings)  # background certificate orders
    app.state.sign_in_throttles = sign_in_throttles()
    problems.install(app)

    # First: a load balancer's probe every second or so, matched before ~300 other routes.
    @app.get("/healthz", tags=["system"], responses={503: {"description": "database unreachable"}})
    def healthz() -> JSONResponse:
        if not db.ping():
            return problems.problem_response(
                problems.http_problem(503, "the database is unreachable", database="unreachable")
            )
        return JSONResponse({"status": "ok", "version": __version__})

    docs.install(app)
    dashboard.install(app)
    openapi.install(app)
    prometheus.install(app, db, runner)
    app.include_router(access.router)
    app.include_router(session.router)
    app.include_router(inventory.router)
    app.include_router(operations.router)
    app.include_router(dr.router)
    app.include_router(scaling.router)
    app.include_router(cdn.router)
    app.include_router(cdn_security.router)
    app.include_router(bots.router)
    app.include_router(waf.router)
    app.include_router(costs.router)
    app.include_router(edge.router)
    app.include_router(edge_deploy.router)
    app.include_router(functions.router)
    app.include_router(function_obs.router)
    app.include_router(edge_logs.router)
    app.include_router(domains.router)
    app.include_router(alerts.router)
    app.include_router(metrics.router)
    app.include_router(ocsp.router)
    app.include_router(origin_client.router)
    app.include_router(origin_client.health_router)
    app.include_router(overview.router)
    app.include_router(iac.router)
    app.include_router(backups.router)
    app.include_router(control_plane.router)
    app.include_router(service_accounts.router)
    app.include_router(secrets.router)
    app.include_router(security_score.router)

    return app
