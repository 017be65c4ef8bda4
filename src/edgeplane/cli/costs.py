"""``edgeplane cost``: the project's costs for a month, the cost model, budgets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from edgeplane.cli import options as o
from edgeplane.cli import output
from edgeplane.cli import runtime as rt
from edgeplane.cli.output import Column, Doc

app = typer.Typer(
    help="Costs: month to date, forecast, lines, splits and recommendations; the cost model; "
    "budgets.",
    invoke_without_command=True,
)
model_app = typer.Typer(
    help="The cost model: the prices of every billed item.", invoke_without_command=True
)
budget_app = typer.Typer(help="Monthly budgets, alerted at thresholds (percent of the amount).")
app.add_typer(model_app, name="model")
app.add_typer(budget_app, name="budget")

COSTS_PATH = "/api/v1/costs"
MODEL_PATH = f"{COSTS_PATH}/model"
BUDGETS_PATH = f"{COSTS_PATH}/budgets"

Month = Annotated[
    str | None,
    typer.Option("--month", "-m", help="the billing month, YYYY-MM (default: this month, UTC)"),
]


def _money(value: Any) -> str:
    return f"{float(value):,.2f}"


def _quantity(line: Doc) -> str:
    return f"{output.fmt(line['quantity'])} {line['unit']}"


LINE_COLUMNS: list[Column] = [
    ("SERVICE", "service"),
    ("ITEM", "item"),
    ("DOMAIN", "domain"),
    ("REGION", "region"),
    ("QUANTITY", _quantity),
    ("MONTH TO DATE", lambda r: _money(r["month_to_date"])),
    ("FORECAST", lambda r: _money(r["forecast"])),
]
AMOUNT_COLUMNS: list[Column] = [
    ("", "key"),
    ("MONTH TO DATE", lambda r: _money(r["month_to_date"])),
    ("FORECAST", lambda r: _money(r["forecast"])),
]
RECOMMENDATION_COLUMNS: list[Column] = [
    ("KIND", "kind"),
    ("OBJECT", "object_id"),
    ("SAVING / MONTH", lambda r: _money(r["monthly_saving"])),
    ("WHAT TO DO", "message"),
]
TIER_COLUMNS: list[Column] = [
    ("TIER", "name"),
    ("MAX BACKENDS", lambda t: "unlimited" if t["max_backends"] is None else t["max_backends"]),
    ("MONTHLY", lambda t: _money(t["monthly"])),
]
BUDGET_COLUMNS: list[Column] = [
    ("ID", "id"),
    ("NAME", "name"),
    ("AMOUNT", lambda b: f"{_money(b['amount'])} {b['currency']}"),
    ("THRESHOLDS %", "thresholds"),
    ("MONTH", "month"),
    ("SPENT", lambda b: _money(b["month_to_date"])),
    ("USED", lambda b: f"{b['percent']:g}%"),
    ("FORECAST", lambda b: _money(b["forecast"])),
    ("REACHED", "reached"),
    ("ALERTED", "alerted"),
]
PROJECT_COLUMNS: list[Column] = [
    ("PROJECT", "project"),
    ("MONTH TO DATE", lambda r: _money(r["month_to_date"])),
    ("FORECAST", lambda r: _money(r["forecast"])),
]


def _heading(text: str) -> None:
    output.blank()
    output.line(text, "bold")


def _amounts(split: Doc, title: str, what: str) -> None:
    _heading(title)
    output.table([{"key": k, **v} for k, v in split.items()], AMOUNT_COLUMNS, title=what)


def render_report(doc: Doc) -> None:
    currency = doc["currency"]
    output.details(
        {
            "project": doc["project"],
            "period": f"{output.fmt(doc['period_start'])} to {output.fmt(doc['period_end'])}",
            "as of": doc["now"],
            "month to date": f"{_money(doc['month_to_date'])} {currency}",
            "forecast": f"{_money(doc['forecast'])} {currency}",
        }
    )
    _heading("lines")
    output.table(doc["lines"], LINE_COLUMNS, title="billed lines")
    _amounts(doc["by_service"], "by service", "services")
    _amounts(doc["by_domain"], "by domain", "traffic by domain")
    _amounts(doc["by_region"], "by region", "traffic by region")
    _heading("recommendations")
    output.table(doc["recommendations"], RECOMMENDATION_COLUMNS, title="recommendations")


def render_model(doc: Doc) -> None:
    output.details(doc, skip=("lb_tiers",))
    _heading("load balancer tiers")
    output.table(doc["lb_tiers"], TIER_COLUMNS, title="tiers")


@app.callback()
def report(ctx: typer.Context, month: Month = None, as_json: o.Json = False) -> None:
    """The project's costs for a month: month to date, forecast, every line, by service,
    domain and region, and recommendations with their monthly savings."""
    if ctx.invoked_subcommand is not None:
        return
    rt.request(
        ctx, as_json, "GET", COSTS_PATH, params=rt.compact(month=month), render=render_report
    )


@app.command("all")
def report_all(ctx: typer.Context, month: Month = None, as_json: o.Json = False) -> None:
    """Every project's month to date and forecast (platform admins)."""

    def render(doc: Doc) -> None:
        output.details(
            {
                "period": f"{output.fmt(doc['period_start'])} to {output.fmt(doc['period_end'])}",
                "month to date": f"{_money(doc['month_to_date'])} {doc['currency']}",
                "forecast": f"{_money(doc['forecast'])} {doc['currency']}",
            }
        )
        output.blank()
        output.table(doc["projects"], PROJECT_COLUMNS, title="projects")

    params = rt.compact(month=month)
    rt.request(ctx, as_json, "GET", f"{COSTS_PATH}/all", params=params, render=render)


