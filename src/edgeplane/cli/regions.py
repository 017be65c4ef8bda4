"""``edgeplane region``: the locations servers, data centers and edge nodes are placed in
(global), each in one region code (spec 001) and one region type (spec 000)."""

from __future__ import annotations

from typing import Annotated

import typer

from edgeplane.cli import output
from edgeplane.cli import runtime as rt
from edgeplane.cli.options import ANY_REGION, Json, Name, Quiet, choices
from edgeplane.cli.output import Column, Doc
from edgeplane.model.enums import RegionCode, RegionType

app = typer.Typer(
    help="Regions: locations with coordinates (us-east), each in a region code (na) and a "
    "region type (americas); shared by all projects."
)
# Regions are global: requests carry no project.

PATH = f"{rt.BASE}/regions"
COLUMNS: list[Column] = [
    ("REGION TYPE", "region_type"),
    ("REGION CODE", "region_code"),
    ("LOCATION", "code"),
    ("NAME", "name"),
    ("LAT", "latitude"),
    ("LON", "longitude"),
]
Code = Annotated[str, typer.Argument(metavar="CODE", help="location code, e.g. eu-central")]
Lat = Annotated[float | None, typer.Option("--lat", help="latitude, -90..90")]
Lon = Annotated[float | None, typer.Option("--lon", help="longitude, -180..180")]
RegionCodeOpt = Annotated[
    str | None,
    typer.Option(
        "--region-code", help=f"{choices(RegionCode)}; inferred from the coordinates when omitted"
    ),
]
RegionTypeOpt = Annotated[
    str | None,
    typer.Option(
        "--region-type",
        "--area",
        help=f"{choices(RegionType)}; the region code's, else inferred, when omitted",
    ),
]
_ORDER = {t.value: i for i, t in enumerate(RegionType)}


def _tree(rows: list[Doc]) -> None:
    """Region type, region code, location: each level shown once, where it starts."""
    rows = sorted(
        rows, key=lambda r: (_ORDER.get(r["region_type"], 9), r["region_code"], r["code"])
    )
    shown: list[Doc] = []
    last: tuple[str, str] = ("", "")
    for r in rows:
        kind = "" if r["region_type"] == last[0] else r["region_type"]
        code = "" if (r["region_type"], r["region_code"]) == last else r["region_code"]
        last = (r["region_type"], r["region_code"])
        shown.append({**r, "region_type": kind, "region_code": code})
    output.table(shown, COLUMNS, title="regions")


@app.command("list")
def list_(
    ctx: typer.Context,
    region: Annotated[
        str | None, typer.Option("--region", help=f"only those in it: {ANY_REGION}")
    ] = None,
    as_json: Json = False,
) -> None:
    """List the locations by region type and region code (the three levels of a region)."""
    params = rt.compact(region=region)
    doc = rt.call(ctx, lambda c: c.request("GET", PATH, params=params), scoped=False)
    rt.emit(doc, as_json, _tree)


@app.command()
def create(
    ctx: typer.Context,
    code: Code,
    name: Name = None,
    lat: Lat = None,
    lon: Lon = None,
    region_code: RegionCodeOpt = None,
    region_type: RegionTypeOpt = None,
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Create a location (platform admins)."""
    body = rt.compact(
        code=code,
        name=name,
        latitude=lat,
        longitude=lon,
        region_code=region_code,
        region_type=region_type,
    )
    rt.request(
        ctx,
        as_json,
        "POST",
        PATH,
        body=body,
        title="region created",
        scoped=False,
        quiet=quiet,
        key="code",
    )


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
    region_code: RegionCodeOpt = None,
    region_type: RegionTypeOpt = None,
    as_json: Json = False,
) -> None:
    """Change a location's name, coordinates, region code or region type."""
    fields = rt.compact(
        name=name, latitude=lat, longitude=lon, region_code=region_code, region_type=region_type
    )
    rt.update(ctx, as_json, f"{PATH}/{code}", fields, title="region updated", scoped=False)


@app.command()
def delete(ctx: typer.Context, code: Code, as_json: Json = False) -> None:
    """Delete a region no server or data center uses."""
    rt.delete(ctx, as_json, f"{PATH}/{code}", "region", code, scoped=False)
