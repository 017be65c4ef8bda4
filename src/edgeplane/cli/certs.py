"""``edgeplane cert``: certificates of verified domains (ACME, internal CA, uploads)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from edgeplane.cli import options as o
from edgeplane.cli import output
from edgeplane.cli import runtime as rt
from edgeplane.cli.output import Doc

app = typer.Typer(help="Certificates: ACME (Let's Encrypt or any CA), internal CA, uploads.")

SSL = f"{rt.BASE}/ssl"
DomainArg = Annotated[str, typer.Argument(metavar="DOMAIN", help="a verified domain")]


def _render_issued(doc: Doc) -> None:
    cert = doc["certificate"]
    output.line(
        f"{cert['issuer']} certificate {cert['id']} for {', '.join(cert['names'])}, "
        f"valid until {cert['not_after']}",
        "green",
    )


def _read(path: Path, option: str) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        rt.fail(f"{option} {path}: {exc.strerror or exc}", 2)


@app.command("issue")
def issue(
    ctx: typer.Context,
    domain: DomainArg,
    cert_type: Annotated[
        str, typer.Option("--type", help="lets_encrypt (the ACME CA) or internal")
    ] = "lets_encrypt",
    challenge: Annotated[
        str | None, typer.Option("--challenge", help="http-01 (default) or dns-01")
    ] = None,
    wildcard: Annotated[bool, typer.Option("--wildcard", help="also *.DOMAIN (DNS-01)")] = False,
    no_www: Annotated[bool, typer.Option("--no-www", help="leave www.DOMAIN out")] = False,
    rsa: Annotated[
        bool, typer.Option("--rsa", help="an RSA 2048 key (default ECDSA P-256)")
    ] = False,
    no_auto_renew: Annotated[bool, typer.Option("--no-auto-renew")] = False,
    as_json: o.Json = False,
) -> None:
    """Provision a certificate; an ACME order shows its progress as it runs."""
    body = rt.compact(
        type=cert_type,
        challenge=challenge,
        wildcard=wildcard or None,
        include_www=False if no_www else None,
        key_type="rsa2048" if rsa else None,
        auto_renew=False if no_auto_renew else None,
    )
    path = f"{SSL}/{domain}"

    async def order(c: Any) -> Any:
        if cert_type != "lets_encrypt":
            return await c.request("POST", path, json=body)
        started = time.monotonic()
        doc = await c.request("POST", path, json=body, params={"wait": "false"})
        shown = 0
        while True:
            events = doc.get("events", [])
            if not as_json:
                for event in events[shown:]:
                    output.stderr.print(f"  {time.monotonic() - started:6.2f}s  {event['message']}")
            shown = len(events)
            if doc["status"] == "valid":
                return doc["result"]
            if doc["status"] == "failed":
                rt.fail(doc.get("error") or "the order failed", 3)
            await asyncio.sleep(0.1)
            doc = await c.request("GET", f"{path}/orders/{doc['id']}")

    rt.emit(rt.call(ctx, order), as_json, _render_issued)


@app.command("upload")
def upload(
    ctx: typer.Context,
    domain: DomainArg,
    cert: Annotated[Path, typer.Option("--cert", help="PEM chain, leaf first")],
    key: Annotated[Path, typer.Option("--key", help="PEM private key (unencrypted)")],
    as_json: o.Json = False,
) -> None:
    """Upload a certificate and its key (each flaw is named)."""
    body = {"cert_data": _read(cert, "--cert"), "key_data": _read(key, "--key")}
    rt.request(ctx, as_json, "POST", f"{SSL}/{domain}/upload", body=body, render=_render_issued)


@app.command("renew")
def renew(ctx: typer.Context, domain: DomainArg, as_json: o.Json = False) -> None:
    """Renew now (same CA, names and key type)."""
    rt.request(ctx, as_json, "POST", f"{SSL}/{domain}/renew", render=_render_issued)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    domain: DomainArg,
    certificate_id: Annotated[
        str | None, typer.Option("--id", help="the certificate (default: the one served)")
    ] = None,
    as_json: o.Json = False,
) -> None:
    """Stop serving a certificate; the edge falls back to the previous valid version."""
    body = rt.compact(certificate_id=certificate_id)
    rt.request(ctx, as_json, "POST", f"{SSL}/{domain}/revoke", body=body, title="revoked")


def _ocsp_line(staple: Doc | None) -> str:
    if not staple:
        return "not fetched yet"
    if not staple.get("ocsp_url"):
        return "none (the CA offers no OCSP)"
    if staple.get("stapled"):
        line = f"{staple.get('status')} until {staple.get('next_update')}"
        if staple.get("last_error"):
            line += f" (kept: the last fetch failed: {staple['last_error']})"
        return line
    return f"no staple ({staple.get('last_error') or 'not fetched yet'})"


def _render_status(doc: Doc) -> None:
    renewal = doc.get("renewal") or {}
    output.details(
        {
            "domain": doc["domain"],
            "status": doc["status"],
            "served": (doc.get("certificate") or {}).get("id"),
            "issuer": (doc.get("certificate") or {}).get("issuer"),
            "expires": doc.get("expires_at"),
            "renewal due": renewal.get("due_at"),
            "failed attempts": renewal.get("attempts"),
            "next attempt": renewal.get("next_attempt_at"),
            "last error": renewal.get("last_error"),
            "OCSP staple": _ocsp_line(doc.get("ocsp")),
        },
        title="certificate",
    )
    output.table(
        doc["certificates"],
        [
            ("ID", "id"),
            ("ISSUER", "issuer"),
            ("STATUS", "status"),
            ("NAMES", lambda c: ", ".join(c["names"])),
            ("NOT AFTER", "not_after"),
        ],
        title="versions",
    )


@app.command("status")
def status(ctx: typer.Context, domain: DomainArg, as_json: o.Json = False) -> None:
    """The certificate served, its renewal, every version kept."""
    rt.request(ctx, as_json, "GET", f"{SSL}/{domain}", render=_render_status)
