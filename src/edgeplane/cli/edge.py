"""``edgeplane edge``: run an edge node (the agent and its nginx); ``edgeplane edge nodes`` and
``edgeplane edge node ID`` list the nodes (when the control plane's commands are installed).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import socket
from pathlib import Path
from typing import Annotated

import typer

from edgeplane.model.enums import RegionCode
from edgeplane.model.regions import broad

DEFAULT_METRICS_PORT = 8810  # as ``edgeplane up``'s
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")

app = typer.Typer(
    help="Run an edge node: `edgeplane edge --control-plane URL --token T --region R`.",
    invoke_without_command=True,
    no_args_is_help=False,
)


def default_name() -> str:
    """The host name, made into a node name (lower case, letters, digits, '.', '-', '_')."""
    name = re.sub(r"[^a-z0-9._-]", "-", socket.gethostname().lower()).strip("-._")
    return name[:63] or "edge"


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.callback(invoke_without_command=True)
def edge(
    ctx: typer.Context,
    control_plane: Annotated[
        list[str] | None,
        typer.Option(
            "--control-plane",
            envvar="EDGEPLANE_URL",
            metavar="URL",
            help="the control plane's URL; its replicas' URLs (the option repeated, or "
            "comma-separated) are tried in turn when one fails",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="EDGEPLANE_TOKEN",
            help="the node's edge token (edgeplane token create NAME --edge)",
            show_default=False,
        ),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option("--region", help="the location this node serves (e.g. eu-central)"),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="the node's name (default: the host name)")
    ] = None,
    http_port: Annotated[int, typer.Option("--http-port", help="edge HTTP port")] = 8080,
    https_port: Annotated[
        int, typer.Option("--https-port", help="edge HTTPS port (0: no HTTPS)")
    ] = 8443,
    bind: Annotated[str, typer.Option("--bind", help="address nginx listens on")] = "127.0.0.1",
    address: Annotated[
        str | None,
        typer.Option("--address", help="the address clients reach this node at (default: bind)"),
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="state directory (default: $EDGEPLANE_HOME or ./.edgeplane); "
            "the node's state goes to HOME/edge/NAME/",
        ),
    ] = None,
    nginx: Annotated[str, typer.Option("--nginx", help="the nginx binary")] = "nginx",
    dns_port: Annotated[
        int,
        typer.Option("--dns-port", help="the node's authoritative DNS port, UDP and TCP (0: none)"),
    ] = 8053,
    dns_bind: Annotated[
        str | None,
        typer.Option("--dns-bind", help="addresses the DNS server listens on (default: --bind)"),
    ] = None,
    resolver: Annotated[
        str | None,
        typer.Option(
            "--resolver",
            help="a recursive resolver (host:port) for ALIAS records (none: ALIAS answers nothing)",
        ),
    ] = None,
    geoip_db: Annotated[
        Path | None,
        typer.Option(
            "--geoip-db",
            envvar="EDGEPLANE_GEOIP_DB",
            help="GeoIP2 City database for GeoDNS (default: the packaged GeoLite2-City)",
        ),
    ] = None,
    poll_wait: Annotated[
        float, typer.Option("--poll-wait", help="seconds a long-poll waits", hidden=True)
    ] = 25.0,
    bundle_dir: Annotated[
        Path | None,
        typer.Option(
            "--bundle-dir",
            help="where static bundles are unpacked (default: under the nginx prefix); a "
            "memory file system (/dev/shm/...) makes activation faster on slow disks, at the "
            "cost of fetching them again after a reboot",
        ),
    ] = None,
    analytics_interval: Annotated[
        float,
        typer.Option(
            "--analytics-interval",
            envvar="EDGEPLANE_ANALYTICS_INTERVAL",
            help="seconds between analytics reports",
        ),
    ] = 10.0,
    max_stapled: Annotated[
        int,
        typer.Option(
            "--max-stapled",
            min=0,
            help="certificates stapled at most (each an nginx server block: ~0.4 MiB, ~5 ms "
            "per reload); the others are served without their OCSP staple",
        ),
    ] = 100,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            help=f"the node's Prometheus metrics port, /metrics (0: none; default "
            f"{DEFAULT_METRICS_PORT}, or none with a warning when another node has it)",
            show_default=False,
        ),
    ] = None,
    metrics_bind: Annotated[
        str, typer.Option("--metrics-bind", help="address the metrics port listens on")
    ] = "127.0.0.1",
    metrics_token_file: Annotated[
        Path | None,
        typer.Option(
            "--metrics-token-file",
            envvar="EDGEPLANE_METRICS_TOKEN_FILE",
            help="a file holding the token scrapes must bring (edgeplane token create NAME "
            "--metrics); default: one made for the node, in its state directory",
        ),
    ] = None,
    uptime_interval: Annotated[
        float,
        typer.Option(
            "--uptime-interval",
            min=1.0,
            help="seconds between two uptime checks of a served domain (at most 20 a second)",
        ),
    ] = 60.0,
    parent_pid: Annotated[
        int | None,
        typer.Option(
            "--parent-pid",
            help="stop (like on SIGTERM) when this process, our parent, ends (edgeplane up)",
            hidden=True,
        ),
    ] = None,
) -> None:
    """Run an edge node until SIGINT / SIGTERM (which also stop its nginx and DNS server).
    One agent per state directory: a second one on the same HOME/edge/NAME refuses to start."""
    if ctx.invoked_subcommand is not None:
        return
    if not control_plane:
        _fail("--control-plane (or EDGEPLANE_URL) is required")
    from edgeplane.node.agent.client import control_plane_urls

    try:
        urls = control_plane_urls(control_plane or [])
    except ValueError as exc:
        _fail(f"--control-plane: {exc}")
    if not token:
        _fail("--token (or EDGEPLANE_TOKEN) is required")
    if not region:
        _fail("--region is required")
    if region and (kind := broad(region)) is not None:
        what = "region code" if isinstance(kind, RegionCode) else "region type"
        _fail(
            f"--region: {region!r} is a {what}, not a location; an edge node serves one location "
            f"such as eu-central (`edgeplane region list --region {kind.value}`)"
        )
    node_name = name or default_name()
    if not NAME.match(node_name):
        _fail(
            f"--name {node_name!r}: must be 1-63 lower-case letters, digits, '.', '-' or '_', "
            "starting with a letter or digit"
        )
    for option, port in (
        ("--http-port", http_port),
        ("--https-port", https_port),
        ("--dns-port", dns_port),
        ("--metrics-port", metrics_port or 0),
    ):
        if not 0 <= port <= 65535 or (option == "--http-port" and port == 0):
            _fail(f"{option} {port}: not a port")
    assert control_plane is not None and token is not None and region is not None
    metrics_token = None
    if metrics_token_file is not None:
        try:
            metrics_token = metrics_token_file.read_text().strip()
        except OSError as exc:
            _fail(f"--metrics-token-file {metrics_token_file}: {exc.strerror or exc}")
        if not metrics_token:
            _fail(f"--metrics-token-file {metrics_token_file}: the file is empty")
    from edgeplane.node.agent.main import NodeSettings, become_agent

    become_agent(
        NodeSettings(
            control_plane=urls,
            token=token,
            region=region,
            name=node_name,
            http_port=http_port,
            https_port=https_port,
            bind=bind,
            address=address,
            home=str(home or Path(os.environ.get("EDGEPLANE_HOME") or "./.edgeplane")),
            nginx=nginx,
            dns_port=dns_port,
            dns_bind=dns_bind,
            resolver=resolver,
            geoip_db=str(geoip_db) if geoip_db is not None else None,
            poll_wait=poll_wait,
            bundle_dir=str(bundle_dir) if bundle_dir is not None else None,
            analytics_interval=analytics_interval,
            max_stapled=max_stapled,
            parent_pid=parent_pid,
            metrics_port=DEFAULT_METRICS_PORT if metrics_port is None else metrics_port,
            metrics_port_given=metrics_port is not None,
            metrics_bind=metrics_bind,
            metrics_token=metrics_token,
            uptime_interval=uptime_interval,
        )
    )


def _mount_node_commands() -> None:
    if importlib.util.find_spec("edgeplane.cli.edge_nodes") is None:
        return
    importlib.import_module("edgeplane.cli.edge_nodes").register(app)


_mount_node_commands()
