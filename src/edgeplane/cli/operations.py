"""``edgeplane lb``, ``edgeplane dr`` and ``edgeplane route``: global operations."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer

from edgeplane.cli import options as o
from edgeplane.cli import origin_tls as ot
from edgeplane.cli import output
from edgeplane.cli import runtime as rt
from edgeplane.cli.output import Column, Doc

lb_app = typer.Typer(help="Load balancers: algorithm, backends and health checks.")
backend_app = typer.Typer(help="A load balancer's backends: weight, backup, state, drain.")
lb_app.add_typer(backend_app, name="backend")
dr_app = typer.Typer(
    help="Disaster-recovery configs: primary and backup data center, RPO, RTO; their status, "
    "failover, failback and drills."
)

LB_PATH = f"{rt.BASE}/loadbalancer"
DR_PATH = f"{rt.BASE}/dr-configs"
LB_COLUMNS: list[Column] = [
    ("ID", "id"),
    ("NAME", "name"),
    ("ALGORITHM", "algorithm"),
    ("REGION", "region"),
    ("ENDPOINTS", "endpoints"),
    ("HEALTH CHECK", lambda lb: f"{lb['health_check']['protocol']} {lb['health_check']['path']}"),
    ("ENV", "environment"),
]
BACKEND_COLUMNS: list[Column] = [
    ("ADDRESS", "address"),
    ("PORT", "port"),
    ("WEIGHT", "weight"),
    ("BACKUP", "backup"),
    ("STATE", "state"),
]
HEALTH_COLUMNS: list[Column] = [
    ("BACKEND", "backend"),
    ("STATE", "state"),
    ("ADMIN", "admin_state"),
    ("WEIGHT", "weight"),
    ("BACKUP", "backup"),
    ("NODES", lambda h: "; ".join(_node_health(n) for n in h["nodes"]) or "-"),
]
DR_COLUMNS: list[Column] = [
    ("ID", "id"),
    ("NAME", "name"),
    ("PRIMARY", "primary_dc"),
    ("BACKUP", "backup_dc"),
    ("RPO min", "rpo"),
    ("RTO min", "rto"),
    ("FAILOVER", "failover_mode"),
    ("FAILBACK", "failback_mode"),
    (
        "DRILL EVERY",
        lambda dr: f"{dr['drill_every_days']} d" if dr.get("drill_every_days") else "-",
    ),
    ("ENV", "environment"),
    ("WARNINGS", lambda dr: len(dr.get("warnings") or [])),
]

LbId = Annotated[str, typer.Argument(metavar="ID", help="load balancer id")]
DrId = Annotated[str, typer.Argument(metavar="ID", help="DR config id")]
Endpoints = Annotated[
    list[str] | None,
    typer.Option(
        "--endpoint",
        help="server id, host:port or URL; repeatable (on update: the new list)",
    ),
]
HcPath = Annotated[str | None, typer.Option("--hc-path", help="health check path")]
HcProtocol = Annotated[str | None, typer.Option("--hc-protocol", help="http, https or tcp")]
HcInterval = Annotated[float | None, typer.Option("--hc-interval", help="seconds")]
HcTimeout = Annotated[float | None, typer.Option("--hc-timeout", help="seconds")]
HcRise = Annotated[int | None, typer.Option("--hc-rise", help="successes to mark up")]
HcFall = Annotated[int | None, typer.Option("--hc-fall", help="failures to mark down")]
HcStatus = Annotated[str | None, typer.Option("--hc-status", help="e.g. 200 or 200-399")]
ConnectTimeout = Annotated[
    float | None, typer.Option("--connect-timeout", help="seconds to connect to a backend")
]
ReadTimeout = Annotated[
    float | None, typer.Option("--read-timeout", help="seconds between two reads")
]
Retries = Annotated[
    int | None, typer.Option("--retries", help="tries on the next backend (idempotent requests)")
]
Tier = Annotated[
    str | None,
    typer.Option("--tier", help="billing tier of the cost model, e.g. standard (default: fits)"),
]
Address = Annotated[
    str,
    typer.Argument(
        metavar="ADDRESS", help="server id (or id:port), host:port or http(s) URL of the backend"
    ),
]
Weight = Annotated[int | None, typer.Option("--weight", help="1-1000 (default 100)")]
BackendState = Annotated[str | None, typer.Option("--state", help="active, draining or disabled")]
Primary = Annotated[str | None, typer.Option("--primary", help="primary data center id")]
Backup = Annotated[str | None, typer.Option("--backup", help="backup data center id")]
Rpo = Annotated[
    float | None,
    typer.Option("--rpo", help="recovery point objective, minutes (0.05 = 3 s)"),
]
Rto = Annotated[
    float | None,
    typer.Option("--rto", help="recovery time objective, minutes (0.05 = 3 s)"),
]
FailoverMode = Annotated[
    str | None,
    typer.Option(
        "--failover-mode", help="automatic, or confirmed (waits for `edgeplane dr failover`)"
    ),
]
FailbackMode = Annotated[
    str | None,
    typer.Option(
        "--failback-mode", help="automatic, or confirmed (waits for `edgeplane dr failback`)"
    ),
]
DrillEvery = Annotated[
    int | None,
    typer.Option("--drill-every", metavar="DAYS", help="days between scheduled drills"),
]
NoDrills = Annotated[bool, typer.Option("--no-drills", help="no scheduled drills")]


def health_check(
    path: str | None,
    protocol: str | None,
    interval: float | None,
    timeout: float | None,
    rise: int | None,
    fall: int | None,
    status: str | None,
) -> Doc | None:
    """The health check fields given, or None."""
    fields = rt.compact(
        path=path,
        protocol=protocol,
        interval_s=interval,
        timeout_s=timeout,
        healthy_threshold=rise,
        unhealthy_threshold=fall,
        expected_status=status,
    )
    return fields or None


def _node_health(node: Doc) -> str:
    latency = node.get("latency_ms")
    ms = f" {latency:.1f} ms" if isinstance(latency, (int, float)) else ""
    reason = f" ({node['reason']})" if node.get("reason") else ""
    return f"{node['node']} {node['state']}{ms}{reason}"


def render_dr(doc: Doc) -> None:
    output.details(doc, skip=("warnings",))
    for warning in doc.get("warnings") or ():
        output.line(f"warning: {warning}", "yellow")


# Load balancers ---------------------------------------------------------------------------


@lb_app.command("list")
def lb_list(
    ctx: typer.Context,
    limit: o.Limit = None,
    cursor: o.Cursor = None,
    all_pages: o.All = False,
    as_json: o.Json = False,
) -> None:
    """List load balancers."""
    params = rt.compact(limit=limit, cursor=cursor)
    rt.listing(
        ctx,
        as_json,
        LB_PATH,
        LB_COLUMNS,
        title="load balancers",
        params=params,
        all_pages=all_pages,
    )


@lb_app.command("create")
def lb_create(
    ctx: typer.Context,
    lb_id: o.Id = None,
    name: o.Name = None,
    algorithm: o.Algorithm = None,
    region: o.LbRegionOpt = None,
    endpoint: Endpoints = None,
    hc_path: HcPath = None,
    hc_protocol: HcProtocol = None,
    hc_interval: HcInterval = None,
    hc_timeout: HcTimeout = None,
    hc_rise: HcRise = None,
    hc_fall: HcFall = None,
    hc_status: HcStatus = None,
    connect_timeout: ConnectTimeout = None,
    read_timeout: ReadTimeout = None,
    retries: Retries = None,
    tier: Tier = None,
    environment: o.EnvironmentOpt = None,
    client_cert: ot.ClientCert = None,
    verify: ot.Verify = None,
    origin_ca: ot.OriginCa = None,
    pin: ot.Pins = None,
    origin_name: ot.OriginName = None,
    quiet: o.Quiet = False,
    as_json: o.Json = False,
) -> None:
    """Create a load balancer (with https backends, the TLS options of private origins)."""
    body = rt.compact(
        id=lb_id,
        name=name,
        algorithm=algorithm,
        region=region,
        endpoints=endpoint,
        health_check=health_check(
            hc_path, hc_protocol, hc_interval, hc_timeout, hc_rise, hc_fall, hc_status
        ),
        connect_timeout_s=connect_timeout,
        read_timeout_s=read_timeout,
        retries=retries,
        tier=tier,
        environment=environment,
        tls=ot.tls_doc(client_cert, verify, origin_ca, pin, origin_name),
    )
    rt.request(ctx, as_json, "POST", LB_PATH, body=body, title="load balancer created", quiet=quiet)


@lb_app.command("show")
def lb_show(ctx: typer.Context, lb_id: LbId, as_json: o.Json = False) -> None:
    """Show a load balancer."""
    rt.request(ctx, as_json, "GET", f"{LB_PATH}/{lb_id}")


@lb_app.command("update")
def lb_update(
    ctx: typer.Context,
    lb_id: LbId,
    name: o.Name = None,
    algorithm: o.Algorithm = None,
    region: o.LbRegionOpt = None,
    endpoint: Endpoints = None,
    hc_path: HcPath = None,
    hc_protocol: HcProtocol = None,
    hc_interval: HcInterval = None,
    hc_timeout: HcTimeout = None,
    hc_rise: HcRise = None,
    hc_fall: HcFall = None,
    hc_status: HcStatus = None,
    connect_timeout: ConnectTimeout = None,
    read_timeout: ReadTimeout = None,
    retries: Retries = None,
    tier: Tier = None,
    environment: o.EnvironmentOpt = None,
    client_cert: ot.ClientCert = None,
    verify: ot.Verify = None,
    origin_ca: ot.OriginCa = None,
    pin: ot.Pins = None,
    origin_name: ot.OriginName = None,
    as_json: o.Json = False,
) -> None:
    """Change a load balancer; the health check and TLS options given are merged into its
    settings."""
    fields = rt.compact(
        name=name,
        algorithm=algorithm,
        region=region,
        endpoints=endpoint,
        health_check=health_check(
            hc_path, hc_protocol, hc_interval, hc_timeout, hc_rise, hc_fall, hc_status
        ),
        connect_timeout_s=connect_timeout,
        read_timeout_s=read_timeout,
        retries=retries,
        tier=tier,
        environment=environment,
        tls=ot.tls_doc(client_cert, verify, origin_ca, pin, origin_name),
    )
    rt.update(ctx, as_json, f"{LB_PATH}/{lb_id}", fields, title="load balancer updated")


@lb_app.command("delete")
def lb_delete(ctx: typer.Context, lb_id: LbId, as_json: o.Json = False) -> None:
    """Delete a load balancer."""
    rt.delete(ctx, as_json, f"{LB_PATH}/{lb_id}", "load balancer", lb_id)


@lb_app.command("health")
def lb_health(ctx: typer.Context, lb_id: LbId, as_json: o.Json = False) -> None:
    """Per backend: what each edge node's active checks last saw (up if any node says up)."""
    doc = rt.call(ctx, lambda c: c.request("GET", f"{LB_PATH}/{lb_id}/health"))
    rt.emit(doc, as_json, lambda rows: output.table(rows, HEALTH_COLUMNS, title="backends"))


