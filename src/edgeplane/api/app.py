"""The FastAPI application of the control plane."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

import edgeplane
from edgeplane.api import openapi, problems
from edgeplane.api.routers import (
    access,
    alerts,
    cdn,
    domains,
    edge,
    edge_deploy,
    inventory,
    operations,
)
from edgeplane.routing.geoip import GeoLocator
from edgeplane.secrets import SecretBox, bind
from edgeplane.services.actor import Actor
from edgeplane.settings import Settings
from edgeplane.store.db import Database


def create_app(
    settings: Settings,
    db: Database,
    *,
    locator: GeoLocator | None = None,
    local_actor: Actor | None = None,
    background: bool = False,
) -> FastAPI:
    """The API over ``db``. ``local_actor`` skips token checks (the embedded SDK's own app);
    ``background`` runs the control plane's background work (``edgeplane.api.background``)."""
    from edgeplane.api.background import running

    app = FastAPI(
        lifespan=running if background else None,
        title="Edgeplane",
        version=edgeplane.__version__,
        description="Edge infrastructure from one control plane: inventory, routing, "
        "load balancing and disaster recovery. Authenticate with `Authorization: Bearer "
        "<token>`; choose the project with `?project=` (default: `default`).",
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.db = db
    app.state.locator = locator or GeoLocator(settings.geoip_db)
    app.state.local_actor = local_actor
    bind(db.engine, SecretBox.from_settings(settings))
    problems.install(app)
    openapi.install(app)
    app.include_router(access.router)
    app.include_router(inventory.router)
    app.include_router(operations.router)
    app.include_router(cdn.router)
    app.include_router(edge.router)
    app.include_router(edge_deploy.router)
    app.include_router(domains.router)
    app.include_router(alerts.router)

    @app.get("/healthz", tags=["system"], responses={503: {"description": "database unreachable"}})
    def healthz() -> JSONResponse:
        from sqlalchemy import text

        try:
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            return problems.problem_response(
                problems.http_problem(503, "the database is unreachable", database="unreachable")
            )
        return JSONResponse({"status": "ok", "version": edgeplane.__version__})

    return app
