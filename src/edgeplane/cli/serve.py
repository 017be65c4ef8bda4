"""The process commands: ``init``, ``up`` (everything on one machine) and ``serve`` (the
control plane alone; ``--workers N``: N API processes sharing its port, ``cli/workers.py``)."""

from __future__ import annotations

import gc
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgeplane.cli.workers import MAX_WORKERS
from edgeplane.settings import Settings

if TYPE_CHECKING:
    from edgeplane.api.serving import ControlPlaneServer
    from edgeplane.cli.workers import WorkerLink
    from edgeplane.routing.geoip import GeoLocator
    from edgeplane.store.db import Database

log = logging.getLogger("edgeplane.serve")
DEFAULT_METRICS_PORT = 8810  # the edge node's, as ``edgeplane edge``'s
HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", help="state directory (default: $EDGEPLANE_HOME or ./.edgeplane)"),
]
HostOpt = Annotated[str, typer.Option("--host", help="address to listen on")]


def _locator(settings: Settings) -> GeoLocator:
    from edgeplane.routing.geoip import GeoDatabaseError, GeoLocator

    try:
        return GeoLocator(settings.geoip_db)
    except GeoDatabaseError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _port_free(host: str, port: int) -> bool:
    try:
        with socket.create_server((host, port)):
            return True
    except OSError:
        return False


def _check_port(host: str, port: int) -> None:
    """Fail at once, before any state is created, when the API's address is taken (say by a
    running ``up``). uvicorn's own bind, later, still reports a port taken in between."""
    _bind(host, port).close()


def _bind(host: str, port: int, backlog: int | None = None) -> socket.socket:
    """A socket bound to the API's address (listening when ``backlog`` is given), or a
    one-line error and exit 1 when the address is taken. Its protocol is getaddrinfo's
    (IPPROTO_TCP), as uvicorn's own listener: asyncio sets TCP_NODELAY on the connections it
    accepts only then (else a response written in two parts waits for a delayed ACK)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port}: {exc}", err=True)
        raise typer.Exit(1) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    try:
        sock.bind(address)
        if backlog is not None:
            sock.listen(backlog)
    except OSError as exc:
        sock.close()
        typer.echo(
            f"error: could not listen on {host}:{port}: {exc.strerror or exc} "
            "(is Edgeplane already running there?)",
            err=True,
        )
        raise typer.Exit(1) from None
    return sock


def listen_url(host: str, port: int) -> str:
    """The API's URL for a listening address (an unspecified one: loopback)."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _prepare(home: Path | None, listen: str | None = None) -> tuple[Settings, Database, str]:
    """Migrate the database and make sure the admin token exists. ``listen``: the API's URL,
    the public URL unless ``EDGEPLANE_PUBLIC_URL`` says otherwise."""
    from edgeplane.services.access import ensure_admin_token
    from edgeplane.store.migrate import upgrade

    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = Settings.from_env(home=home)
    if listen and not settings.public_url:
        settings = replace(settings, public_url=listen)
    settings.home.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.home, 0o700)
    db = _open_database(settings)
    upgrade(db.engine)
    token = ensure_admin_token(db, settings.admin_token_path)
    return settings, db, token


def _open_database(settings: Settings) -> Database:
    from edgeplane.secrets import SecretBox
    from edgeplane.store.db import Database

    return Database(
        settings.effective_database_url,
        secrets=SecretBox.from_settings(settings),
        ocsp_url=settings.ocsp_url,
    )


def _node_location(db: Database, region: str) -> tuple[str, str]:
    """The local edge node's location and its label (``us-east (na, americas)``); a region
    that is not a location is refused here rather than by the node's registration."""
    from edgeplane.errors import EdgeplaneError
    from edgeplane.services import regions
    from edgeplane.store.actor import LOCAL

    try:
        with db.read(LOCAL, "default") as tx:
            row = regions.need_location(
                tx, regions.resolve(tx, region, "--region"), "--region", "the local edge node"
            )
            return row.code, regions.label(row)
    except EdgeplaneError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None


def _database_label(settings: Settings) -> str:
    if settings.database_url:
        from sqlalchemy.engine import make_url

        return make_url(settings.database_url).render_as_string(hide_password=True)
    return str((settings.home / "edgeplane.db").resolve())


def _backup_lines(settings: Settings, db: Database) -> list[str]:
    """Where backups go and the key they need (made now, so that it can be copied at once)."""
    from edgeplane.backup import keys, locations, schedule
    from edgeplane.backup.errors import BackupError

    if not schedule.enabled(settings, db):
        return ["  backups:     off (EDGEPLANE_BACKUP_SCHEDULE; see docs/disaster-recovery.md)"]
    try:
        key = keys.load(settings, create=True)
        names = ", ".join(t.url for t in locations.configured(settings))
    except BackupError as exc:
        return [f"  backups:     not possible: {exc}"]
    path = keys.key_path(settings).resolve()
    where = "EDGEPLANE_BACKUP_KEY" if settings.backup_key else str(path)
    return [
        f"  backups:     {names} (full weekly, incremental daily, verified daily)",
        f"               backup key {key.key_id} in {where}: keep a copy off this machine",
    ]


