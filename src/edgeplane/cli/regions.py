"""``edgeplane region``: the locations servers and data centers are placed in (global)."""

from __future__ import annotations

from typing import Annotated

import typer

from edgeplane.cli import runtime as rt
from edgeplane.cli.options import Json, Name, choices
from edgeplane.cli.output import Column
from edgeplane.model.enums import RegionType

app = typer.Typer(help="Regions: named locations with coordinates (shared by all projects).")
# Regions are global: requests carry no project.

PATH = f"{rt.BASE}/regions"
COLUMNS: list[Column] = [
    ("CODE", "code"),
    ("NAME", "name"),
    ("AREA", "area"),
    ("LAT", "latitude"),
    ("LON", "longitude"),
]
Code = Annotated[str, typer.Argument(metavar="CODE", help="region code, e.g. eu-central")]
Lat = Annotated[float | None, typer.Option("--lat", help="latitude, -90..90")]
Lon = Annotated[float | None, typer.Option("--lon", help="longitude, -180..180")]
Area = Annotated[
    str | None, typer.Option("--area", help=f"{choices(RegionType)}; inferred when omitted")
]


@app.command("list")
def list_(ctx: typer.Context, as_json: Json = False) -> None:
    """List regions."""
    rt.listing(ctx, as_json, PATH, COLUMNS, title="regions", scoped=False)


@app.command()
def create(
    ctx: typer.Context,
    code: Code,
    name: Name = None,
    lat: Lat = None,
    lon: Lon = None,
    area: Area = None,
    as_json: Json = False,
) -> None:
    """Create a region."""
    body = rt.compact(code=code, name=name, latitude=lat, longitude=lon, area=area)
    rt.request(ctx, as_json, "POST", PATH, body=body, title="region created", scoped=False)


@app.command()
def show(ctx: typer.Context, code: Code, as_json: Json = False) -> None:
    """Show a region."""
    rt.request(ctx, as_json, "GET", f"{PATH}/{code}", scoped=False)


@app.command()
def update(
    ctx: typer.Context,
    code: Code,
    name: Name = None,
    lat: Lat = None,
    lon: Lon = None,
    area: Area = None,
    as_json: Json = False,
) -> None:
    """Change a region's name, coordinates or area."""
    fields = rt.compact(name=name, latitude=lat, longitude=lon, area=area)
    rt.update(ctx, as_json, f"{PATH}/{code}", fields, title="region updated", scoped=False)


@app.command()
def delete(ctx: typer.Context, code: Code, as_json: Json = False) -> None:
    """Delete a region no server or data center uses."""
    rt.delete(ctx, as_json, f"{PATH}/{code}", "region", code, scoped=False)
