"""Budgets: a monthly amount per project and the percentages of it that raise an alert.

Editors create, change and delete a project's budgets, viewers read them; each change is
audited (kind ``budget``). A budget's view shows where the project's spending of the current
month stands: month to date, forecast, the percentage used and the highest threshold reached.

``check_budgets`` (a control plane job, every ``budget_interval_s``) prices each project that
has budgets as of now and raises a ``budget`` alert for every threshold the month-to-date
spending has newly reached this month: ``warning`` below 100 %, ``critical`` at 100 % and
above. What was alerted is kept on the budget (``period``, ``alerted``), and the alert itself
is raised once per (budget, month, threshold): object ``PROJECT/BUDGET`` (alerts are unique
across projects, budget ids only within one), key ``YYYY-MM:THRESHOLD``. A new month starts
over: its thresholds alert again as the new month's spending reaches them. The job reads
first and writes only when a budget has something new.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from edgeplane.costs.budget import Budget, level
from edgeplane.costs.compute import CostReport
from edgeplane.model.costs import BudgetCreate, BudgetView
from edgeplane.model.enums import Role
from edgeplane.services import alerts, cost_model, cost_usage, costs
from edgeplane.services.common import choose_id, get_scoped, merge_patch, validate
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.store.db import Database, Tx
from edgeplane.store.monitoring_tables import BudgetRow
from edgeplane.store.tables import utcnow

KIND = "budget"
ALERT_KIND = "budget"
CRITICAL_AT = 100  # percent: thresholds from here alert as critical


def _fields(row: BudgetRow) -> dict[str, Any]:
    """The budget as given (what the audit records and a patch merges into)."""
    return {
        "id": row.id,
        "name": row.name,
        "amount": row.amount,
        "thresholds": list(row.thresholds or []),
    }


def _budget(row: BudgetRow) -> Budget:
    return Budget(amount=row.amount, thresholds=tuple(row.thresholds or ()))


def reached(budget: Budget, spent: float) -> list[int]:
    """The thresholds ``spent`` reaches, lowest first."""
    top = level(budget, spent)
    return [] if top is None else [t for t in budget.thresholds if t <= top]


def _view(row: BudgetRow, report: CostReport, month: str) -> BudgetView:
    spent = report.month_to_date
    return BudgetView(
        id=row.id,
        project=row.project_id,
        name=row.name,
        amount=row.amount,
        currency=report.currency,
        thresholds=list(row.thresholds or []),
        month=month,
        month_to_date=spent,
        forecast=report.forecast,
        percent=round(spent / row.amount * 100, 2),
        reached=level(_budget(row), spent),
        alerted=list(row.alerted or []) if row.period == month else [],
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _views(tx: Tx, rows: list[BudgetRow]) -> list[BudgetView]:
    now = utcnow()
    report = costs.report(tx, now=now)
    month = cost_usage.month_of(now)
    return [_view(row, report, month) for row in rows]


def _fill(row: BudgetRow, spec: BudgetCreate) -> None:
    row.name = spec.name or spec.id
    row.amount = spec.amount
    row.thresholds = list(spec.thresholds)


def create(tx: Tx, data: BudgetCreate | dict[str, Any]) -> BudgetView:
    tx.actor.require(tx.project, Role.EDITOR)
    spec = data if isinstance(data, BudgetCreate) else validate(BudgetCreate, data)
    budget_id = choose_id(tx, BudgetRow, spec.id, KIND, "budget")
    row = BudgetRow(project_id=tx.project, id=budget_id, period=None, alerted=[])
    _fill(row, spec)
    tx.session.add(row)
    tx.session.flush()
    tx.record("create", KIND, budget_id, None, _fields(row))
    return _views(tx, [row])[0]


def list_budgets(tx: Tx) -> list[BudgetView]:
    tx.actor.require(tx.project, Role.VIEWER)
    rows = tx.session.scalars(
        select(BudgetRow).where(BudgetRow.project_id == tx.project).order_by(BudgetRow.id)
    )
    return _views(tx, list(rows))


def get(tx: Tx, budget_id: str) -> BudgetView:
    tx.actor.require(tx.project, Role.VIEWER)
    return _views(tx, [get_scoped(tx, BudgetRow, budget_id, "budget")])[0]


def update(tx: Tx, budget_id: str, patch: dict[str, Any]) -> BudgetView:
    """A JSON merge patch of the name, amount or thresholds (the id stays)."""
    tx.actor.require(tx.project, Role.EDITOR)
    row = get_scoped(tx, BudgetRow, budget_id, "budget")
    before = _fields(row)
    spec = merge_patch(BudgetCreate, before, patch, fixed={"id"})
    _fill(row, spec)
    tx.session.flush()
    tx.record("update", KIND, budget_id, before, _fields(row))
    return _views(tx, [row])[0]


def delete(tx: Tx, budget_id: str) -> None:
    tx.actor.require(tx.project, Role.EDITOR)
    row = get_scoped(tx, BudgetRow, budget_id, "budget")
    before = _fields(row)
    tx.session.delete(row)
    tx.record("delete", KIND, budget_id, before, None)


# The job ----------------------------------------------------------------------------------


def _new(row: BudgetRow, month: str, spent: float) -> list[int]:
    """The thresholds ``spent`` reaches that this month has not alerted yet."""
    alerted = set(row.alerted or []) if row.period == month else set()
    return [t for t in reached(_budget(row), spent) if t not in alerted]


def _raise(tx: Tx, row: BudgetRow, month: str, threshold: int, report: CostReport) -> bool:
    spent, currency = report.month_to_date, report.currency
    percent = round(spent / row.amount * 100, 2)
    message = (
        f"budget {row.name!r} of project {row.project_id}: {spent:.2f} {currency} spent in "
        f"{month}, {percent:g}% of {row.amount:.2f} {currency} (threshold {threshold}%); "
        f"forecast for the month {report.forecast:.2f} {currency}"
    )
    details = {
        "project": row.project_id,
        "budget": row.id,
        "name": row.name,
        "month": month,
        "threshold": threshold,
        "amount": row.amount,
        "month_to_date": spent,
        "forecast": report.forecast,
        "percent": percent,
        "currency": currency,
    }
    alert_id = alerts.raise_once(
        tx,
        row.project_id,
        ALERT_KIND,
        f"{row.project_id}/{row.id}",
        f"{month}:{threshold}",
        "critical" if threshold >= CRITICAL_AT else "warning",
        message,
        details,
    )
    return alert_id is not None


def _record(tx: Tx, month: str, report: CostReport) -> int:
    """Alert the project's budgets' new thresholds and note them; the alerts raised."""
    raised = 0
    rows = tx.session.scalars(select(BudgetRow).where(BudgetRow.project_id == tx.project))
    for row in rows:
        new = _new(row, month, report.month_to_date)
        if row.period == month and not new:
            continue
        for threshold in new:
            raised += _raise(tx, row, month, threshold, report)
        kept = set(row.alerted or []) if row.period == month else set()
        row.period = month
        row.alerted = sorted(kept | set(new))
    return raised


def check_budgets(db: Database, settings: Settings, *, now: datetime | None = None) -> int:
    """Price every project that has budgets as of ``now`` and alert the thresholds newly
    reached this month; the number of alerts raised. ``settings``: the job's signature."""
    del settings
    now = now or utcnow()
    month = cost_usage.month_of(now)
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        projects = sorted(set(tx.session.scalars(select(BudgetRow.project_id))))
    raised = 0
    for project in projects:
        with db.read(LOCAL, project) as tx:
            report = costs.priced(tx, cost_model.current(tx), project, month, now)
            rows = tx.session.scalars(select(BudgetRow).where(BudgetRow.project_id == project))
            due = any(row.period != month or _new(row, month, report.month_to_date) for row in rows)
        if due:
            with db.transaction(LOCAL, project) as tx:
                raised += _record(tx, month, report)
    return raised
