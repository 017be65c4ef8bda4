"""``edgeplane server VERB`` (alias ``servers``): inventory servers, their capacity and metrics.

The control plane's process is ``edgeplane serve`` (``cli/serve.py``). ``edgeplane server``
without a verb, or with an option before one (``edgeplane server --port 8800``), says so and
exits 2 without touching any state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from edgeplane.cli import options as o
from edgeplane.cli import output
from edgeplane.cli import runtime as rt
from edgeplane.cli.output import Column, Doc

if TYPE_CHECKING:
    from typer import _click

SERVE_HINT = (
    "To run the control plane, use `edgeplane serve` (--port, --host, --home); "
    "`edgeplane up` runs it with a local edge node."
)


class ServerGroup(TyperGroup):
    """The inventory noun, which once also ran the control plane: without a verb, or with an
    option before one (``--port``), it says where that went instead of starting anything."""

    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        if not args or (args[0].startswith("-") and args[0] not in ctx.help_option_names):
            verbs = ", ".join(self.list_commands(ctx))
            rt.fail(
                f"`edgeplane {ctx.info_name}` manages inventory servers and needs a verb "
                f"({verbs}). {SERVE_HINT}",
                2,
            )
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=ServerGroup,
    help="Inventory servers (primary, secondary, edge, cache), their capacity and metrics. "
    "The control plane itself runs with `edgeplane serve`.",
)

PATH = f"{rt.BASE}/servers"
COLUMNS: list[Column] = [
    ("ID", "id"),
    ("NAME", "name"),
    ("TYPE", "type"),
    ("LOCATION", output.place()),
    ("STATUS", "status"),
    ("CPU", output.usage("cpu")),
    ("MEM GB", output.usage("memory")),
    ("DISK GB", output.usage("storage")),
    ("DC", "data_center_id"),
    ("ENV", "environment"),
]
METRIC_COLUMNS: list[Column] = [
    ("AT", "at"),
    ("CPU %", "cpu_percent"),
    ("MEM %", "memory_percent"),
    ("DISK %", "storage_percent"),
    ("CONN", "connections"),
    ("REQ/S", "requests_per_second"),
    ("LAT ms", "latency_ms"),
    ("IN Mbps", "network_in_mbps"),
    ("OUT Mbps", "network_out_mbps"),
]
ServerId = Annotated[str, typer.Argument(metavar="ID", help="server id")]
DataCenterId = Annotated[str | None, typer.Option("--data-center", "--dc", help="data center id")]
Profile = Annotated[str | None, typer.Option("--profile", help="e.g. standard")]
Address = Annotated[str | None, typer.Option("--address", help="IP address or host name")]
Labels = Annotated[
    list[str] | None, typer.Option("--label", help="KEY=VALUE, repeatable", metavar="KEY=VALUE")
]


def render(doc: Doc) -> None:
    """A server, its capacity and its latest metrics."""
    output.with_capacity(doc, skip=("metrics",))
    output.blank()
    if doc.get("metrics"):
        output.details(doc["metrics"], title="latest metrics")
    else:
        output.note("no metrics reported yet")


@app.command("list")
def list_(
    ctx: typer.Context,
    server_type: o.ServerTypeOpt = None,
    region: o.RegionOpt = None,
    location: o.Location = None,
    status: o.ServerStatusOpt = None,
    data_center: DataCenterId = None,
    environment: o.EnvironmentOpt = None,
    limit: o.Limit = None,
    cursor: o.Cursor = None,
    all_pages: o.All = False,
    as_json: o.Json = False,
) -> None:
    """List servers."""
    params = rt.compact(
        type=server_type,
        region=region,
        location=location,
        status=status,
        data_center_id=data_center,
        environment=environment,
        limit=limit,
        cursor=cursor,
    )
    rt.listing(ctx, as_json, PATH, COLUMNS, title="servers", params=params, all_pages=all_pages)


@app.command()
def create(
    ctx: typer.Context,
    server_id: o.Id = None,
    name: o.Name = None,
    server_type: o.ServerTypeOpt = None,
    region: o.RegionTypeOpt = None,
    location: o.Location = None,
    cpu: o.Cpu = None,
    memory: o.Memory = None,
    storage: o.Storage = None,
    profile: Profile = None,
    status: o.ServerStatusOpt = None,
    data_center: DataCenterId = None,
    address: Address = None,
    label: Labels = None,
    environment: o.EnvironmentOpt = None,
    quiet: o.Quiet = False,
    as_json: o.Json = False,
) -> None:
    """Create a server (in a data center, whose free capacity must cover it); its location and
    region follow its data center when omitted."""
    body = rt.compact(
        id=server_id,
        name=name,
        type=server_type,
        region=region,
        location=location,
        capacity=o.capacity(cpu, memory, storage),
        profile=profile,
        status=status,
        data_center_id=data_center,
        address=address,
        labels=rt.pairs(label, "--label") or None,
        environment=environment,
    )
    rt.request(ctx, as_json, "POST", PATH, body=body, title="server created", quiet=quiet)


@app.command()
def show(ctx: typer.Context, server_id: ServerId, as_json: o.Json = False) -> None:
    """Show a server with its capacity and latest metrics."""
    rt.request(ctx, as_json, "GET", f"{PATH}/{server_id}", render=render)


@app.command()
def capacity(ctx: typer.Context, server_id: ServerId, as_json: o.Json = False) -> None:
    """A server's capacity: total, allocated to its services, free."""
    rt.request(ctx, as_json, "GET", f"{PATH}/{server_id}/capacity", render=output.capacity)