@lb_app.command("health-check")
def lb_health_check(
    ctx: typer.Context,
    lb_id: LbId,
    path: Annotated[str | None, typer.Option("--path", help="HTTP path, e.g. /healthz")] = None,
    protocol: Annotated[str | None, typer.Option("--protocol", help="http, https or tcp")] = None,
    interval: Annotated[
        float | None, typer.Option("--interval", help="seconds (default 5, minimum 1)")
    ] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="seconds")] = None,
    rise: Annotated[int | None, typer.Option("--rise", help="successes to mark up")] = None,
    fall: Annotated[int | None, typer.Option("--fall", help="failures to mark down")] = None,
    status: Annotated[str | None, typer.Option("--status", help="e.g. 200 or 200-399")] = None,
    as_json: o.Json = False,
) -> None:
    """Replace the health check: the options not given take their defaults."""
    body = health_check(path, protocol, interval, timeout, rise, fall, status) or {}
    rt.request(
        ctx,
        as_json,
        "PUT",
        f"{LB_PATH}/{lb_id}/health-check",
        body=body,
        render=lambda d: output.details(d["health_check"], title="health check"),
    )


def _backend_path(lb_id: str, address: str) -> str:
    return f"{LB_PATH}/{lb_id}/backends/{quote(address, safe='')}"


