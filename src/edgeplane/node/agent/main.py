"""The agent's process: ``edgeplane edge`` checks its options, then becomes this module.

The command line is parsed by the CLI (typer, with click and rich), whose modules an agent
never uses again; they stayed in its memory for its whole life. So ``edgeplane edge`` replaces
its own process (``exec``: the same pid, its supervisor and signals unchanged) with ``python
-m edgeplane.node.agent.main``, passing the checked settings through an inherited pipe rather
than the command line or the environment, where the node's token would be readable by others.
Measured on an agent's imports: 53.6 MiB resident with the CLI, 45.8 without it and without
httpx's own command-line client (``without_httpx_cli``).

The process's command line names the node (``--node NAME``) for ``ps``, and the process that
started it (``--parent-pid PID``, as given to ``edgeplane edge``: what ``edgeplane up`` looks
for in an agent it finds running); only the settings read from the pipe count.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

MODULE = "edgeplane.node.agent.main"


@dataclass(frozen=True)
class NodeSettings:
    """What ``edgeplane edge`` was told, checked (see ``edgeplane.cli.edge``)."""

    # The control plane's URLs (its replicas, tried in turn: ``EdgeClient``); one string of
    # comma-separated URLs is taken too.
    control_plane: tuple[str, ...] | str
    token: str
    region: str
    name: str
    http_port: int
    https_port: int  # 0: no HTTPS
    bind: str
    address: str | None
    home: str
    nginx: str
    dns_port: int  # 0: no DNS server
    dns_bind: str | None
    resolver: str | None
    geoip_db: str | None
    poll_wait: float
    bundle_dir: str | None
    analytics_interval: float
    max_stapled: int
    parent_pid: int | None
    metrics_port: int = 0  # 0: no metrics port
    metrics_port_given: bool = True  # False: the default port, skipped (warned) when taken
    metrics_bind: str = "127.0.0.1"
    metrics_token: str | None = None  # None: the node's own, made in its state directory
    uptime_interval: float = 60.0


def become_agent(settings: NodeSettings) -> NoReturn:
    """Replace this process with the agent's (``exec``); never returns."""
    read, write = os.pipe()
    os.write(write, json.dumps(dataclasses.asdict(settings)).encode())  # < 1 KiB: one write
    os.close(write)
    os.set_inheritable(read, True)
    sys.stdout.flush()
    sys.stderr.flush()
    shown = ["--node", settings.name]
    if settings.parent_pid is not None:  # how ``edgeplane up`` knows an agent it started
        shown += ["--parent-pid", str(settings.parent_pid)]
    os.execv(sys.executable, [sys.executable, "-m", MODULE, "--settings-fd", str(read), *shown])


def read_settings(fd: int) -> NodeSettings:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    doc = json.loads(b"".join(chunks))
    if isinstance(doc.get("control_plane"), list):
        doc["control_plane"] = tuple(doc["control_plane"])
    return NodeSettings(**doc)


def without_httpx_cli() -> None:
    """httpx imports its command-line client whenever click, rich and pygments are installed
    (as they are, for the CLI): 4.5 MiB of modules an agent never runs. An empty
    ``httpx._main`` makes httpx take its fallback (a ``main`` that explains what is missing),
    as where they are not installed."""
    sys.modules.setdefault("httpx._main", types.ModuleType("httpx._main"))


