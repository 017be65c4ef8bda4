"""The ``edgeplane`` command: the process commands and the CLI over the REST API.

Every noun command talks to the control plane like the SDK does: remote when a URL is set
(``--url`` / ``EDGEPLANE_URL``, with ``--token`` / ``EDGEPLANE_TOKEN``), else embedded on the
state under ``--home`` / ``EDGEPLANE_HOME``. Tables for people, ``--json`` for scripts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from edgeplane.cli import (
    access,
    alerts,
    backup,
    bots,
    ca,
    cdn,
    certs,
    control_plane,
    costs,
    datacenters,
    demo_origin,
    deploy,
    dns,
    domains,
    dr,
    edge,
    functions,
    iac,
    logs,
    metrics,
    operations,
    regions,
    scaling,
    secrets,
    security_score,
    serve,
    servers,
    service_accounts,
    services,
    users,
    waf,
)
from edgeplane.cli.runtime import Globals
from edgeplane.version import __version__

app = typer.Typer(
    name="edgeplane",
    help="Edgeplane: edge infrastructure from one control plane.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgeplane {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    project: Annotated[
        str,
        typer.Option("--project", "-p", envvar="EDGEPLANE_PROJECT", help="the project to act in"),
    ] = "default",
    url: Annotated[
        str | None,
        typer.Option("--url", help="control plane URL (default: $EDGEPLANE_URL, else embedded)"),
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", help="API token (default: $EDGEPLANE_TOKEN)")
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="state directory when embedded (default: $EDGEPLANE_HOME or ./.edgeplane)",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")
    ] = False,
) -> None:
    if home is not None:
        # The process commands (init, up, serve) read it from the environment too.
        os.environ["EDGEPLANE_HOME"] = str(home)
    ctx.obj = Globals(project=project, url=url, token=token)


app.command("init")(serve.init)
app.command("up")(serve.up)
app.command("serve")(serve.serve)
app.add_typer(edge.app, name="edge")

app.add_typer(regions.app, name="region")
app.add_typer(datacenters.app, name="datacenter")
app.add_typer(datacenters.app, name="dc", help="Alias of datacenter.")
app.add_typer(servers.app, name="server")
app.add_typer(servers.app, name="servers", help="Alias of server.")
app.add_typer(services.app, name="service")
app.add_typer(operations.lb_app, name="lb")
app.add_typer(scaling.app, name="scale")
app.add_typer(dr.dr_app, name="dr")  # operations' create/list/... and dr's live commands
app.add_typer(cdn.app, name="cdn")
app.add_typer(bots.app, name="bots")
app.add_typer(waf.app, name="waf")
app.add_typer(costs.app, name="cost")
app.command("deploy")(deploy.deploy)
app.add_typer(deploy.app, name="deployment")
app.add_typer(deploy.app, name="deployments", help="Alias of deployment.")
app.add_typer(functions.app, name="function")
app.add_typer(functions.app, name="functions", help="Alias of function.")
app.command("locations")(deploy.locations)
app.command("route")(operations.route)
app.add_typer(access.project_app, name="project")
app.add_typer(access.token_app, name="token")
app.add_typer(service_accounts.app, name="service-account")
app.add_typer(secrets.app, name="secrets")
app.add_typer(users.app, name="user")
app.add_typer(domains.app, name="domain")
app.add_typer(dns.app, name="dns")
app.add_typer(ca.app, name="ca")
app.add_typer(certs.app, name="cert")
app.command("audit")(access.audit)
app.command("logs")(logs.logs)
app.command("whoami")(access.whoami)
app.add_typer(alerts.app, name="alert")
app.add_typer(alerts.app, name="alerts", help="Alias of alert.")
app.add_typer(metrics.app, name="metrics")
app.add_typer(control_plane.app, name="control-plane")
app.add_typer(security_score.app, name="security")
app.command("demo-origin")(demo_origin.demo_origin)
iac.register(app)
backup.register(app)


def main() -> None:
    app()
