"""``edgeplane datacenter`` (alias ``dc``): tiered sites with a capacity servers draw from."""

from __future__ import annotations

from typing import Annotated

import typer

from edgeplane.cli import options as o
from edgeplane.cli import output
from edgeplane.cli import runtime as rt
from edgeplane.cli.output import Column

app = typer.Typer(help="Data centers: tier 1-4 sites with a capacity their servers draw from.")

PATH = f"{rt.BASE}/datacenters"


COLUMNS: list[Column] = [
    ("ID", "id"),
    ("NAME", "name"),
    ("LOCATION", output.place()),
    ("TIER", "tier"),
    ("CPU", output.usage("cpu")),
    ("MEM GB", output.usage("memory")),
    ("DISK GB", output.usage("storage")),
    ("ENV", "environment"),
]
DcId = Annotated[str, typer.Argument(metavar="ID", help="data center id")]
Tier = Annotated[str | None, typer.Option("--tier", help="1-4 (Uptime Institute tier)")]


@app.command("list")
def list_(
    ctx: typer.Context,
    region: o.RegionOpt = None,
    environment: o.EnvironmentOpt = None,
    limit: o.Limit = None,
    cursor: o.Cursor = None,
    all_pages: o.All = False,
    as_json: o.Json = False,
) -> None:
    """List data centers."""
    params = rt.compact(region=region, environment=environment, limit=limit, cursor=cursor)
    rt.listing(
        ctx, as_json, PATH, COLUMNS, title="data centers", params=params, all_pages=all_pages
    )


@app.command()
def create(
    ctx: typer.Context,
    dc_id: o.Id = None,
    name: o.Name = None,
    region: o.RegionCodeOpt = None,
    location: o.Location = None,
    tier: Tier = None,
    cpu: o.Cpu = None,
    memory: o.Memory = None,
    storage: o.Storage = None,
    environment: o.EnvironmentOpt = None,
    quiet: o.Quiet = False,
    as_json: o.Json = False,
) -> None:
    """Create a data center (its region follows its location when omitted)."""
    body = rt.compact(
        id=dc_id,
        name=name,
        region=region,
        location=location,
        tier=tier,
        capacity=o.capacity(cpu, memory, storage),
        environment=environment,
    )
    rt.request(ctx, as_json, "POST", PATH, body=body, title="data center created", quiet=quiet)


@app.command()
def show(ctx: typer.Context, dc_id: DcId, as_json: o.Json = False) -> None:
    """Show a data center and its capacity (total, allocated, free)."""
    rt.request(ctx, as_json, "GET", f"{PATH}/{dc_id}", render=output.with_capacity)


@app.command()
def capacity(ctx: typer.Context, dc_id: DcId, as_json: o.Json = False) -> None:
    """A data center's capacity: total, allocated to its servers, free."""
    rt.request(ctx, as_json, "GET", f"{PATH}/{dc_id}/capacity", render=output.capacity)


@app.command()
def update(
    ctx: typer.Context,
    dc_id: DcId,
    name: o.Name = None,
    tier: Tier = None,
    cpu: o.Cpu = None,
    memory: o.Memory = None,
    storage: o.Storage = None,
    environment: o.EnvironmentOpt = None,
    as_json: o.Json = False,
) -> None:
    """Change a data center; only the options given change."""
    fields = rt.compact(name=name, tier=tier, environment=environment)
    merge = {"capacity": o.capacity(cpu, memory, storage)}
    rt.update(ctx, as_json, f"{PATH}/{dc_id}", fields, merge=merge, title="data center updated")


@app.command()
def delete(ctx: typer.Context, dc_id: DcId, as_json: o.Json = False) -> None:
    """Delete a data center that has no servers and no DR config."""
    rt.delete(ctx, as_json, f"{PATH}/{dc_id}", "data center", dc_id)
