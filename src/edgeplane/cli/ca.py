"""``edgeplane ca``: the internal CA, whose root clients install to trust internal certificates."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgeplane.cli import options as o
from edgeplane.cli import output
from edgeplane.cli import runtime as rt

if TYPE_CHECKING:
    from edgeplane.sdk.client import Client

app = typer.Typer(help="The internal CA: the root certificate to trust for internal certificates.")

CA_PEM = f"{rt.BASE}/ca.pem"
ORIGIN_CLIENT = f"{rt.BASE}/ca/origin-client"


async def fetch_root(c: Client) -> str:
    """``GET /ca.pem``: a PEM document, not JSON."""
    from edgeplane.errors import RemoteError

    pem = await c.request_text("GET", CA_PEM)
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise RemoteError("the control plane did not answer with a certificate", status=502)
    return pem


@app.command("export")
def export(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="write the PEM to this file instead of stdout"),
    ] = None,
) -> None:
    """Print the internal CA's root certificate (PEM), the one clients install to trust the
    certificates issued for local and private names (it is created on first use)."""
    pem = rt.call(ctx, fetch_root, scoped=False)
    if out is None:
        sys.stdout.write(pem)
        sys.stdout.flush()
        return
    try:
        out.write_text(pem)
    except OSError as exc:
        rt.fail(f"cannot write {out}: {exc.strerror or exc}")
    output.note(f"wrote the internal root CA to {out}")


def render_origin_client(doc: dict[str, object]) -> None:
    output.details(doc, title="origin client certificate", skip=("cert_pem", "ca_pem"))
    output.note(
        "an origin accepts the edge with: a client certificate chaining to the internal root "
        f"(edgeplane ca export) whose common name is {doc['common_name']!r}"
    )


@app.command("origin-client")
def origin_client(
    ctx: typer.Context,
    renew: Annotated[
        bool, typer.Option("--renew", help="issue a new certificate and key now")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="also write the certificate chain (PEM, no key) here"),
    ] = None,
    as_json: o.Json = False,
) -> None:
    """The client certificate the edge presents to the project's private origins (issued on
    first use; renewed by the control plane before it expires): its subject, fingerprint and
    dates, and what an origin checks to accept it."""
    method, path = ("POST", f"{ORIGIN_CLIENT}/renew") if renew else ("GET", ORIGIN_CLIENT)
    doc = rt.call(ctx, lambda c: c.request(method, path))
    if out is not None:
        try:
            out.write_text(str(doc["cert_pem"]))
        except OSError as exc:
            rt.fail(f"cannot write {out}: {exc.strerror or exc}")
    rt.emit(doc, as_json, render_origin_client)
