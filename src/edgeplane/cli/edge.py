"""``edgeplane edge``: run an edge node (the agent and its nginx); ``edgeplane edge nodes`` and
``edgeplane edge node ID`` list the nodes (when the control plane's commands are installed).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import re
import socket
from pathlib import Path
from typing import Annotated

import typer

from edgeplane.model.enums import RegionCode
from edgeplane.model.regions import broad

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
        str | None,
        typer.Option("--control-plane", envvar="EDGEPLANE_URL", help="the control plane's URL"),
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
        typer.Option("--analytics-interval", help="seconds between analytics reports"),
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
    ):
        if not 0 <= port <= 65535 or (option == "--http-port" and port == 0):
            _fail(f"{option} {port}: not a port")
    assert control_plane is not None and token is not None and region is not None

    import asyncio

    from edgeplane.node import lifeline
    from edgeplane.node.agent import heap
    from edgeplane.node.agent.agent import Agent, AgentOptions, run_until_signalled
    from edgeplane.node.agent.lock import LockHeld, state_lock
    from edgeplane.node.agent.paths import nginx_prefix
    from edgeplane.node.nginx.engine import NginxEngine
    from edgeplane.node.nginx.local import NodeLocal, find_brotli_module

    if parent_pid is not None and not lifeline.bind_to_parent(parent_pid):
        _fail(f"the process that started this agent (pid {parent_pid}) is gone", 1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    base = home or Path(os.environ.get("EDGEPLANE_HOME") or "./.edgeplane")
    state_dir = (base / "edge" / node_name).resolve()
    # Before anything of the node is touched, and for the agent's whole life.
    lock = state_lock(state_dir)
    try:
        lock.acquire()
    except LockHeld as exc:
        holder = f"pid {exc.pid}" if exc.pid is not None else "another process"
        _fail(
            f"edge node {node_name}: its state {state_dir} is in use by another agent "
            f"({holder}); stop that one first",
            1,
        )
    except OSError as exc:
        _fail(f"edge node {node_name}: cannot lock its state {state_dir}: {exc}", 1)
    prefix = nginx_prefix(state_dir, node_name)
    local = NodeLocal(
        prefix=prefix,
        node_name=node_name,
        http_port=http_port,
        https_port=https_port or None,
        bind=bind,
        brotli_module=find_brotli_module(),
        bundle_dir=bundle_dir.resolve() if bundle_dir is not None else None,
        max_stapled=max_stapled,
    )
    options = AgentOptions(
        control_plane=control_plane,
        token=token,
        name=node_name,
        region=region,
        state_dir=state_dir,
        http_port=http_port,
        https_port=https_port or None,
        address=address or bind,
        bind=bind,
        pid_file=prefix / "nginx.pid",
        poll_wait_s=poll_wait,
        analytics_interval_s=analytics_interval,
    )
    engine = NginxEngine(local, binary=nginx)
    dns = None
    if dns_port:
        from edgeplane.node.powerdns.geo import GeoDnsEngine
        from edgeplane.node.powerdns.process import PdnsProcess

        addresses = [a.strip() for a in (dns_bind or bind).split(",") if a.strip()]
        try:
            process = PdnsProcess(
                state_dir / "pdns",
                local_addresses=addresses,
                dns_port=dns_port,
                geoip_database=geoip_db,
                resolver=resolver,
            )
        except ValueError as exc:
            _fail(f"--dns-bind: {exc}")
        from edgeplane.node.powerdns.dnsdist import DnsdistError, find_binary

        try:
            find_binary()  # dnsdist answers on --dns-port, in front of PowerDNS
        except DnsdistError as exc:
            _fail(str(exc), 1)
        dns = GeoDnsEngine(process)
    typer.echo(
        f"edge node {node_name}: http://{bind}:{http_port}"
        + (f", https://{bind}:{https_port}" if https_port else "")
        + (f", dns {dns_bind or bind}:{dns_port}" if dns_port else "")
        + f" (state {state_dir}, nginx {prefix})",
        err=True,
    )
    try:
        heap.single_arena()  # before the agent's threads start: see node.agent.heap
        asyncio.run(run_until_signalled(Agent(options, engine, dns=dns), parent_pid=parent_pid))
    finally:
        lock.release()  # once nginx and the DNS server have stopped


def _mount_node_commands() -> None:
    if importlib.util.find_spec("edgeplane.cli.edge_nodes") is None:
        return
    importlib.import_module("edgeplane.cli.edge_nodes").register(app)


_mount_node_commands()
