"""Infrastructure as code over REST: export, plan, apply, drift, the newest applied file and
the file's JSON Schema (for the dashboard, CI systems, the CLI and the SDK)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from edgeplane.api.deps import Ctx
from edgeplane.iac import schema, service
from edgeplane.model.iac import (
    AppliedFile,
    ApplyRequest,
    DriftReport,
    PlanRequest,
    PlanResult,
)

router = APIRouter(prefix="/api/v1/iac", tags=["infrastructure as code"])


@router.get("/export", summary="The project's live state as a file")
def export_state(ctx: Ctx) -> dict[str, Any]:
    """Every object of the project (and the platform's own regions) in the file format,
    fields at their default left out; secrets as references to fill in."""
    return service.export(ctx.db, ctx.actor, ctx.project, ctx.settings)


@router.post("/plan", response_model=PlanResult, summary="What applying a file would change")
def plan_file(ctx: Ctx, body: PlanRequest) -> dict[str, Any]:
    """Create / update / replace / delete per object with the fields that differ, warnings,
    the monthly cost change, and the state digest a saved plan carries. Nothing is written:
    the changes run in a transaction that is rolled back, so the plan checks all the apply
    will."""
    result = service.plan(
        ctx.db, ctx.actor, ctx.project, ctx.settings, body.document, prune=body.prune
    )
    return result.doc()


@router.post("/apply", response_model=PlanResult, summary="Apply a file: all or nothing")
def apply_file(ctx: Ctx, body: ApplyRequest) -> dict[str, Any]:
    """One transaction, one revision (the edge converges once); objects outside the file's
    sections and, without `prune`, outside the file are left alone. Serialised per project:
    another apply waits `lock_timeout_s`, then 409 naming who holds the lock. With `state`
    (a saved plan's), refused with 409 if the live state moved since."""
    result = service.apply(
        ctx.db,
        ctx.actor,
        ctx.project,
        ctx.settings,
        body.document,
        prune=body.prune,
        expect_state=body.state,
        source=body.source,
        environment=body.environment,
        lock_timeout_s=body.lock_timeout_s,
    )
    return result.doc()


@router.get("/drift", response_model=DriftReport, summary="What changed since the last apply")
def get_drift(ctx: Ctx) -> dict[str, Any]:
    """Each object of the newest applied file that differs now, is gone, or was added to a
    section it manages, with the fields and the audit events (who, when) since the apply."""
    return service.drift_report(ctx.db, ctx.actor, ctx.project, ctx.settings)


@router.get("/applied", response_model=AppliedFile | None, summary="The newest applied file")
def get_applied(ctx: Ctx) -> dict[str, Any] | None:
    return service.latest_applied(ctx.db, ctx.actor, ctx.project)


@router.get("/schema", summary="The file's JSON Schema")
def get_schema() -> dict[str, Any]:
    return schema.document_schema()
