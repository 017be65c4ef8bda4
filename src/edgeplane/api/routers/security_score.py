"""Security scores of the project's domains, its compliance policy and report, and the edge
nodes' exposed surface (``docs/security-score.md``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from edgeplane.api.deps import Ctx, GlobalCtx
from edgeplane.errors import Conflict
from edgeplane.model.security_score import (
    CompliancePolicy,
    CompliancePolicyIn,
    ComplianceReport,
    DomainScore,
    NodeSurface,
    ScoreSummary,
)
from edgeplane.services import compliance, node_surface, security_scores

router = APIRouter(prefix="/api/v1/security", tags=["security"])


@router.get("/scores", response_model=list[ScoreSummary], summary="Each domain's newest score")
def list_scores(ctx: Ctx) -> list[ScoreSummary]:
    with ctx.read() as tx:
        return security_scores.list_scores(tx)


@router.get("/scores/{domain}", response_model=DomainScore, summary="A domain's checks and history")
def get_score(
    ctx: Ctx, domain: str, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> DomainScore:
    """The newest score card (every check with its result, weight, points, advice and what
    was seen) and up to ``limit`` evaluations, newest first."""
    with ctx.read() as tx:
        return security_scores.domain_score(tx, domain, limit)


@router.post("/scores/{domain}/evaluate", response_model=DomainScore, summary="Score a domain now")
async def evaluate_score(ctx: Ctx, domain: str) -> DomainScore:
    """Probe the domain on every live edge node now (a few seconds), store the evaluation,
    evaluate the compliance policy, and answer the new score card."""

    def check() -> str:
        with ctx.read() as tx:
            return security_scores.evaluate_now(ctx.db, ctx.settings, tx, domain)

    name = await run_in_threadpool(check)
    done = await run_in_threadpool(security_scores.evaluate, ctx.db, ctx.settings, None, [name])
    if not done:
        raise Conflict(f"no edge node answered the probe of {name}: nothing was recorded")
    await run_in_threadpool(compliance.evaluate_all, ctx.db, {ctx.project})

    def read() -> DomainScore:
        with ctx.read() as tx:
            return security_scores.domain_score(tx, name)

    return await run_in_threadpool(read)


@router.get("/compliance", response_model=CompliancePolicy, summary="The compliance policy")
def get_policy(ctx: Ctx) -> CompliancePolicy:
    """The project's requirements, and the catalogue they are chosen from."""
    with ctx.read() as tx:
        return compliance.get_policy(tx)


@router.put("/compliance", response_model=CompliancePolicy, summary="Set the compliance policy")
def put_policy(ctx: Ctx, body: CompliancePolicyIn) -> CompliancePolicy:
    """Replace the project's requirements (an empty list: no policy); the report follows at
    once from the newest scores."""
    with ctx.write() as tx:
        return compliance.set_policy(tx, body)


@router.get("/compliance/report", response_model=ComplianceReport, summary="Compliance per domain")
def get_report(ctx: Ctx) -> ComplianceReport:
    """Each domain against each requirement: pass / fail / unknown, the evidence, and since
    when."""
    with ctx.read() as tx:
        return compliance.report(tx)


@router.get("/nodes", response_model=list[NodeSurface], summary="The edge nodes' exposed ports")
def list_nodes(ctx: GlobalCtx) -> list[NodeSurface]:
    with ctx.read(scoped=False) as tx:
        return node_surface.list_surfaces(tx)


@router.post("/nodes/scan", response_model=list[NodeSurface], summary="Scan the edge nodes now")
async def scan_nodes(ctx: GlobalCtx) -> list[NodeSurface]:
    """Scan every live node's address now (an admin of the default project)."""

    def allowed() -> None:
        with ctx.read(scoped=False) as tx:
            tx.actor.require_platform_admin()

    await run_in_threadpool(allowed)
    await run_in_threadpool(node_surface.run_once, ctx.db, ctx.settings)

    def read() -> list[NodeSurface]:
        with ctx.read(scoped=False) as tx:
            return node_surface.list_surfaces(tx)

    return await run_in_threadpool(read)