def init(home: HomeOpt = None) -> None:
    """Create the state directory, the database and the admin token."""
    settings, db, _ = _prepare(home)
    db.dispose()
    typer.echo(f"home:        {settings.home.resolve()}")
    typer.echo(f"database:    {_database_label(settings)}")
    typer.echo(f"admin token: {settings.admin_token_path.resolve()} (mode 0600)")


EDGE_NODE_NAME = "local"
GRACEFUL_SHUTDOWN_S = 2
EDGE_TOKEN_FILE = "edge-token"


def _edge_token(db: Database, settings: Settings) -> str:
    """The local edge node's token, kept in HOME/edge-token (0600) and issued when missing."""
    from edgeplane.errors import Unauthenticated
    from edgeplane.node.agent.statedir import write_private
    from edgeplane.services.access import authenticate, create_edge_token

    path = settings.home / EDGE_TOKEN_FILE
    if path.exists():
        secret = path.read_text().strip()
        try:
            if authenticate(db, secret).edge:
                return secret
        except Unauthenticated:
            pass
    secret = create_edge_token(db, f"edge node {EDGE_NODE_NAME}")
    write_private(path, (secret + "\n").encode())
    return secret


def _start_edge(
    settings: Settings,
    token: str,
    api_url: str,
    host: str,
    region: str,
    ports: Ports,
) -> subprocess.Popen[bytes]:
    """The local edge node: ``edgeplane edge`` as a child process (its own session, so that
    a terminal's Ctrl-C reaches ``up`` alone, which then stops it), started from the main
    thread with ``--parent-pid``: it ends when ``up`` ends, however ``up`` ends."""
    env = {k: v for k, v in os.environ.items() if k not in ("EDGEPLANE_URL", "EDGEPLANE_TOKEN")}
    env["EDGEPLANE_TOKEN"] = token  # in the environment, not on the command line
    command = [
        sys.executable,
        "-m",
        "edgeplane",
        "edge",
        "--control-plane",
        api_url,
        "--region",
        region,
        "--name",
        EDGE_NODE_NAME,
        "--http-port",
        str(ports.http),
        "--https-port",
        str(ports.https),
        "--dns-port",
        str(ports.dns),
        "--metrics-port",
        str(ports.metrics),
        "--metrics-token-file",
        str(settings.metrics_token_path.resolve()),
        "--bind",
        host,
        "--home",
        str(settings.home.resolve()),
        "--parent-pid",
        str(os.getpid()),
    ]
    return subprocess.Popen(command, env=env, start_new_session=True)


