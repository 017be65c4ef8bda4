"""``edgeplane domain``: the project's domains and their certificates."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from edgeplane.cli import options as o
from edgeplane.cli import output
from edgeplane.cli import runtime as rt
from edgeplane.cli.output import Column, Doc

app = typer.Typer(help="Domains: names the project is served at, each with a certificate.")

DOMAINS = f"{rt.BASE}/domains"
COLUMNS: list[Column] = [
    ("DOMAIN", "domain"),
    ("STATUS", "status"),
    ("ENV", "environment"),
    ("CERTIFICATE", lambda d: _cert(d.get("certificate"))),
    ("EXPIRES", "certificate.not_after"),
    ("CREATED", "created_at"),
]
DomainArg = Annotated[str, typer.Argument(metavar="DOMAIN", help="a domain name")]


def _cert(cert: Doc | None) -> str:
    return "none" if not cert else f"{cert['issuer']} ({cert['status']})"


def _render_added(doc: Doc) -> None:
    output.details(doc["domain_config"], title="domain")
    if doc.get("verification_required"):
        output.note("verify ownership to have it served")


@app.command("add")
def add(
    ctx: typer.Context,
    domain: DomainArg,
    no_dns: Annotated[
        bool, typer.Option("--no-dns", help="do not configure DNS records automatically")
    ] = False,
    environment: Annotated[
        str | None, typer.Option("--environment", "--env", help="dev, staging or prod")
    ] = None,
    as_json: o.Json = False,
) -> None:
    """Add a domain; it is served by the edge with an internal certificate at once."""
    body = rt.compact(domain=domain, auto_configure=not no_dns, environment=environment)
    rt.request(ctx, as_json, "POST", DOMAINS, body=body, render=_render_added)


@app.command("list")
def list_(
    ctx: typer.Context,
    limit: o.Limit = None,
    cursor: o.Cursor = None,
    all_pages: o.All = False,
    as_json: o.Json = False,
) -> None:
    """List the project's domains."""
    params = rt.compact(limit=limit, cursor=cursor)

    async def fetch(c: Any) -> Any:
        doc = await c.request("GET", DOMAINS, params=params)
        items = list(doc["domains"])
        while all_pages and doc.get("next_cursor"):
            doc = await c.request("GET", DOMAINS, params={**params, "cursor": doc["next_cursor"]})
            items.extend(doc["domains"])
        return {"domains": items, "next_cursor": None if all_pages else doc.get("next_cursor")}

    doc = rt.call(ctx, fetch)
    if as_json:
        output.print_json(doc)
        return
    output.table(doc["domains"], COLUMNS, title="domains")
    if doc.get("next_cursor"):
        output.note(f"more: --cursor {doc['next_cursor']} (or --all)")


@app.command("show")
def show(ctx: typer.Context, domain: DomainArg, as_json: o.Json = False) -> None:
    """Show a domain and its certificate."""
    rt.request(ctx, as_json, "GET", f"{DOMAINS}/{domain}", title="domain")


@app.command("cert")
def cert(ctx: typer.Context, domain: DomainArg, as_json: o.Json = False) -> None:
    """The certificate status of a domain."""
    rt.request(ctx, as_json, "GET", f"{rt.BASE}/ssl/{domain}", title="certificate")


@app.command("delete")
def delete(ctx: typer.Context, domain: DomainArg, as_json: o.Json = False) -> None:
    """Remove a domain (and its certificates); the edge stops serving it."""
    rt.delete(ctx, as_json, f"{DOMAINS}/{domain}", "domain", domain)