def fail(message: str, code: int = 2) -> NoReturn:
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def node_metrics_token(state_dir: Path) -> str:
    """The node's own metrics token (``STATE/metrics-token``, mode 0600), made on first use:
    for a node given no metrics token."""
    import secrets

    path = state_dir / "metrics-token"
    try:
        token = path.read_text().strip()
        if token:
            return token
    except FileNotFoundError:
        pass
    token = "epm_" + secrets.token_urlsafe(30)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def run(settings: NodeSettings) -> None:
    """Run the edge node until SIGINT / SIGTERM (which also stop its nginx and DNS server).
    One agent per state directory: a second one on the same HOME/edge/NAME refuses to start."""
    without_httpx_cli()
    import asyncio
    import logging

    from edgeplane.node import lifeline
    from edgeplane.node.agent import heap
    from edgeplane.node.agent.agent import Agent, AgentOptions, run_until_signalled
    from edgeplane.node.agent.functions import (
        FunctionHost,
        find_function_runtime,
        resolve_geoip_db,
    )
    from edgeplane.node.agent.lock import LockHeld, state_lock
    from edgeplane.node.agent.metrics_server import MetricsServer
    from edgeplane.node.agent.paths import nginx_prefix
    from edgeplane.node.nginx.engine import NginxEngine
    from edgeplane.node.nginx.local import (
        NodeLocal,
        find_brotli_module,
        find_js_module,
        find_waf_engine,
    )

    s = settings
    if s.parent_pid is not None and not lifeline.bind_to_parent(s.parent_pid):
        fail(f"the process that started this agent (pid {s.parent_pid}) is gone", 1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    state_dir = (Path(s.home) / "edge" / s.name).resolve()
    # Before anything of the node is touched, and for the agent's whole life.
    lock = state_lock(state_dir)
    try:
        lock.acquire()
    except LockHeld as exc:
        holder = f"pid {exc.pid}" if exc.pid is not None else "another process"
        fail(
            f"edge node {s.name}: its state {state_dir} is in use by another agent "
            f"({holder}); stop that one first",
            1,
        )
    except OSError as exc:
        fail(f"edge node {s.name}: cannot lock its state {state_dir}: {exc}", 1)
    metrics_server = None
    if s.metrics_port:
        token = s.metrics_token or node_metrics_token(state_dir)
        try:
            metrics_server = MetricsServer(None, s.metrics_bind, s.metrics_port, token)
        except OSError as exc:
            why = f"cannot listen on {s.metrics_bind}:{s.metrics_port}: {exc.strerror or exc}"
            if s.metrics_port_given:
                fail(f"--metrics-port {s.metrics_port}: {why}", 1)
            print(
                f"warning: edge node {s.name} has no metrics port ({why}); give it one with "
                "--metrics-port",
                file=sys.stderr,
                flush=True,
            )
    prefix = nginx_prefix(state_dir, s.name)
    local = NodeLocal(
        prefix=prefix,
        node_name=s.name,
        http_port=s.http_port,
        https_port=s.https_port or None,
        bind=s.bind,
        brotli_module=find_brotli_module(),
        waf=find_waf_engine(),
        js_module=find_js_module(),
        bundle_dir=Path(s.bundle_dir).resolve() if s.bundle_dir is not None else None,
        max_stapled=s.max_stapled,
    )
    options = AgentOptions(
        control_plane=s.control_plane,
        token=s.token,
        name=s.name,
        region=s.region,
        state_dir=state_dir,
        http_port=s.http_port,
        https_port=s.https_port or None,
        address=s.address or s.bind,
        bind=s.bind,
        pid_file=prefix / "nginx.pid",
        poll_wait_s=s.poll_wait,
        analytics_interval_s=s.analytics_interval,
        dns_port=s.dns_port or None,
        dns_address=(s.dns_bind or s.bind).split(",")[0].strip(),
        uptime_interval_s=s.uptime_interval,
    )
    engine = NginxEngine(local, binary=s.nginx)
    dns = None
    if s.dns_port:
        from edgeplane.node.powerdns.dnsdist import DnsdistError, find_binary
        from edgeplane.node.powerdns.geo import GeoDnsEngine
        from edgeplane.node.powerdns.process import PdnsProcess

        addresses = [a.strip() for a in (s.dns_bind or s.bind).split(",") if a.strip()]
        try:
            process = PdnsProcess(
                state_dir / "pdns",
                local_addresses=addresses,
                dns_port=s.dns_port,
                geoip_database=Path(s.geoip_db) if s.geoip_db else None,
                resolver=s.resolver,
            )
        except ValueError as exc:
            fail(f"--dns-bind: {exc}")
        try:
            find_binary()  # dnsdist answers on --dns-port, in front of PowerDNS
        except DnsdistError as exc:
            fail(str(exc), 1)
        dns = GeoDnsEngine(process)
    metrics = ""
    if metrics_server is not None:
        where = "given" if s.metrics_token else f"in {state_dir / 'metrics-token'}"
        metrics = f", metrics http://{s.metrics_bind}:{metrics_server.port}/metrics (token {where})"
    print(
        f"edge node {s.name}: http://{s.bind}:{s.http_port}"
        + (f", https://{s.bind}:{s.https_port}" if s.https_port else "")
        + (f", dns {s.dns_bind or s.bind}:{s.dns_port}" if s.dns_port else "")
        + metrics
        + f" (state {state_dir}, nginx {prefix})",
        file=sys.stderr,
        flush=True,
    )
    try:
        heap.single_arena()  # before the agent's threads start: see node.agent.heap
        runtime, why_not = find_function_runtime()
        if runtime is None:
            logging.getLogger("edgeplane.node.agent").info(
                "edge functions cannot run on this node: %s", why_not
            )
        functions = FunctionHost(
            runtime,
            prefix,
            state_dir,
            geoip_db=resolve_geoip_db(s.geoip_db),
            why_not=why_not,
            socket_group=local.worker_group,
        )
        agent = Agent(options, engine, dns=dns, metrics_server=metrics_server, functions=functions)
        asyncio.run(run_until_signalled(agent, parent_pid=s.parent_pid))
    finally:
        lock.release()  # once nginx and the DNS server have stopped


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[0] != "--settings-fd" or not argv[1].isdigit():
        fail("usage: edgeplane edge (this module runs the agent it starts)")
    run(read_settings(int(argv[1])))


if __name__ == "__main__":
    main(sys.argv[1:])