def _stop_child(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _serve(
    settings: Settings,
    db: Database,
    host: str,
    port: int,
    banner: Callable[[], list[str]],
    on_signal: Callable[[], None] | None = None,
) -> None:
    """Serve the API until SIGINT or SIGTERM. ``banner`` runs once the API listens (it may
    start more processes) and returns the lines to print: "up" is said only when it is;
    ``on_signal`` runs at the first signal, beside the API's shutdown."""

    def started() -> None:
        for line in banner():
            typer.echo(line)
        sys.stdout.flush()

    signalled: list[float] = []  # when the first signal came (monotonic)

    def signal_seen() -> None:
        if not signalled:
            signalled.append(time.monotonic())
        if on_signal is not None:
            on_signal()

    server = _control_plane_server(settings, db, host, port, started, signal_seen)

    def _stop(signum: int, _frame: object) -> None:
        server.should_exit = True
        signal_seen()

    # uvicorn installs its own handlers when it runs in the main thread; these cover the time
    # before it does and make SIGTERM and SIGINT behave the same.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        server.run()
    except SystemExit:
        pass  # uvicorn's way of saying that it could not start (it logged why)
    finally:
        db.dispose()
        if signalled:
            log.info("API and background jobs stopped in %.2f s", time.monotonic() - signalled[0])
    if not server.started and not server.should_exit:  # not stopped by a signal
        typer.echo(f"error: could not listen on {host}:{port}", err=True)
        raise typer.Exit(1)
    typer.echo("stopped")


def _control_plane_server(
    settings: Settings,
    db: Database,
    host: str,
    port: int,
    on_started: Callable[[], None],
    on_signal: Callable[[], None] | None = None,
) -> ControlPlaneServer:
    """The app over ``db`` with its background runner, in a uvicorn server."""
    import uvicorn

    from edgeplane.api.app import create_app
    from edgeplane.api.serving import ControlPlaneServer
    from edgeplane.services.jobs import control_plane_runner

    runner = control_plane_runner(db, settings)
    app = create_app(settings, db, locator=_locator(settings), runner=runner)
    # On shutdown the edge agents' long-polls are answered at once (ControlPlaneServer); the
    # grace only bounds other requests still running.
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    return ControlPlaneServer(
        config, app.state.notifier, on_signal=on_signal, on_started=on_started
    )


def up(
    home: HomeOpt = None,
    api_port: Annotated[int, typer.Option("--api-port", help="API and dashboard port")] = 8800,
    http_port: Annotated[int, typer.Option("--http-port", help="edge HTTP port")] = 8080,
    https_port: Annotated[int, typer.Option("--https-port", help="edge HTTPS port")] = 8443,
    dns_port: Annotated[
        int, typer.Option("--dns-port", help="edge DNS port, UDP and TCP (0: no DNS server)")
    ] = 8053,
    region: Annotated[
        str, typer.Option("--region", help="the location of the local edge node, e.g. eu-central")
    ] = "us-east",
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            help="the edge node's Prometheus metrics port (0: none; default 8810, or none when "
            "it is taken)",
            show_default=False,
        ),
    ] = None,
    no_edge: Annotated[
        bool, typer.Option("--no-edge", help="do not start the local edge node")
    ] = False,
    host: HostOpt = "127.0.0.1",
) -> None:
    """Run Edgeplane on this machine: the control plane with its API and one local edge node.
    Ctrl-C stops everything."""
    from edgeplane.cli import supervise

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    _check_port(host, api_port)
    if metrics_port and not no_edge:
        _check_port(host, metrics_port)
    elif metrics_port is None:
        metrics_port = DEFAULT_METRICS_PORT if _port_free(host, DEFAULT_METRICS_PORT) else 0
    # Until the API serves, SIGTERM interrupts the start like Ctrl-C: what started is stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    settings = Settings.from_env(home=home)
    try:
        with supervise.one_up(settings.home, None if no_edge else _local_node_paths(settings)):
            ports = Ports(api_port, http_port, https_port, dns_port, metrics_port)
            _up(home, ports, region, no_edge, host)
    except supervise.Refused as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("stopped")
    finally:
        # Every process has stopped: spare the exit the collector's passes over every object
        # (about 1 s here), which only free memory that the exit frees anyway.
        gc.freeze()


def _local_node_paths(settings: Settings) -> tuple[Path, Path]:
    """The local node's state directory and nginx prefix, as ``edgeplane edge`` makes them."""
    from edgeplane.node.agent.paths import nginx_prefix

    state_dir = (settings.home.resolve() / "edge" / EDGE_NODE_NAME).resolve()
    return state_dir, nginx_prefix(state_dir, EDGE_NODE_NAME)


@dataclass(frozen=True)
class Ports:
    api: int
    http: int
    https: int
    dns: int
    metrics: int  # the edge node's; 0: none


def _up(home: Path | None, ports: Ports, region: str, no_edge: bool, host: str) -> None:
    from edgeplane.cli.supervise import terminate
    from edgeplane.services.access import ensure_metrics_token

    settings, db, token = _prepare(home, listen_url(host, ports.api))
    ensure_metrics_token(db, settings.metrics_token_path)
    url = f"http://{host}:{ports.api}"
    edge: list[subprocess.Popen[bytes]] = []
    edge_metrics = bool(ports.metrics) and not no_edge
    where = ""
    if not no_edge:
        region, where = _node_location(db, region)

    def started() -> list[str]:
        banner = [
            f"Edgeplane is up (database {_database_label(settings)})",
            f"  dashboard:   {url}/ (sign in with the admin token)",
            f"  API:         {url}/api/v1",
            f"  API docs:    {url}/docs",
            f"  admin token: {token}",
            f"               (also in {settings.admin_token_path.resolve()})",
            f"  CLI:         export EDGEPLANE_URL={url} "
            f"EDGEPLANE_TOKEN=$(cat {settings.admin_token_path.resolve()})",
        ]
        if not no_edge:
            # Started once the API listens: the agent registers at once instead of retrying,
            # and does not compete for the CPU while the control plane starts.
            edge.append(_start_edge(settings, edge_token, url, host, region, ports))
            banner.append(
                f"  edge node:   {EDGE_NODE_NAME} in {where} "
                f"http://{host}:{ports.http} https://{host}:{ports.https}"
            )
            if ports.dns:
                banner.append(f"  DNS:         {host}:{ports.dns} (UDP and TCP)")
        banner.append(
            f"  metrics:     {url}/metrics"
            + (f" and http://{host}:{ports.metrics}/metrics (edge node)" if edge_metrics else "")
        )
        banner.append(f"               (scrape token in {settings.metrics_token_path.resolve()})")
        banner += _backup_lines(settings, db)
        banner.append("Press Ctrl-C to stop.")
        return banner

    def stop_edge() -> None:
        for process in edge:
            terminate(process)

    edge_token = "" if no_edge else _edge_token(db, settings)
    try:
        # At the signal the agent is told to stop at once, beside the API's shutdown.
        _serve(settings, db, host, ports.api, started, on_signal=stop_edge)
    finally:
        waited = time.monotonic()
        for process in edge:
            _stop_child(process)
        if edge:
            log.info("edge node stopped (waited %.2f s for it)", time.monotonic() - waited)