# The cost model ---------------------------------------------------------------------------


@model_app.callback()
def model_show(ctx: typer.Context, as_json: o.Json = False) -> None:
    """Show the prices in force."""
    if ctx.invoked_subcommand is not None:
        return
    rt.request(ctx, as_json, "GET", MODEL_PATH, render=render_model)


@model_app.command("set")
def model_set(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Option(
            "--file",
            "-f",
            help="the whole model, YAML or JSON; fields left out take the specification's defaults",
        ),
    ],
    as_json: o.Json = False,
) -> None:
    """Replace the cost model (platform admins)."""
    body = rt.read_mapping(file, "cdn_per_gb, lb_tiers")
    rt.request(ctx, as_json, "PUT", MODEL_PATH, body=body, scoped=False, render=render_model)


# Budgets ----------------------------------------------------------------------------------

BudgetId = Annotated[str, typer.Argument(metavar="ID", help="budget id, e.g. monthly")]


@budget_app.command("create")
def budget_create(
    ctx: typer.Context,
    budget_id: BudgetId,
    amount: Annotated[float, typer.Option("--amount", help="the monthly amount, in currency")],
    threshold: Annotated[
        list[int] | None,
        typer.Option(
            "--threshold",
            help="percent of the amount that alerts; repeatable (default 50, 80, 100)",
        ),
    ] = None,
    name: o.Name = None,
    quiet: o.Quiet = False,
    as_json: o.Json = False,
) -> None:
    """Create a monthly budget of the project."""
    body = rt.compact(id=budget_id, name=name, amount=amount, thresholds=threshold or None)
    rt.request(ctx, as_json, "POST", BUDGETS_PATH, body=body, title="budget created", quiet=quiet)


@budget_app.command("list")
def budget_list(ctx: typer.Context, as_json: o.Json = False) -> None:
    """The project's budgets and this month's spending against each."""
    rt.listing(ctx, as_json, BUDGETS_PATH, BUDGET_COLUMNS, title="budgets")


@budget_app.command("show")
def budget_show(ctx: typer.Context, budget_id: BudgetId, as_json: o.Json = False) -> None:
    """Show a budget."""
    rt.request(ctx, as_json, "GET", f"{BUDGETS_PATH}/{quote(budget_id, safe='')}")


@budget_app.command("delete")
def budget_delete(ctx: typer.Context, budget_id: BudgetId, as_json: o.Json = False) -> None:
    """Delete a budget."""
    rt.delete(ctx, as_json, f"{BUDGETS_PATH}/{quote(budget_id, safe='')}", "budget", budget_id)
