"""``budgets``: the project's monthly budgets (amount, alert thresholds in percent).

A budget's ``name`` defaults to its id (as the service names it); export leaves it out then.
``thresholds`` are kept sorted, once each (the service's rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, field_validator

from edgeplane.iac.kind import Context, Item, Kind, changed_fields, project_rows
from edgeplane.model.costs import BudgetCreate
from edgeplane.services import budgets
from edgeplane.store.monitoring_tables import BudgetRow


class BudgetItem(BudgetCreate):
    """A monthly budget: alerts when the month's spending reaches each threshold."""

    @field_validator("thresholds")
    @classmethod
    def _listed(cls, value: Sequence[int]) -> list[int]:
        return list(value)  # sorted, once each, by Budget's own validator


def _canonical(doc: dict[str, Any]) -> Item:
    out = BudgetItem.model_validate(doc).model_dump(mode="json")
    out["name"] = out["name"] or out["id"]
    return out


class Budgets(Kind):
    section = "budgets"
    noun = "budget"
    item = BudgetItem
    audit_kinds = frozenset({budgets.KIND})

    def read(self, ctx: Context) -> list[Item]:
        tx = ctx.tx
        rows = project_rows(tx, BudgetRow)
        return [
            _canonical(
                {
                    "id": row.id,
                    "name": row.name,
                    "amount": row.amount,
                    "thresholds": list(row.thresholds or []),
                }
            )
            for row in rows
        ]

    def canonical(self, ctx: Context, item: BaseModel) -> Item:
        return _canonical(item.model_dump(mode="json"))

    def exported(self, item: Item) -> Item:
        doc = super().exported(item)
        if doc.get("name") == item["id"]:
            del doc["name"]
        return doc

    def create(self, ctx: Context, item: Item) -> None:
        budgets.create(ctx.tx, item)

    def update(self, ctx: Context, before: Item, after: Item) -> None:
        budgets.update(ctx.tx, after["id"], changed_fields(before, after))

    def delete(self, ctx: Context, item: Item) -> None:
        budgets.delete(ctx.tx, item["id"])
