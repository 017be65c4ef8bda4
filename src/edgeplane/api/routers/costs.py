"""Costs: a project's report for a month, the platform's totals, the cost model, budgets."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from edgeplane.api.deps import Ctx, GlobalCtx
from edgeplane.costs.compute import CostReport
from edgeplane.costs.estimate import CostEstimate, TrafficEstimate, estimate
from edgeplane.costs.model import CostModel
from edgeplane.model.costs import (
    MONTH_PATTERN,
    BudgetCreate,
    BudgetPatch,
    BudgetView,
    PlatformCosts,
)
from edgeplane.services import budgets, cost_model, costs

router = APIRouter(prefix="/api/v1/costs", tags=["costs"])

Month = Annotated[
    str | None,
    Query(
        description="the billing month, YYYY-MM (default: the current month, UTC)",
        json_schema_extra={"pattern": MONTH_PATTERN},
        examples=["2026-04"],
    ),
]


@router.get("", response_model=CostReport)
def get_costs(ctx: Ctx, month: Month = None) -> CostReport:
    """The project's costs in the month: month to date, forecast for the whole month, each
    billed line, the splits by service, domain and region, and recommendations with the
    monthly saving of each."""
    with ctx.read() as tx:
        return costs.report(tx, month)


@router.get("/all", response_model=PlatformCosts)
def get_all_costs(ctx: GlobalCtx, month: Month = None) -> PlatformCosts:
    """Every project's month to date and forecast (platform admins)."""
    with ctx.read() as tx:
        return costs.report_all(tx, month)


@router.get("/model", response_model=CostModel)
def get_cost_model(ctx: Ctx) -> CostModel:
    """The prices in force (the specification's until a platform admin changes them)."""
    with ctx.read() as tx:
        return cost_model.get_model(tx)


@router.post("/estimate", response_model=CostEstimate)
def estimate_costs(ctx: Ctx, body: TrafficEstimate) -> CostEstimate:
    """What a month of the traffic given would cost with the prices in force: the CDN GB
    beyond the monthly free allowance at the price per GB (requests are not priced). Nothing
    is stored; any role in the project may ask."""
    with ctx.read() as tx:
        return estimate(cost_model.get_model(tx), body)


@router.put("/model", response_model=CostModel)
def put_cost_model(ctx: GlobalCtx, body: CostModel) -> CostModel:
    """Replace the prices (platform admins); a field left out takes its default."""
    with ctx.write() as tx:
        return cost_model.set_model(tx, body)


@router.get("/budgets", response_model=list[BudgetView])
def list_budgets(ctx: Ctx) -> list[BudgetView]:
    """The project's budgets, each with this month's spending against it."""
    with ctx.read() as tx:
        return budgets.list_budgets(tx)


@router.post("/budgets", response_model=BudgetView, status_code=201)
def create_budget(ctx: Ctx, body: BudgetCreate) -> BudgetView:
    """A monthly budget: a ``budget`` alert for each threshold (percent of the amount) that
    the month-to-date spending reaches, once a month."""
    with ctx.write() as tx:
        return budgets.create(tx, body)


@router.get("/budgets/{budget_id}", response_model=BudgetView)
def get_budget(ctx: Ctx, budget_id: str) -> BudgetView:
    with ctx.read() as tx:
        return budgets.get(tx, budget_id)


@router.patch("/budgets/{budget_id}", response_model=BudgetView)
def update_budget(ctx: Ctx, budget_id: str, body: BudgetPatch) -> BudgetView:
    """A JSON merge patch of the name, amount or thresholds."""
    with ctx.write() as tx:
        return budgets.update(tx, budget_id, body.model_dump(mode="json", exclude_unset=True))


@router.delete("/budgets/{budget_id}", status_code=204)
def delete_budget(ctx: Ctx, budget_id: str) -> Response:
    with ctx.write() as tx:
        budgets.delete(tx, budget_id)
    return Response(status_code=204)
