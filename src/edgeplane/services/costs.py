"""A project's costs in a month: its measured usage (``edgeplane.services.cost_usage``) priced
by the cost model in force (``edgeplane.services.cost_model``) with the pure
``edgeplane.costs.compute.cost_report``: month to date, forecast, the lines, their splits by
service, domain and region, and the recommendations.

``report`` is a project's own (viewer role); ``report_all`` the platform's view of every
project's totals (platform admins).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select

from edgeplane.costs.compute import CostReport, cost_report
from edgeplane.costs.model import CostModel
from edgeplane.model.costs import PlatformCosts, ProjectCosts
from edgeplane.model.enums import Role
from edgeplane.services import cost_model, cost_usage
from edgeplane.store.db import Tx
from edgeplane.store.tables import ProjectRow, utcnow


def priced(tx: Tx, model: CostModel, project: str, month: str | None, now: datetime) -> CostReport:
    """``project``'s report with ``model`` (no access check)."""
    return cost_report(model, cost_usage.project_usage(tx, project, month, now=now))


def report(tx: Tx, month: str | None = None, *, now: datetime | None = None) -> CostReport:
    """The transaction's project's costs in ``month`` (``YYYY-MM``, default: this month)."""
    tx.actor.require(tx.project, Role.VIEWER)
    return priced(tx, cost_model.current(tx), tx.project, month, now or utcnow())


def report_all(tx: Tx, month: str | None = None, *, now: datetime | None = None) -> PlatformCosts:
    """Every project's month to date and forecast in ``month``, the largest first."""
    tx.actor.require_platform_admin()
    now = now or utcnow()
    model = cost_model.current(tx)
    span = cost_usage.period(month, now)
    projects = []
    for project in tx.session.scalars(select(ProjectRow.id).order_by(ProjectRow.id)):
        costs = priced(tx, model, project, span.month, now)
        projects.append(
            ProjectCosts(
                project=project, month_to_date=costs.month_to_date, forecast=costs.forecast
            )
        )
    projects.sort(key=lambda p: (-p.month_to_date, -p.forecast, p.project))
    return PlatformCosts(
        currency=model.currency,
        period_start=span.start,
        period_end=span.end,
        now=min(now, span.end),
        month_to_date=_sum(p.month_to_date for p in projects),
        forecast=_sum(p.forecast for p in projects),
        projects=projects,
    )


def _sum(amounts: Iterable[float]) -> float:
    """Amounts in currency added up in whole cents (no float drift)."""
    return sum(round(a * 100) for a in amounts) / 100
