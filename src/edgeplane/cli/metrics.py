"""``edgeplane metrics``: the series the platform measures, and their points over time."""

from __future__ import annotations

from typing import Annotated

import typer

from edgeplane.cli import options as o
from edgeplane.cli import output
from edgeplane.cli import runtime as rt
from edgeplane.cli.output import Column, Doc

API = "/api/v1/metrics"
app = typer.Typer(help="Series: traffic, servers, origins, certificates, over time.")

SERIES_COLUMNS: list[Column] = [
    ("SERIES", "name"),
    ("UNIT", "unit"),
    ("PER", lambda s: ", ".join(s["objects"])),
    ("SELECT BY", lambda s: ", ".join(s["selectors"])),
    ("DESCRIPTION", "description"),
]


@app.command("list")
def series_list(ctx: typer.Context, as_json: o.Json = False) -> None:
    """Every series, its unit and what it is given per."""
    rt.listing(ctx, as_json, f"{API}/series", SERIES_COLUMNS, title="series")


@app.command("query")
def query(
    ctx: typer.Context,
    series: str,
    domain: Annotated[str | None, typer.Option("--domain")] = None,
    region: Annotated[str | None, typer.Option("--region")] = None,
    node: Annotated[str | None, typer.Option("--node")] = None,
    server: Annotated[str | None, typer.Option("--server")] = None,
    pool: Annotated[str | None, typer.Option("--pool")] = None,
    function: Annotated[str | None, typer.Option("--function")] = None,
    since: Annotated[str, typer.Option("--since", help="15m, 1h, 6h, 24h, 7d, 30d")] = "1h",
    step: Annotated[int | None, typer.Option("--step", help="seconds (>= 60)")] = None,
    group_by: Annotated[str | None, typer.Option("--by", help="domain, region, node ...")] = None,
    as_json: o.Json = False,
) -> None:
    """Points of a series per object: ``edgeplane metrics query requests --by region``."""
    params = rt.compact(
        series=series, domain=domain, region=region, node=node, server=server, pool=pool,
        function=function, since=since, step=step, group_by=group_by,
    )  # fmt: skip

    def render(doc: Doc) -> None:
        rows = [
            {"object": r["object"], "at": p["at"], "value": p["value"]}
            for r in doc["results"]
            for p in r["points"]
        ]
        title = f"{doc['series']} ({doc['unit']}) per {doc['group_by']}, step {doc['step']} s"
        output.table(rows, [("OBJECT", "object"), ("AT", "at"), ("VALUE", "value")], title=title)

    rt.request(ctx, as_json, "GET", API, params=params, render=render)