@backend_app.command("list")
def backend_list(ctx: typer.Context, lb_id: LbId, as_json: o.Json = False) -> None:
    """List a load balancer's backends."""
    doc = rt.call(ctx, lambda c: c.request("GET", f"{LB_PATH}/{lb_id}/backends"))
    rt.emit(doc, as_json, lambda rows: output.table(rows, BACKEND_COLUMNS, title="backends"))


@backend_app.command("add")
def backend_add(
    ctx: typer.Context,
    lb_id: LbId,
    address: Address,
    port: Annotated[int | None, typer.Option("--port", help="for a server id (default 80)")] = None,
    weight: Weight = None,
    backup: Annotated[
        bool, typer.Option("--backup", help="only while every primary is down")
    ] = False,
    state: BackendState = None,
    wait_for_check: Annotated[
        bool,
        typer.Option("--wait-for-check", help="no traffic until a health check passed"),
    ] = False,
    as_json: o.Json = False,
) -> None:
    """Add a backend."""
    body = rt.compact(
        address=address,
        port=port,
        weight=weight,
        backup=backup or None,
        state=state,
        wait_for_check=wait_for_check or None,
    )
    rt.request(
        ctx, as_json, "POST", f"{LB_PATH}/{lb_id}/backends", body=body, title="backend added"
    )


