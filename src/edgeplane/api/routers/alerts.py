"""Alerts of the project (certificate expiry and renewal failures, for now)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from edgeplane.api.deps import Ctx
from edgeplane.services import alerts

router = APIRouter(prefix="/api/v1", tags=["alerts"])


@router.get("/alerts", response_model=list[alerts.Alert])
def list_alerts(
    ctx: Ctx,
    kind: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[alerts.Alert]:
    """Newest first; ``kind``: certificate_expiry, certificate_renewal_failed."""
    with ctx.read() as tx:
        return alerts.list_alerts(tx, kind=kind, limit=limit)
