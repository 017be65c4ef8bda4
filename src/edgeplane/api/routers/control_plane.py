"""The control plane's replicas (platform admins): which one runs the background jobs."""

from __future__ import annotations

from fastapi import APIRouter, Request

from edgeplane.api.deps import GlobalCtx
from edgeplane.model.control_plane import ControlPlaneStatus
from edgeplane.services import control_plane

router = APIRouter(prefix="/api/v1/control-plane", tags=["control plane"])


@router.get("", response_model=ControlPlaneStatus, summary="Replicas and the background jobs")
def status(ctx: GlobalCtx, request: Request) -> ControlPlaneStatus:
    """The replica holding the runner lease (it runs every background job; another takes
    over within the lease's time when it dies), and the answering replica's jobs."""
    return control_plane.status(ctx.db, ctx.actor, getattr(request.app.state, "runner", None))