@backend_app.command("update")
def backend_update(
    ctx: typer.Context,
    lb_id: LbId,
    address: Address,
    weight: Weight = None,
    backup: Annotated[bool | None, typer.Option("--backup/--no-backup")] = None,
    state: BackendState = None,
    wait_for_check: Annotated[
        bool | None, typer.Option("--wait-for-check/--no-wait-for-check")
    ] = None,
    as_json: o.Json = False,
) -> None:
    """Change a backend's weight, backup flag, state or wait for a passed check."""
    fields = rt.compact(weight=weight, backup=backup, state=state, wait_for_check=wait_for_check)
    rt.update(ctx, as_json, _backend_path(lb_id, address), fields, title="backend updated")


@backend_app.command("drain")
def backend_drain(
    ctx: typer.Context, lb_id: LbId, address: Address, as_json: o.Json = False
) -> None:
    """Send no new requests to the backend; requests in flight finish."""
    rt.request(
        ctx, as_json, "POST", _backend_path(lb_id, address) + "/drain", title="backend draining"
    )


@backend_app.command("remove")
def backend_remove(
    ctx: typer.Context, lb_id: LbId, address: Address, as_json: o.Json = False
) -> None:
    """Remove a backend."""
    rt.delete(ctx, as_json, _backend_path(lb_id, address), "backend", address)


# Disaster recovery ------------------------------------------------------------------------


@dr_app.command("list")
def dr_list(
    ctx: typer.Context,
    limit: o.Limit = None,
    cursor: o.Cursor = None,
    all_pages: o.All = False,
    as_json: o.Json = False,
) -> None:
    """List DR configs."""
    params = rt.compact(limit=limit, cursor=cursor)
    rt.listing(
        ctx, as_json, DR_PATH, DR_COLUMNS, title="DR configs", params=params, all_pages=all_pages
    )


def _dr_fields(
    name: str | None,
    primary: str | None,
    backup: str | None,
    rpo: float | None,
    rto: float | None,
    environment: str | None,
    failover_mode: str | None,
    failback_mode: str | None,
    drill_every: int | None,
    no_drills: bool,
) -> Doc:
    """The fields of a DR config the options give (``--no-drills``: no scheduled drills)."""
    fields = rt.compact(
        name=name,
        primary_dc=primary,
        backup_dc=backup,
        rpo=rpo,
        rto=rto,
        environment=environment,
        failover_mode=failover_mode,
        failback_mode=failback_mode,
        drill_every_days=drill_every,
    )
    if no_drills:
        fields["drill_every_days"] = None
    return fields


