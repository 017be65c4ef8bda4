"""``CostService``: a project's costs for a month, the cost model and budgets."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pydantic import TypeAdapter

from edgeplane.costs.compute import CostReport
from edgeplane.costs.model import CostModel
from edgeplane.model.costs import BudgetView, PlatformCosts
from edgeplane.sdk.client import body_of
from edgeplane.sdk.service import ProjectService

BASE = "/api/v1/costs"


class CostService(ProjectService):
    """Costs, embedded or against a control plane (``EDGEPLANE_URL``).

    Methods that take ``project_id`` act in that project; the others in ``project_id`` given
    here (default ``default``). A month is ``YYYY-MM`` (default: the current one, UTC).
    """

    async def report(self, month: str | None = None, project_id: str | None = None) -> CostReport:
        """Month to date, forecast, the lines, by service / domain / region, and the
        recommendations with their monthly savings."""
        return CostReport.model_validate(await self._call("GET", BASE, project_id, month=month))

    async def report_all(self, month: str | None = None) -> PlatformCosts:
        """Every project's totals (platform admins)."""
        doc = await self.client.request("GET", f"{BASE}/all", params={"month": month})
        return PlatformCosts.model_validate(doc)

    async def model(self) -> CostModel:
        """The prices in force."""
        return CostModel.model_validate(await self._call("GET", f"{BASE}/model"))

    async def set_model(
        self, model: CostModel | dict[str, Any] | None = None, **fields: Any
    ) -> CostModel:
        """Replace the prices (platform admins): a model, a dict, or fields (the others take
        the specification's defaults), e.g. ``set_model(cdn_per_gb=0.05)``."""
        body = {**(body_of(model) if model is not None else {}), **fields}
        doc = await self.client.request("PUT", f"{BASE}/model", json=body)
        return CostModel.model_validate(doc)

    async def budgets(self, project_id: str | None = None) -> list[BudgetView]:
        doc = await self._call("GET", f"{BASE}/budgets", project_id)
        return TypeAdapter(list[BudgetView]).validate_python(doc)

    async def budget(self, budget_id: str, project_id: str | None = None) -> BudgetView:
        path = f"{BASE}/budgets/{quote(budget_id, safe='')}"
        return BudgetView.model_validate(await self._call("GET", path, project_id))

    async def create_budget(
        self,
        budget_id: str,
        amount: float,
        thresholds: list[int] | None = None,
        *,
        name: str | None = None,
        project_id: str | None = None,
    ) -> BudgetView:
        """A monthly budget; ``thresholds``: percentages of ``amount`` that alert (default
        50, 80, 100)."""
        body: dict[str, Any] = {"id": budget_id, "amount": amount}
        if thresholds is not None:
            body["thresholds"] = list(thresholds)
        if name is not None:
            body["name"] = name
        doc = await self._call("POST", f"{BASE}/budgets", project_id, body)
        return BudgetView.model_validate(doc)

    async def update_budget(
        self, budget_id: str, *, project_id: str | None = None, **changes: Any
    ) -> BudgetView:
        """Change the name, amount or thresholds."""
        path = f"{BASE}/budgets/{quote(budget_id, safe='')}"
        return BudgetView.model_validate(await self._call("PATCH", path, project_id, changes))

    async def delete_budget(self, budget_id: str, project_id: str | None = None) -> None:
        await self._call("DELETE", f"{BASE}/budgets/{quote(budget_id, safe='')}", project_id)
