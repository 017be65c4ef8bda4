"""The process commands: ``init``, ``up`` (everything on one machine) and ``server``."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgeplane.settings import Settings

if TYPE_CHECKING:
    from edgeplane.routing.geoip import GeoLocator
    from edgeplane.store.db import Database

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


def _prepare(home: Path | None) -> tuple[Settings, Database, str]:
    """Migrate the database and make sure the admin token exists."""
    from edgeplane.services.access import ensure_admin_token
    from edgeplane.store.db import Database
    from edgeplane.store.migrate import upgrade

    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = Settings.from_env(home=home)
    settings.home.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.home, 0o700)
    db = Database(settings.effective_database_url)
    upgrade(db.engine)
    token = ensure_admin_token(db, settings.admin_token_path)
    return settings, db, token


def _database_label(settings: Settings) -> str:
    if settings.database_url:
        from sqlalchemy.engine import make_url

        return make_url(settings.database_url).render_as_string(hide_password=True)
    return str((settings.home / "edgeplane.db").resolve())


def init(home: HomeOpt = None) -> None:
    """Create the state directory, the database and the admin token."""
    settings, db, _ = _prepare(home)
    db.dispose()
    typer.echo(f"home:        {settings.home.resolve()}")
    typer.echo(f"database:    {_database_label(settings)}")
    typer.echo(f"admin token: {settings.admin_token_path.resolve()} (mode 0600)")


def _serve(settings: Settings, db: Database, host: str, port: int, banner: list[str]) -> None:
    import uvicorn

    from edgeplane.api.app import create_app

    app = create_app(settings, db, locator=_locator(settings))
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)

    def _stop(signum: int, _frame: object) -> None:
        server.should_exit = True

    # uvicorn installs its own handlers when it runs in the main thread; these cover the time
    # before it does and make SIGTERM and SIGINT behave the same.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    for line in banner:
        typer.echo(line)
    sys.stdout.flush()
    try:
        server.run()
    finally:
        db.dispose()
    if not server.started:
        typer.echo(f"error: could not listen on {host}:{port}", err=True)
        raise typer.Exit(1)
    typer.echo("stopped")


def up(
    home: HomeOpt = None,
    api_port: Annotated[int, typer.Option("--api-port", help="API and dashboard port")] = 8800,
    host: HostOpt = "127.0.0.1",
) -> None:
    """Run Edgeplane on this machine: the control plane with its API. Ctrl-C stops it."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings, db, token = _prepare(home)
    url = f"http://{host}:{api_port}"
    _serve(
        settings,
        db,
        host,
        api_port,
        [
            f"Edgeplane is up (database {_database_label(settings)})",
            f"  API:         {url}/api/v1",
            f"  API docs:    {url}/docs",
            f"  admin token: {token}",
            f"               (also in {settings.admin_token_path.resolve()})",
            f"  CLI:         export EDGEPLANE_URL={url} "
            f"EDGEPLANE_TOKEN=$(cat {settings.admin_token_path.resolve()})",
            "Press Ctrl-C to stop.",
        ],
    )


def server(
    home: HomeOpt = None,
    port: Annotated[int, typer.Option("--port", help="API port")] = 8800,
    host: HostOpt = "127.0.0.1",
) -> None:
    """Run the control plane alone (several replicas may share EDGEPLANE_DATABASE_URL)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings, db, _ = _prepare(home)
    _serve(
        settings,
        db,
        host,
        port,
        [f"Edgeplane control plane on http://{host}:{port} (database {_database_label(settings)})"],
    )
