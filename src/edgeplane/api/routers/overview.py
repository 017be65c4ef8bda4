"""A project at a glance, for the dashboard's overview."""

from __future__ import annotations

from fastapi import APIRouter

from edgeplane.api.deps import Ctx
from edgeplane.model.overview import Overview
from edgeplane.services import overview

router = APIRouter(prefix="/api/v1", tags=["access"])


@router.get("/overview", response_model=Overview)
def get_overview(ctx: Ctx) -> Overview:
    """The project's domains by status, its certificates expiring within 30 days and its load
    balancer backends that are down (counts, and the first ten of each list)."""
    with ctx.read() as tx:
        return overview.summary(tx)
