"""The ``edgeplane`` command: the process commands and the CLI over the REST API.

Every noun command talks to the control plane like the SDK does: remote when a URL is set
(``--url`` / ``EDGEPLANE_URL``, with ``--token`` / ``EDGEPLANE_TOKEN``), else embedded on the
state under ``--home`` / ``EDGEPLANE_HOME``. Tables for people, ``--json`` for scripts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperGroup

from edgeplane import __version__
from edgeplane.cli import (
    access,
    ca,
    cdn,
    certs,
    datacenters,
    demo_origin,
    deploy,
    dns,
    domains,
    edge,
    operations,
    regions,
    serve,
    servers,
    services,
)
from edgeplane.cli.runtime import Globals

if TYPE_CHECKING:
    from typer import _click

SERVERS_GROUP = "servers"


class RootGroup(TyperGroup):
    """``edgeplane server`` runs the control plane, while ``edgeplane server VERB`` (VERB one
    of the inventory commands: list, create, show, ...) is ``edgeplane servers VERB``."""

    def resolve_command(
        self, ctx: _click.Context, args: list[str]
    ) -> tuple[str | None, _click.Command | None, list[str]]:
        if len(args) > 1 and args[0] == "server":
            group = self.commands.get(SERVERS_GROUP)
            if isinstance(group, TyperGroup) and args[1] in group.commands:
                return "server", group, args[1:]
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=RootGroup,
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
        # The process commands (init, up, server) read it from the environment too.
        os.environ["EDGEPLANE_HOME"] = str(home)
    ctx.obj = Globals(project=project, url=url, token=token)


app.command("init")(serve.init)
app.command("up")(serve.up)
app.command("server")(serve.server)
app.add_typer(edge.app, name="edge")

app.add_typer(regions.app, name="region")
app.add_typer(datacenters.app, name="datacenter")
app.add_typer(datacenters.app, name="dc", help="Alias of datacenter.")
app.add_typer(servers.app, name=SERVERS_GROUP)
app.add_typer(services.app, name="service")
app.add_typer(operations.lb_app, name="lb")
app.add_typer(operations.dr_app, name="dr")
app.add_typer(cdn.app, name="cdn")
app.command("deploy")(deploy.deploy)
app.add_typer(deploy.app, name="deployment")
app.add_typer(deploy.app, name="deployments", help="Alias of deployment.")
app.command("locations")(deploy.locations)
app.command("route")(operations.route)
app.add_typer(access.project_app, name="project")
app.add_typer(access.token_app, name="token")
app.add_typer(domains.app, name="domain")
app.add_typer(dns.app, name="dns")
app.add_typer(ca.app, name="ca")
app.add_typer(certs.app, name="cert")
app.command("audit")(access.audit)
app.command("whoami")(access.whoami)
app.command("demo-origin")(demo_origin.demo_origin)


def main() -> None:
    app()
