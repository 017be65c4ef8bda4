"""``edgeplane service-account``: non-human principals that own tokens (platform admins)."""

from __future__ import annotations

from typing import Annotated

import typer

from edgeplane.cli import options as o
from edgeplane.cli import runtime as rt
from edgeplane.cli.access import Expires, Scopes, expiry, render_issued
from edgeplane.cli.output import Column

app = typer.Typer(help="Service accounts: principals of CI jobs and bots, owning tokens.")

API = "/api/v1/service-accounts"
COLUMNS: list[Column] = [
    ("ID", "id"),
    ("ROLES", "roles"),
    ("SCOPES", "scopes"),
    ("TOKENS", "tokens"),
    ("DISABLED", "disabled_at"),
    ("CREATED", "created_at"),
    ("BY", "created_by"),
]
AccountId = Annotated[str, typer.Argument(metavar="ID", help="service account id")]


@app.command("list")
def account_list(ctx: typer.Context, as_json: o.Json = False) -> None:
    """List the service accounts."""
    rt.listing(ctx, as_json, API, COLUMNS, title="service accounts", scoped=False)


@app.command("create")
def account_create(
    ctx: typer.Context,
    account_id: AccountId,
    role: o.Roles = None,
    scopes: Scopes = None,
    description: Annotated[str | None, typer.Option("--description", help="what it is for")] = None,
    quiet: o.Quiet = False,
    as_json: o.Json = False,
) -> None:
    """Create a service account with roles (and scopes) that bound its tokens."""
    body = rt.compact(
        id=account_id,
        roles=rt.pairs(role, "--role") or None,
        scopes=scopes,
        description=description,
    )
    rt.request(ctx, as_json, "POST", API, body=body, scoped=False, quiet=quiet)


@app.command("show")
def account_show(ctx: typer.Context, account_id: AccountId, as_json: o.Json = False) -> None:
    """Show a service account."""
    rt.request(ctx, as_json, "GET", f"{API}/{account_id}", scoped=False)


@app.command("disable")
def account_disable(ctx: typer.Context, account_id: AccountId, as_json: o.Json = False) -> None:
    """Disable it: every token it owns stops working at once."""
    rt.request(ctx, as_json, "POST", f"{API}/{account_id}/disable", scoped=False)


@app.command("enable")
def account_enable(ctx: typer.Context, account_id: AccountId, as_json: o.Json = False) -> None:
    """Enable it again."""
    rt.request(ctx, as_json, "POST", f"{API}/{account_id}/enable", scoped=False)


@app.command("token")
def account_token(
    ctx: typer.Context,
    account_id: AccountId,
    name: Annotated[str, typer.Option("--name", help="the token's name")] = "token",
    scopes: Scopes = None,
    expires: Expires = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print only the secret")] = False,
    as_json: o.Json = False,
) -> None:
    """Issue a token owned by the account; its secret is printed once."""
    body = rt.compact(name=name, scopes=scopes, **expiry(expires))
    rt.request(
        ctx,
        as_json,
        "POST",
        f"{API}/{account_id}/tokens",
        body=body,
        scoped=False,
        render=render_issued,
        quiet=quiet,
        key="token",
    )
