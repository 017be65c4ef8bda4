"""``edgeplane service``: the services (cdn, web, api, database, ...) servers run."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from edgeplane.cli import options as o
from edgeplane.cli import runtime as rt
from edgeplane.cli.output import Column

app = typer.Typer(help="Services on servers: cdn, web, api, database, cache, dns, storage, ...")

PATH = f"{rt.BASE}/services"
COLUMNS: list[Column] = [
    ("ID", "id"),
    ("SERVER", "server_id"),
    ("TYPE", "type"),
    ("STATUS", "status"),
    ("CPU", "resources.cpu"),
    ("MEM GB", "resources.memory"),
    ("DISK GB", "resources.storage"),
]
ServiceId = Annotated[str, typer.Argument(metavar="ID", help="service id")]
ServerId = Annotated[str | None, typer.Option("--server", help="the server's id")]
ServiceType = Annotated[
    str | None, typer.Option("--type", help="cdn, web, api, database, cache, dns, ...")
]
Status = Annotated[str | None, typer.Option("--status", help="active or disabled")]
SettingOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--setting",
        metavar="KEY=VALUE",
        help="repeatable; numbers and true/false are typed, anything else is a string",
    ),
]
SettingsJson = Annotated[
    str | None, typer.Option("--settings-json", help="all settings as one JSON object")
]


def settings_of(pairs: list[str] | None, as_json: str | None) -> dict[str, Any] | None:
    """Settings from ``--settings-json`` and ``--setting`` (which win), or None if neither."""
    out: dict[str, Any] = {}
    if as_json is not None:
        try:
            out = json.loads(as_json)
        except ValueError as exc:
            raise typer.BadParameter(f"not JSON: {exc}", param_hint="--settings-json") from None
        if not isinstance(out, dict):
            raise typer.BadParameter("must be a JSON object", param_hint="--settings-json")
    out.update(rt.pairs(pairs, "--setting", typed=True))
    return out if as_json is not None or pairs else None


@app.command("list")
def list_(
    ctx: typer.Context,
    server: ServerId = None,
    service_type: ServiceType = None,
    limit: o.Limit = None,
    cursor: o.Cursor = None,
    all_pages: o.All = False,
    as_json: o.Json = False,
) -> None:
    """List services."""
    params = rt.compact(server_id=server, type=service_type, limit=limit, cursor=cursor)
    rt.listing(ctx, as_json, PATH, COLUMNS, title="services", params=params, all_pages=all_pages)


@app.command()
def create(
    ctx: typer.Context,
    service_id: o.Id = None,
    server: ServerId = None,
    service_type: ServiceType = None,
    setting: SettingOpt = None,
    settings_json: SettingsJson = None,
    cpu: o.Cpu = None,
    memory: o.Memory = None,
    storage: o.Storage = None,
    status: Status = None,
    quiet: o.Quiet = False,
    as_json: o.Json = False,
) -> None:
    """Create a service on a server (it reserves resources: a default per type, or given)."""
    body = rt.compact(
        id=service_id,
        server_id=server,
        type=service_type,
        settings=settings_of(setting, settings_json),
        resources=o.capacity(cpu, memory, storage) or None,
        status=status,
    )
    rt.request(ctx, as_json, "POST", PATH, body=body, title="service created", quiet=quiet)


@app.command()
def show(ctx: typer.Context, service_id: ServiceId, as_json: o.Json = False) -> None:
    """Show a service."""
    rt.request(ctx, as_json, "GET", f"{PATH}/{service_id}")


@app.command()
def update(
    ctx: typer.Context,
    service_id: ServiceId,
    setting: SettingOpt = None,
    settings_json: SettingsJson = None,
    cpu: o.Cpu = None,
    memory: o.Memory = None,
    storage: o.Storage = None,
    status: Status = None,
    as_json: o.Json = False,
) -> None:
    """Change a service; the settings given are merged into its settings."""
    fields = rt.compact(status=status, settings=settings_of(setting, settings_json))
    merge = {"resources": o.capacity(cpu, memory, storage)}
    rt.update(ctx, as_json, f"{PATH}/{service_id}", fields, merge=merge, title="service updated")


@app.command()
def delete(ctx: typer.Context, service_id: ServiceId, as_json: o.Json = False) -> None:
    """Delete a service (its resources return to the server)."""
    rt.delete(ctx, as_json, f"{PATH}/{service_id}", "service", service_id)
