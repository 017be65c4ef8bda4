"""``edgeplane secrets``: the keyring of secrets at rest (status, rotation with no downtime)
and audited reads of secrets (a certificate's private key)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from edgeplane.cli import options as o
from edgeplane.cli import output
from edgeplane.cli import runtime as rt
from edgeplane.cli.output import Doc

app = typer.Typer(help="Secrets at rest: the keyring that encrypts them, and its rotation.")

API = "/api/v1/secrets"
KeyId = Annotated[str, typer.Argument(metavar="KEY_ID", help="a key's id (see status)")]
Wait = Annotated[
    float,
    typer.Option("--wait", metavar="SECONDS", help="wait this long for the re-encryption"),
]


def render_status(doc: Doc) -> None:
    output.line(f"keyring: {doc['source']}; primary key {doc['primary']}", "bold")
    output.table(
        doc["keys"],
        [("KEY", "id"), ("PRIMARY", "primary"), ("DERIVES", "derive"), ("VALUES", "values")],
    )
    output.line(f"{doc['values']} stored values; {doc['unreadable']} under no key of the keyring")
    job = doc.get("reencryption")
    if job:
        output.line(
            f"re-encryption {job['id']}: {job['status']} (to key {job['target_key']}, "
            f"{job['reencrypted']} moved, {job['unchanged']} already there)"
            + (f": {job['message']}" if job.get("message") else "")
        )


def _call(ctx: typer.Context, method: str, path: str) -> Any:
    return rt.call(ctx, lambda c: c.request(method, path), scoped=False)


@app.command("status")
def status(ctx: typer.Context, as_json: o.Json = False) -> None:
    """The keyring (key ids, never keys) and how many stored values each key encrypts."""
    rt.request(ctx, as_json, "GET", f"{API}/status", scoped=False, render=render_status)


@app.command("add-key")
def add_key(ctx: typer.Context, as_json: o.Json = False) -> None:
    """Step 1: a new key, second in the keyring: every process decrypts with it."""
    rt.request(ctx, as_json, "POST", f"{API}/keys", scoped=False, key="id")


@app.command("promote-key")
def promote_key(ctx: typer.Context, key_id: KeyId, as_json: o.Json = False) -> None:
    """Step 2: the key encrypts new values from now on."""
    rt.request(
        ctx, as_json, "POST", f"{API}/keys/{key_id}/primary", scoped=False, render=render_status
    )


@app.command("reencrypt")
def reencrypt(ctx: typer.Context, as_json: o.Json = False) -> None:
    """Step 3: re-encrypt every stored value under the primary key (in the background)."""
    rt.request(ctx, as_json, "POST", f"{API}/reencrypt", scoped=False)


@app.command("retire-key")
def retire_key(ctx: typer.Context, key_id: KeyId, as_json: o.Json = False) -> None:
    """Step 4: remove a key that no stored value uses any more."""
    rt.request(ctx, as_json, "DELETE", f"{API}/keys/{key_id}", scoped=False, render=render_status)


def _wait_done(ctx: typer.Context, job_id: str, wait: float) -> Doc:
    deadline = time.monotonic() + wait
    while True:
        doc: Doc = _call(ctx, "GET", f"{API}/status")
        job = doc.get("reencryption") or {}
        if job.get("id") == job_id and job.get("status") in ("done", "failed"):
            return doc
        if time.monotonic() > deadline:
            rt.fail(
                f"re-encryption {job_id} is still {job.get('status')} after {wait:.0f} s; "
                "follow it with: edgeplane secrets status",
                code=2,
            )
        time.sleep(0.5)


@app.command("rotate-key")
def rotate_key(
    ctx: typer.Context,
    retire: Annotated[
        bool, typer.Option("--retire/--keep-old", help="retire the old key once nothing uses it")
    ] = True,
    wait: Wait = 600.0,
    as_json: o.Json = False,
) -> None:
    """Rotate the key of secrets at rest with no downtime: add a key, make it primary,
    re-encrypt every stored value, then retire the old key (steps 1-4)."""
    before: Doc = _call(ctx, "GET", f"{API}/status")
    old = before["primary"]
    added: Doc = _call(ctx, "POST", f"{API}/keys")
    new = added["id"]
    if not as_json:
        output.line(f"added key {new} (secondary)")
    _call(ctx, "POST", f"{API}/keys/{new}/primary")
    if not as_json:
        output.line(f"key {new} is primary; re-encrypting the stored values...")
    doc: Doc = {}
    for _ in range(3):  # a value written under the old key meanwhile: once more
        job: Doc = _call(ctx, "POST", f"{API}/reencrypt")
        doc = _wait_done(ctx, job["id"], wait)
        if doc["reencryption"]["status"] == "failed":
            rt.fail(f"re-encryption failed: {doc['reencryption']['message']}", code=3)
        left = next((k["values"] for k in doc["keys"] if k["id"] == old), 0)
        if not retire or left == 0:
            break
    if retire:
        doc = _call(ctx, "DELETE", f"{API}/keys/{old}")
    rt.emit(doc, as_json, render_status)


@app.command("cert-key")
def cert_key(
    ctx: typer.Context,
    domain: Annotated[str, typer.Argument(help="the domain")],
    certificate_id: Annotated[
        str | None, typer.Option("--certificate", help="a kept version (default: served)")
    ] = None,
    as_json: o.Json = False,
) -> None:
    """Print a certificate's private key (PEM); the read is audited."""
    params = rt.compact(certificate_id=certificate_id)
    doc: Doc = rt.call(
        ctx,
        lambda c: c.request(
            "GET", f"/api/v1/infrastructure/ssl/{domain}/private-key", params=params
        ),
    )
    rt.emit(doc, as_json, lambda d: typer.echo(d["key_pem"], nl=False))
