"""``edgeplane ca``: the internal CA, whose root clients install to trust internal certificates."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgeplane.cli import output
from edgeplane.cli import runtime as rt

if TYPE_CHECKING:
    from edgeplane.sdk.client import Client

app = typer.Typer(help="The internal CA: the root certificate to trust for internal certificates.")

CA_PEM = f"{rt.BASE}/ca.pem"


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
