"""``edgeplane project``, ``token``, ``audit`` and ``whoami``: who may do what, and who did."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from edgeplane.cli import options as o
from edgeplane.cli import output
from edgeplane.cli import runtime as rt
from edgeplane.cli.output import Column, Doc
from edgeplane.model.access import duration_s

project_app = typer.Typer(help="Projects: one application each, with its own objects.")
token_app = typer.Typer(help="API tokens and their roles per project.")

API = "/api/v1"
PROJECT_COLUMNS: list[Column] = [
    ("ID", "id"),
    ("NAME", "name"),
    ("CREATED", "created_at"),
]
TOKEN_COLUMNS: list[Column] = [
    ("ID", "id"),
    ("NAME", "name"),
    ("PREFIX", "prefix"),
    ("ROLES", "roles"),
    ("SCOPE", "scope"),
    ("SCOPES", "scopes"),
    ("EXPIRES", "expires_at"),
    ("ACCOUNT", "service_account"),
    ("CREATED", "created_at"),
    ("BY", "created_by"),
    ("LAST USED", "last_used_at"),
    ("REVOKED", "revoked_at"),
]
Scopes = Annotated[
    list[str] | None,
    typer.Option(
        "--scope",
        metavar="KIND:ACTION",
        help="limit the token to a kind and action (dns_records:write, *:read, cdn:purge); "
        "repeatable; none: its roles alone",
    ),
]
Expires = Annotated[
    str | None,
    typer.Option(
        "--expires",
        metavar="DURATION|TIME",
        help="when it stops working: a duration from now (90m, 12h, 30d, 2w) or an ISO time",
    ),
]


def expiry(expires: str | None) -> Doc:
    """``--expires`` as the API's ``ttl_s`` or ``expires_at``."""
    if expires is None:
        return {}
    try:
        return {"ttl_s": duration_s(expires)}
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(expires)
    except ValueError:
        raise typer.BadParameter(
            f"{expires!r} is neither a duration (30d) nor an ISO time", param_hint="--expires"
        ) from None
    return {"expires_at": (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()}


AUDIT_COLUMNS: list[Column] = [
    ("ID", "id"),
    ("REV", "revision"),
    ("AT", "at"),
    ("ACTOR", "actor"),
    ("PROJECT", "project"),
    ("ACTION", "action"),
    ("KIND", "kind"),
    ("OBJECT", "object_id"),
]
ProjectId = Annotated[str, typer.Argument(metavar="ID", help="project id")]
TokenId = Annotated[str, typer.Argument(metavar="ID", help="token id (tok-...)")]


# Projects (global: not scoped by --project) -----------------------------------------------


@project_app.command("list")
def project_list(ctx: typer.Context, as_json: o.Json = False) -> None:
    """List the projects this token can see."""
    rt.listing(ctx, as_json, f"{API}/projects", PROJECT_COLUMNS, title="projects", scoped=False)


@project_app.command("create")
def project_create(
    ctx: typer.Context,
    project_id: ProjectId,
    name: o.Name = None,
    quiet: o.Quiet = False,
    as_json: o.Json = False,
) -> None:
    """Create a project."""
    body = rt.compact(id=project_id, name=name)
    rt.request(ctx, as_json, "POST", f"{API}/projects", body=body, scoped=False, quiet=quiet)


@project_app.command("show")
def project_show(ctx: typer.Context, project_id: ProjectId, as_json: o.Json = False) -> None:
    """Show a project."""
    rt.request(ctx, as_json, "GET", f"{API}/projects/{project_id}", scoped=False)


@project_app.command("delete")
def project_delete(ctx: typer.Context, project_id: ProjectId, as_json: o.Json = False) -> None:
    """Delete an empty project."""
    rt.delete(ctx, as_json, f"{API}/projects/{project_id}", "project", project_id, scoped=False)


# Tokens -----------------------------------------------------------------------------------


def render_issued(doc: Doc) -> None:
    output.details(doc, skip=("token",))
    output.blank()
    output.line("token (shown once, store it now):", "bold")
    output.line(doc["token"])


@token_app.command("list")
def token_list(ctx: typer.Context, as_json: o.Json = False) -> None:
    """List tokens (never their secrets)."""
    rt.listing(ctx, as_json, f"{API}/tokens", TOKEN_COLUMNS, title="tokens", scoped=False)


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: o.Name = None,
    role: o.Roles = None,
    edge: Annotated[
        bool, typer.Option("--edge", help="a token for an edge node's agent (no roles)")
    ] = False,
    metrics: Annotated[
        bool,
        typer.Option(
            "--metrics",
            help="a scrape token for Prometheus: /metrics of the control plane and of the "
            "edge nodes given it (no roles)",
        ),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="print only the token (the secret), e.g. T=$(edgeplane ... -q)"
        ),
    ] = False,
    scopes: Scopes = None,
    expires: Expires = None,
    as_json: o.Json = False,
) -> None:
    """Issue a token; its secret is printed once."""
    if edge and metrics:
        rt.fail("--edge and --metrics: choose one")
    roles = rt.pairs(role, "--role") or None  # an edge token has none: leave them out
    scope = "edge" if edge else "metrics" if metrics else None
    body = rt.compact(name=name, roles=roles, scope=scope, scopes=scopes, **expiry(expires))
    rt.request(
        ctx,
        as_json,
        "POST",
        f"{API}/tokens",
        body=body,
        scoped=False,
        render=render_issued,
        quiet=quiet,
        key="token",
    )


@token_app.command("rotate")
def token_rotate(
    ctx: typer.Context,
    token_id: TokenId,
    grace: Annotated[
        str | None,
        typer.Option(
            "--grace",
            metavar="DURATION",
            help="how long the old secret keeps working (e.g. 10m; default: it stops now)",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print only the new secret")] = False,
    as_json: o.Json = False,
) -> None:
    """A new secret for the same token (id, roles, scopes, expiry); printed once."""
    try:
        grace_s = duration_s(grace) if grace is not None else 0
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--grace") from None
    rt.request(
        ctx,
        as_json,
        "POST",
        f"{API}/tokens/{token_id}/rotate",
        body={"grace_s": grace_s},
        scoped=False,
        render=render_issued,
        quiet=quiet,
        key="token",
    )


@token_app.command("revoke")
def token_revoke(ctx: typer.Context, token_id: TokenId, as_json: o.Json = False) -> None:
    """Revoke a token."""
    rt.request(ctx, as_json, "DELETE", f"{API}/tokens/{token_id}", scoped=False)


# Audit and identity -----------------------------------------------------------------------


def audit(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option("--kind", help="e.g. server, data_center")] = None,
    object_id: Annotated[str | None, typer.Option("--object", help="an object's id")] = None,
    include_global: Annotated[
        bool, typer.Option("--global", help="also global objects (regions, projects, tokens)")
    ] = False,
    limit: o.Limit = None,
    cursor: o.Cursor = None,
    all_pages: o.All = False,
    as_json: o.Json = False,
) -> None:
    """The project's audit trail, newest first."""
    params = rt.compact(
        kind=kind,
        object_id=object_id,
        include_global=include_global or None,
        limit=limit,
        cursor=cursor,
    )
    rt.listing(
        ctx,
        as_json,
        f"{API}/audit",
        AUDIT_COLUMNS,
        title="events",
        params=params,
        all_pages=all_pages,
    )


def whoami(ctx: typer.Context, as_json: o.Json = False) -> None:
    """Who the CLI acts as, and its roles."""
    rt.request(ctx, as_json, "GET", f"{API}/whoami", scoped=False)
