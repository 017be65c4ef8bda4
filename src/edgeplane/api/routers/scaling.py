"""Scaling groups: a load balancer's backends made and removed by a provider driver."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from edgeplane.api.deps import Ctx
from edgeplane.model.common import Page
from edgeplane.model.scaling import (
    ScalingAction,
    ScalingGroup,
    ScalingGroupCreate,
    ScalingGroupPatch,
    ScalingInstance,
)
from edgeplane.services import scaling_groups

router = APIRouter(prefix="/api/v1/infrastructure/scaling-groups", tags=["scaling"])

Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]
Limit = Annotated[int | None, Query(ge=1, le=1000, description="page size, 100 by default")]


@router.get("", response_model=Page[ScalingGroup])
def list_groups(ctx: Ctx, cursor: Cursor = None, limit: Limit = None) -> Page[ScalingGroup]:
    with ctx.read() as tx:
        return scaling_groups.list_page(tx, cursor=cursor, limit=limit)


@router.post("", response_model=ScalingGroup, status_code=201)
def create_group(ctx: Ctx, body: ScalingGroupCreate) -> ScalingGroup:
    """A group backing a load balancer: its instances start at once (``min_size``, or
    ``desired``), then follow the policies."""
    with ctx.write() as tx:
        return scaling_groups.create(tx, body)


@router.get("/{group_id}", response_model=ScalingGroup)
def get_group(ctx: Ctx, group_id: str) -> ScalingGroup:
    """The group, its instances, its metrics now and its last action."""
    with ctx.read() as tx:
        return scaling_groups.get(tx, group_id)


@router.patch("/{group_id}", response_model=ScalingGroup)
def update_group(ctx: Ctx, group_id: str, body: ScalingGroupPatch) -> ScalingGroup:  # type: ignore[valid-type]
    """A JSON merge patch; ``desired`` sets the size now (a manual action)."""
    with ctx.write() as tx:
        patch = body.model_dump(mode="json", exclude_unset=True)  # type: ignore[attr-defined]
        return scaling_groups.update(tx, group_id, patch)


@router.post("/{group_id}/resume", response_model=ScalingGroup)
def resume_group(ctx: Ctx, group_id: str) -> ScalingGroup:
    """A group that stopped after failed launches tries again. 409 if it did not stop."""
    with ctx.write() as tx:
        return scaling_groups.resume(tx, group_id)


@router.delete(
    "/{group_id}",
    response_model=ScalingGroup,
    status_code=202,
    responses={204: {"description": "deleted (it had no instances)"}},
)
def delete_group(ctx: Ctx, response: Response, group_id: str) -> ScalingGroup | Response:
    """The group drains and removes its instances, then goes: 202 while it does (the group
    shows ``deleting``), 204 when it had none."""
    with ctx.write() as tx:
        out = scaling_groups.delete(tx, group_id)
        gone = not scaling_groups.live_instances(tx, group_id)
    if gone:
        return Response(status_code=204)
    return out


@router.get("/{group_id}/actions", response_model=Page[ScalingAction])
def group_actions(
    ctx: Ctx, group_id: str, cursor: Cursor = None, limit: Limit = None
) -> Page[ScalingAction]:
    """The group's scaling actions with their steps and timings, newest first."""
    with ctx.read() as tx:
        return scaling_groups.actions_page(tx, group_id, cursor=cursor, limit=limit)


@router.get("/{group_id}/instances", response_model=list[ScalingInstance])
def group_instances(
    ctx: Ctx,
    group_id: str,
    ended: Annotated[bool, Query(description="include deleted and failed instances")] = False,
) -> list[ScalingInstance]:
    with ctx.read() as tx:
        return scaling_groups.instances(tx, group_id, ended=ended)
