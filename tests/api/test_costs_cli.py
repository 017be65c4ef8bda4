"""``edgeplane cost`` and ``CostService`` embedded on the test app's database: the report, the
model, budgets."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import Api, Cli
from edgeplane.errors import InvalidInput
from edgeplane.store.actor import LOCAL
from edgeplane.store.tables import EdgeAnalyticsRow, EdgeNodeRow

# The CLI / SDK / contract over the API: the API itself runs on both databases elsewhere.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_cost_report_model_and_budgets(api: Api, cli: Cli, tmp_path: Path) -> None:
    model = tmp_path / "model.yaml"
    model.write_text("gb_bytes: 1000\ncdn_free_gb_month: 0\ncdn_per_gb: 0.25\n")
    doc = cli.json("cost", "model", "set", "--file", str(model))
    assert (doc["gb_bytes"], doc["cdn_per_gb"], doc["edge_region_monthly"]) == (1000, 0.25, 5.0)
    assert cli.json("cost", "model") == doc
    assert "premium" in cli.run("cost", "model").stdout

    minute = datetime.now(UTC).replace(second=0, microsecond=0)
    with api.db.transaction(LOCAL, "default") as tx:
        tx.session.add(EdgeNodeRow(id="n-eu", name="fra-1", region="eu-central"))
        tx.session.add(
            EdgeAnalyticsRow(
                node_id="n-eu",
                domain="shop.example.test",
                minute=minute,
                project_id="default",
                requests=4,
                bytes_out=8000,
            )
        )
    report = cli.json("cost")
    assert report["month_to_date"] == 2.0  # 8 "GB" x 0.25
    assert report["by_region"]["eu-central"]["month_to_date"] == 2.0
    assert report["lines"][0]["quantity"] == 8.0
    text = cli.run("cost").stdout
    for words in ("month to date", "2.00 USD", "by service", "by region", "eu-central"):
        assert words in text, text
    assert "no recommendations" in cli.run("cost").stderr
    assert cli.json("cost", "--month", "2020-02")["month_to_date"] == 0.0
    assert "month: must be a month written YYYY-MM" in cli.fails(
        "cost", "--month", "2026-13", code=1
    )

    budget_id = cli.run(
        "cost", "budget", "create", "monthly", "--amount", "4", "--threshold", "50",
        "--threshold", "80", "-q",
    ).stdout.strip()  # fmt: skip
    assert budget_id == "monthly"
    (budget,) = cli.json("cost", "budget", "list")
    assert (budget["thresholds"], budget["percent"], budget["reached"]) == ([50, 80], 50.0, 50)
    assert "monthly" in cli.run("cost", "budget", "list").stdout
    assert "amount" in cli.fails("cost", "budget", "create", "b2", "--amount", "-1", code=1)
    cli.run("cost", "budget", "delete", "monthly")
    assert cli.json("cost", "budget", "list") == []


def test_cost_service_embedded(api: Api) -> None:
    import edgeplane
    from edgeplane.sdk import embedded
    from edgeplane.sdk.client import Client
    from edgeplane.sdk.cost_service import CostService
    from edgeplane.settings import Settings

    assert edgeplane.CostService is CostService and "CostService" in edgeplane.__all__
    costs = CostService(client=Client(Settings(home=api.tmp / "home", database_url=api.db.url)))

    async def scenario() -> None:
        try:
            model = await costs.set_model(gb_bytes=1000, cdn_free_gb_month=0)
            assert (model.gb_bytes, model.cdn_per_gb) == (1000, 0.08)
            assert (await costs.model()) == model
            report = await costs.report("2026-01")
            assert (report.month_to_date, report.project) == (0.0, "default")
            budget = await costs.create_budget("monthly", 25.0, [90, 50])
            assert (budget.thresholds, budget.percent, budget.reached) == ([50, 90], 0.0, None)
            budget = await costs.update_budget("monthly", amount=30.0)
            assert (budget.amount, budget.thresholds) == (30.0, [50, 90])
            assert [b.id for b in await costs.budgets()] == ["monthly"]
            assert (await costs.report_all()).projects[0].project == "default"
            with pytest.raises(InvalidInput) as bad:
                await costs.report("2026-00")
            assert bad.value.field == "month"
            await costs.delete_budget("monthly")
            assert await costs.budgets() == []
        finally:
            await costs.client.aclose()

    try:
        asyncio.run(scenario())
    finally:
        app = embedded._apps.pop(api.db.url, None)
        if app is not None:
            app.state.db.dispose()
