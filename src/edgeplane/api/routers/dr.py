"""A DR config's live side: its state, its timeline, failover and failback, and drills."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from edgeplane.api.deps import Ctx
from edgeplane.dr import drill, live
from edgeplane.model.common import Page
from edgeplane.model.dr import DREvent, Drill, DRStatus, SwitchRequest

router = APIRouter(prefix="/api/v1/infrastructure/dr-configs", tags=["operations"])

Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]
Limit = Annotated[int | None, Query(ge=1, le=1000, description="page size, 100 by default")]


@router.get("/{dr_id}/status", response_model=DRStatus)
def dr_status(ctx: Ctx, dr_id: str) -> DRStatus:
    """Which data center serves, the primary's health, the open episode and the last drill."""
    with ctx.read() as tx:
        return live.status(tx, dr_id)


@router.get("/{dr_id}/events", response_model=Page[DREvent])
def dr_events(ctx: Ctx, dr_id: str, cursor: Cursor = None, limit: Limit = None) -> Page[DREvent]:
    """The timeline of failovers, failbacks and drills, newest first."""
    with ctx.read() as tx:
        return live.events_page(tx, dr_id, cursor=cursor, limit=limit)


@router.post("/{dr_id}/failover", response_model=DRStatus)
def failover(ctx: Ctx, dr_id: str, body: SwitchRequest) -> DRStatus:
    """Confirm a pending failover, or force one: traffic moves to the backup data center.
    409 when traffic is there already or a drill holds the config."""
    with ctx.write() as tx:
        return live.switch(tx, dr_id, "failover", body.reason)


@router.post("/{dr_id}/failback", response_model=DRStatus)
def failback(ctx: Ctx, dr_id: str, body: SwitchRequest) -> DRStatus:
    """Confirm a pending failback, or force one: traffic returns to the primary data center.
    409 when traffic is there already or a drill holds the config."""
    with ctx.write() as tx:
        return live.switch(tx, dr_id, "failback", body.reason)


@router.post(
    "/{dr_id}/drills",
    response_model=Drill,
    status_code=202,
    responses={200: {"model": Drill, "description": "the drill's report (with ?wait=true)"}},
)
def run_drill(
    ctx: Ctx,
    request: Request,
    response: Response,
    dr_id: str,
    wait: Annotated[bool, Query(description="wait for the drill's report")] = False,
    timeout: Annotated[
        float, Query(gt=0, le=3600, description="seconds to wait with ?wait=true")
    ] = 300.0,
) -> Drill:
    """Start a drill: the primary drained, spec 004's recovery steps, RTO and RPO measured,
    the primary restored. The drill is queued for the control plane's runner: 202 with it
    (poll ``GET .../drills/{id}``), or with ``?wait=true`` 200 with its report once it is over
    (202 if it still runs after ``timeout``). 409 naming why it cannot run now."""
    with ctx.read() as tx:
        live.config(tx, dr_id)
    drill_id = drill.start(ctx.db, ctx.settings, ctx.project, dr_id, ctx.actor, "manual")
    if getattr(request.app.state, "runner", None) is None:
        # Embedded (no background work): the drill runs in the call.
        drill.execute(ctx.db, ctx.settings, drill_id)
    elif wait:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with ctx.read() as tx:
                if live.get_drill(tx, dr_id, drill_id).status not in ("queued", "running"):
                    break
            time.sleep(0.2)
    with ctx.read() as tx:
        found = live.get_drill(tx, dr_id, drill_id)
    if found.status not in ("queued", "running"):
        response.status_code = 200
    return found


@router.get("/{dr_id}/drills", response_model=Page[Drill])
def list_drills(ctx: Ctx, dr_id: str, cursor: Cursor = None, limit: Limit = None) -> Page[Drill]:
    """The config's drills, newest first."""
    with ctx.read() as tx:
        return live.drills_page(tx, dr_id, cursor=cursor, limit=limit)


@router.get("/{dr_id}/drills/{drill_id}", response_model=Drill)
def get_drill(ctx: Ctx, dr_id: str, drill_id: str) -> Drill:
    """A drill: its steps with their times, the measured RTO and RPO, pass or fail."""
    with ctx.read() as tx:
        return live.get_drill(tx, dr_id, drill_id)
