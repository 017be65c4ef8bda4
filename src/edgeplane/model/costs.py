"""The API's models of cost tracking: budgets as stored and shown, and the platform's totals.

The cost model itself (``edgeplane.costs.model.CostModel``) and a project's report
(``edgeplane.costs.compute.CostReport``) are the pure package's own models, used as they are.
A budget's amount and thresholds follow ``edgeplane.costs.budget.Budget``'s rules: the amount
above 0, each threshold a percentage of it from 1 to 1000, kept sorted and once each.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import ConfigDict, Field

from edgeplane.costs.budget import Budget
from edgeplane.model.common import Int, Name, Output, Slug, patch_model

MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
"""A billing month, ``YYYY-MM``."""

Percent = Annotated[Int, Field(ge=1, le=1000)]
"""A budget's threshold: a percentage of its amount (above 100: overspending)."""


class BudgetCreate(Budget):
    """A monthly budget of the project: alerts when the month-to-date spending reaches each
    threshold (a percentage of ``amount``)."""

    model_config = ConfigDict(extra="forbid", frozen=False)

    id: Slug = Field(
        description="lower-case letters, digits, '_' and '-', 1-63 characters, starting with "
        "a letter or digit",
        examples=["monthly"],
    )
    name: Name | None = Field(None, description="display name (default: the id)")
    thresholds: list[Percent] = Field(  # type: ignore[assignment]
        [50, 80, 100],
        min_length=1,
        max_length=20,
        description="percentages of the amount that raise an alert (1-1000), e.g. 50, 80, 100",
    )

    def budget(self) -> Budget:
        """The pure budget (amount and thresholds) that ``costs.budget`` checks."""
        return Budget(amount=self.amount, thresholds=self.thresholds)


class BudgetPatch(patch_model(BudgetCreate)):  # type: ignore[misc]
    """``PATCH``: a JSON merge patch of a budget, the fields to change (not its id)."""


class BudgetView(Output):
    """A budget and where the project's spending of the current month stands against it."""

    id: str
    project: str
    name: str
    amount: float
    currency: str
    thresholds: list[int]
    month: str  # the current month, YYYY-MM
    month_to_date: float  # the project's spending so far this month
    forecast: float  # by the end of the month
    percent: float  # month_to_date / amount, in percent (2 decimals)
    reached: int | None  # the highest threshold reached this month, or None
    alerted: list[int]  # the thresholds alerted this month
    created_at: datetime
    updated_at: datetime


class ProjectCosts(Output):
    project: str
    month_to_date: float
    forecast: float


class PlatformCosts(Output):
    """Every project's costs in one month, and their sum."""

    currency: str
    period_start: datetime
    period_end: datetime
    now: datetime
    month_to_date: float
    forecast: float
    projects: list[ProjectCosts]  # the largest month to date first