def serve(
    home: HomeOpt = None,
    port: Annotated[int, typer.Option("--port", help="API port")] = 8800,
    host: HostOpt = "127.0.0.1",
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=MAX_WORKERS,
            help="API processes on this machine, sharing the port (background work runs in "
            "one of them at a time)",
        ),
    ] = 1,
) -> None:
    """Run the control plane alone: the API and its background work, no edge node (several
    replicas may share EDGEPLANE_DATABASE_URL)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if workers > 1:
        _serve_workers(home, host, port, workers)
        return
    _check_port(host, port)
    settings, db, _ = _prepare(home, listen_url(host, port))
    label = _database_label(settings)
    _serve(
        settings,
        db,
        host,
        port,
        lambda: [
            f"Edgeplane control plane on http://{host}:{port} (database {label})",
            f"  dashboard: http://{host}:{port}/",
            *_backup_lines(settings, db),
        ],
    )


LISTEN_BACKLOG = 2048  # uvicorn's default


def _serve_workers(home: Path | None, host: str, port: int, count: int) -> None:
    """``serve --workers N``: bind the port, prepare the database and the token once, then
    run N workers on the one socket under a ``Supervisor`` until SIGINT or SIGTERM."""
    from edgeplane.cli import workers

    sock = _bind(host, port, LISTEN_BACKLOG)  # before any state: a taken port changes nothing
    folder: Path | None = None
    try:
        # Before prometheus_client is imported (by the app's modules, loaded below).
        folder = workers.multiprocess_metrics(Settings.from_env(home=home).home)
        url = listen_url(host, port)
        settings, db, _ = _prepare(home, url)
        banner = [
            f"Edgeplane control plane on http://{host}:{port} "
            f"(database {_database_label(settings)}; {count} workers)",
            f"  dashboard: http://{host}:{port}/",
            *_backup_lines(settings, db),
        ]
        db.dispose()  # the workers open their own connections
        _locator(settings)  # a GeoIP database that cannot be read: one error, here
        _load_app_modules()  # once, here: the forked workers share them

        def ready() -> None:
            for line in banner:
                typer.echo(line)
            sys.stdout.flush()

        supervisor = workers.Supervisor(
            count,
            lambda link: _worker(settings, host, port, sock, link),
            on_ready=ready,
            on_exit=_worker_gone,
            on_stop=sock.close,
        )
        status = supervisor.run()
    finally:
        sock.close()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    if status:
        typer.echo("error: the workers could not start (see the log above)", err=True)
        raise typer.Exit(status)
    typer.echo("stopped")


def _load_app_modules() -> None:
    """Import what a worker runs (about 2 s of CPU), once in the supervisor, and warm what
    every worker would otherwise build at its first request; no thread starts."""
    import uvicorn  # noqa: F401

    import edgeplane.api.app
    import edgeplane.api.serving
    import edgeplane.services.jobs  # noqa: F401
    from edgeplane.model.domains import registrable_domain

    registrable_domain("example.com")  # the public suffix list, parsed once for all (80 ms)
    gc.freeze()  # the imported objects stay shared with the workers (no collector writes)


def _worker_gone(pid: int) -> None:
    """A worker ended: what prometheus_client keeps per live process is dropped."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _worker(settings: Settings, host: str, port: int, sock: socket.socket, link: WorkerLink) -> int:
    """One worker of ``serve --workers N``: the control plane on the shared socket until
    SIGTERM (from the supervisor, or when the supervisor dies). Exit status 0, or 3 when it
    could not start."""
    db = _open_database(settings)
    server = _control_plane_server(settings, db, host, port, link.ready)

    def _stop(_signum: int, _frame: object) -> None:
        server.should_exit = True

    signal.signal(signal.SIGTERM, _stop)  # until uvicorn's own handlers are in place
    signal.signal(signal.SIGINT, _stop)
    try:
        server.run(sockets=[sock])
    except SystemExit:
        pass  # uvicorn's way of saying that it could not start (it logged why)
    finally:
        db.dispose()
    return 0 if server.started else 3