@dr_app.command("create")
def dr_create(
    ctx: typer.Context,
    dr_id: o.Id = None,
    name: o.Name = None,
    primary: Primary = None,
    backup: Backup = None,
    rpo: Rpo = None,
    rto: Rto = None,
    environment: o.EnvironmentOpt = None,
    failover_mode: FailoverMode = None,
    failback_mode: FailbackMode = None,
    drill_every: DrillEvery = None,
    no_drills: NoDrills = False,
    quiet: o.Quiet = False,
    as_json: o.Json = False,
) -> None:
    """Create a DR config."""
    body = {"id": dr_id} if dr_id else {}
    body |= _dr_fields(
        name, primary, backup, rpo, rto, environment, failover_mode, failback_mode, drill_every,
        no_drills,
    )  # fmt: skip
    rt.request(ctx, as_json, "POST", DR_PATH, body=body, render=render_dr, quiet=quiet)


@dr_app.command("show")
def dr_show(ctx: typer.Context, dr_id: DrId, as_json: o.Json = False) -> None:
    """Show a DR config and its warnings."""
    rt.request(ctx, as_json, "GET", f"{DR_PATH}/{dr_id}", render=render_dr)


@dr_app.command("update")
def dr_update(
    ctx: typer.Context,
    dr_id: DrId,
    name: o.Name = None,
    primary: Primary = None,
    backup: Backup = None,
    rpo: Rpo = None,
    rto: Rto = None,
    environment: o.EnvironmentOpt = None,
    failover_mode: FailoverMode = None,
    failback_mode: FailbackMode = None,
    drill_every: DrillEvery = None,
    no_drills: NoDrills = False,
    as_json: o.Json = False,
) -> None:
    """Change a DR config; only the options given change."""
    fields = _dr_fields(
        name, primary, backup, rpo, rto, environment, failover_mode, failback_mode, drill_every,
        no_drills,
    )  # fmt: skip
    rt.update(ctx, as_json, f"{DR_PATH}/{dr_id}", fields, title="DR config updated")


@dr_app.command("delete")
def dr_delete(ctx: typer.Context, dr_id: DrId, as_json: o.Json = False) -> None:
    """Delete a DR config."""
    rt.delete(ctx, as_json, f"{DR_PATH}/{dr_id}", "DR config", dr_id)


# Routing ----------------------------------------------------------------------------------


def render_route(doc: Doc) -> None:
    server, client = doc["server"], doc["client"]
    distance = doc.get("distance_km")
    place = ", ".join(str(v) for v in (client.get("city"), client.get("country")) if v)
    output.details(
        {
            "server": f"{server['id']} ({server['name']})",
            "location": output.place()(server),
            "address": server.get("address"),
            "service": f"{doc['service_id']} ({doc['service_type']})",
            "distance": None if distance is None else f"{distance:.1f} km",
            "client": f"{client['ip']} {place or '?'} (from {client['source']})",
            "reason": doc["reason"],
        }
    )
    if doc.get("skipped"):
        output.blank()
        output.table(
            doc["skipped"], [("SERVER", "server_id"), ("REASON", "reason")], title="skipped"
        )


def route(
    ctx: typer.Context,
    client_ip: Annotated[
        str, typer.Argument(metavar="IP", help="the client's IPv4 or IPv6 address")
    ],
    service_type: Annotated[
        str, typer.Argument(metavar="SERVICE_TYPE", help="the service it wants, e.g. cdn")
    ],
    as_json: o.Json = False,
) -> None:
    """Where a client's request goes: the nearest healthy server with spare capacity, and why."""
    params = {"client_ip": client_ip, "service_type": service_type}
    rt.request(ctx, as_json, "GET", f"{rt.BASE}/route", params=params, render=render_route)
