"""``edgeplane domain``: the project's domains and their certificates."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from edgeplane.cli import options as o
from edgeplane.cli import output
from edgeplane.cli import runtime as rt
from edgeplane.cli.output import Column, Doc

app = typer.Typer(help="Domains: names the project is served at, their ownership and zones.")

DOMAINS = f"{rt.BASE}/domains"
COLUMNS: list[Column] = [
    ("DOMAIN", "display_name"),
    ("STATUS", "status"),
    ("VERIFICATION", "verification.state"),
    ("LOCKED", "locked"),
    ("DNSSEC", "dnssec"),
    ("ENV", "environment"),
    ("CERTIFICATE", lambda d: _cert(d.get("certificate"))),
    ("EXPIRES", "certificate.not_after"),
    ("CREATED", "created_at"),
]
DomainArg = Annotated[str, typer.Argument(metavar="DOMAIN", help="a domain name")]


def _cert(cert: Doc | None) -> str:
    return "none" if not cert else f"{cert['issuer']} ({cert['status']})"


def _render_added(doc: Doc) -> None:
    config = doc["domain_config"]
    output.details(config, title="domain", skip=("verification",))
    if doc.get("verification_required"):
        _how_to_verify(config)


def _how_to_verify(config: Doc) -> None:
    v = config["verification"]
    record = v["dns_record"]
    output.note("verify ownership to have it served, by one of:")
    output.line(f"  dns:   publish TXT {record['fqdn']} {record['values'][0]}")
    output.line(f"         then: edgeplane domain verify {config['domain']}")
    output.line(f"  file:  serve {v['file_content']!r} at {v['file_url']}")
    output.line(f"         then: edgeplane domain verify {config['domain']} --method file")
    output.line(f"  email: edgeplane domain verify {config['domain']} --method email")
    output.line(f"         (a code goes to {', '.join(v['email_addresses'][:2])}, ...), then")
    output.line(f"         edgeplane domain verify {config['domain']} --method email --code CODE")


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
    dnssec: Annotated[bool, typer.Option("--dnssec", help="sign the zone")] = False,
    lock: Annotated[bool, typer.Option("--lock", help="refuse deletion until unlocked")] = False,
    quiet: o.Quiet = False,
    as_json: o.Json = False,
) -> None:
    """Add a domain and host its zone; once its ownership is verified the edge serves it
    (names under .test, .localhost and other reserved names are verified at once)."""
    body = rt.compact(
        domain=domain,
        auto_configure=not no_dns,
        environment=environment,
        dnssec=dnssec or None,
        locked=lock or None,
    )
    rt.request(
        ctx,
        as_json,
        "POST",
        DOMAINS,
        body=body,
        render=_render_added,
        quiet=quiet,
        key="domain_config.domain",
    )


def _render_verified(doc: Doc) -> None:
    if doc["verified"]:
        output.line(f"verified ({doc['method']}): {doc['reason']}", "green")
        return
    output.line(f"not verified ({doc['method']}): {doc['reason']}", "red")
    if doc["method"] == "dns":
        record = doc["dns_records"][0]
        output.note(f"publish TXT {record['fqdn']} {record['values'][0]} and try again")


@app.command("verify")
def verify(
    ctx: typer.Context,
    domain: DomainArg,
    method: Annotated[
        str, typer.Option("--method", help="dns (TXT record), file (HTTP) or email (a code)")
    ] = "dns",
    code: Annotated[
        str | None, typer.Option("--code", help="the code sent by email (--method email)")
    ] = None,
    as_json: o.Json = False,
) -> None:
    """Prove ownership of a domain; exits 1 while it is not verified."""
    body = rt.compact(method=method, code=code)
    doc = rt.call(
        ctx, lambda c: c.request("POST", f"{DOMAINS}/{domain}/verify", json=body, params={})
    )
    rt.emit(doc, as_json, _render_verified)
    if not doc["verified"] and not (method == "email" and code is None):
        raise typer.Exit(1)


def _render_status(doc: Doc) -> None:
    output.details(
        {
            "domain": doc["display_name"],
            "status": doc["status"],
            "verification": doc["verification"]["state"],
            "verified by": doc["verification"]["method"],
            "last check": doc["verification"]["last_result"],
            "nameservers": ", ".join(doc["nameservers"]),
            "delegated to": ", ".join(doc["delegated_to"] or []) or "-",
            "points to edgeplane": doc["points_to_edgeplane"],
            "zone serial": doc["serial"],
            "dnssec": doc["dnssec"]["enabled"],
            "locked": doc["locked"],
            "certificate": doc["certificate_status"],
        },
        title=f"domain {doc['domain']}",
    )
    output.table(
        doc["nodes"],
        [
            ("NODE", "name"),
            ("LOCATION", output.place("region")),
            ("LIVE", "live"),
            ("SERIAL", "serial"),
            ("IN SYNC", "in_sync"),
            ("ERROR", "error"),
        ],
        title="zone on the edge nodes",
    )
    for ds in doc["dnssec"]["ds"]:
        output.line(f"DS for the registrar: {ds}")


@app.command("status")
def status(
    ctx: typer.Context,
    domain: DomainArg,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="ask the world's DNS now where the domain points")
    ] = False,
    as_json: o.Json = False,
) -> None:
    """Verification, where the domain is delegated, the zone serial on each node, DNSSEC."""
    params = {"refresh": "true"} if refresh else None
    rt.request(
        ctx, as_json, "GET", f"{DOMAINS}/{domain}/status", params=params, render=_render_status
    )


@app.command("update")
def update(
    ctx: typer.Context,
    domain: DomainArg,
    lock: Annotated[
        bool | None, typer.Option("--lock/--unlock", help="refuse (or allow) deletion")
    ] = None,
    dnssec: Annotated[
        bool | None, typer.Option("--dnssec/--no-dnssec", help="sign the zone, or stop")
    ] = None,
    as_json: o.Json = False,
) -> None:
    """Lock a domain against deletion, or switch DNSSEC."""
    rt.update(
        ctx, as_json, f"{DOMAINS}/{domain}", rt.compact(locked=lock, dnssec=dnssec), title="domain"
    )


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