@app.command()
def update(
    ctx: typer.Context,
    server_id: ServerId,
    name: o.Name = None,
    server_type: o.ServerTypeOpt = None,
    region: o.RegionTypeOpt = None,
    location: o.Location = None,
    cpu: o.Cpu = None,
    memory: o.Memory = None,
    storage: o.Storage = None,
    profile: Profile = None,
    status: o.ServerStatusOpt = None,
    data_center: DataCenterId = None,
    address: Address = None,
    label: Labels = None,
    unlabel: Annotated[
        list[str] | None, typer.Option("--unlabel", help="label KEY to remove, repeatable")
    ] = None,
    environment: o.EnvironmentOpt = None,
    as_json: o.Json = False,
) -> None:
    """Change a server; only the options given change (labels are merged)."""
    fields = rt.compact(
        name=name,
        type=server_type,
        region=region,
        location=location,
        profile=profile,
        status=status,
        data_center_id=data_center,
        address=address,
        environment=environment,
    )
    labels: dict[str, Any] = {**dict.fromkeys(unlabel or ()), **rt.pairs(label, "--label")}
    merge = {"capacity": o.capacity(cpu, memory, storage), "labels": labels}
    rt.update(ctx, as_json, f"{PATH}/{server_id}", fields, merge=merge, title="server updated")


@app.command()
def delete(ctx: typer.Context, server_id: ServerId, as_json: o.Json = False) -> None:
    """Delete a server that runs no service and backs no load balancer."""
    rt.delete(ctx, as_json, f"{PATH}/{server_id}", "server", server_id)


@app.command()
def metrics(
    ctx: typer.Context,
    server_id: ServerId,
    limit: Annotated[int, typer.Option("--limit", help="samples, newest first")] = 20,
    as_json: o.Json = False,
) -> None:
    """A server's metrics history."""
    rt.listing(
        ctx,
        as_json,
        f"{PATH}/{server_id}/metrics",
        METRIC_COLUMNS,
        title="metrics",
        params={"limit": limit},
    )


@app.command()
def report(
    ctx: typer.Context,
    server_id: ServerId,
    cpu_percent: Annotated[float | None, typer.Option("--cpu-percent")] = None,
    memory_percent: Annotated[float | None, typer.Option("--memory-percent")] = None,
    storage_percent: Annotated[float | None, typer.Option("--storage-percent")] = None,
    connections: Annotated[int | None, typer.Option("--connections")] = None,
    rps: Annotated[float | None, typer.Option("--rps", help="requests per second")] = None,
    latency_ms: Annotated[float | None, typer.Option("--latency-ms")] = None,
    network_in: Annotated[float | None, typer.Option("--network-in", help="Mbps")] = None,
    network_out: Annotated[float | None, typer.Option("--network-out", help="Mbps")] = None,
    as_json: o.Json = False,
) -> None:
    """Record one metrics sample for a server (utilisations in percent)."""
    sample = rt.compact(
        cpu_percent=cpu_percent,
        memory_percent=memory_percent,
        storage_percent=storage_percent,
        connections=connections,
        requests_per_second=rps,
        latency_ms=latency_ms,
        network_in_mbps=network_in,
        network_out_mbps=network_out,
    )
    rt.request(ctx, as_json, "POST", f"{PATH}/{server_id}/metrics", body=sample, render=render)
