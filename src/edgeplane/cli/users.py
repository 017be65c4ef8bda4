"""``edgeplane user``: the dashboard's logins (a name, a password and roles per project)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from edgeplane.cli import options as o
from edgeplane.cli import output
from edgeplane.cli import runtime as rt
from edgeplane.cli.output import Column, Doc

app = typer.Typer(help="Logins of the dashboard: a name and a password, with roles per project.")

API = "/api/v1"
COLUMNS: list[Column] = [
    ("NAME", "name"),
    ("ROLES", "roles"),
    ("TOKEN", "token_id"),
    ("CREATED", "created_at"),
    ("BY", "created_by"),
]
LoginName = Annotated[str, typer.Argument(metavar="NAME", help="the login's name (a slug)")]


def _password(password_file: Path | None, password_stdin: bool) -> tuple[str, bool]:
    """The password to set, and whether it was generated (then printed once)."""
    if password_file is not None:
        try:
            return password_file.read_text().rstrip("\r\n"), False
        except OSError as exc:
            rt.fail(f"--password-file: cannot read {password_file}: {exc.strerror}", 2)
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n"), False
    if sys.stdin.isatty():
        value = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        return str(value), False
    from edgeplane.services.logins import new_password  # the database layer: not at start

    return new_password(), True


@app.command("create")
def create(
    ctx: typer.Context,
    name: LoginName,
    role: o.Roles = None,
    password_file: Annotated[
        Path | None,
        typer.Option("--password-file", help="read the password from this file"),
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
    as_json: o.Json = False,
) -> None:
    """Create a login. The password (10 characters at least) is asked for on a terminal, read
    from --password-file or --password-stdin, or else generated and printed once."""
    password, generated = _password(password_file, password_stdin)
    body = {"name": name, "password": password, "roles": rt.pairs(role, "--role")}

    def render(doc: Doc) -> None:
        output.details(doc)
        if generated:
            output.blank()
            output.line("password (shown once, store it now):", "bold")
            output.line(password)

    rt.request(ctx, as_json, "POST", f"{API}/logins", body=body, scoped=False, render=render)


@app.command("list")
def list_(ctx: typer.Context, as_json: o.Json = False) -> None:
    """List the logins this token can see."""
    rt.listing(ctx, as_json, f"{API}/logins", COLUMNS, title="logins", scoped=False)


@app.command("delete")
def delete(ctx: typer.Context, name: LoginName, as_json: o.Json = False) -> None:
    """Delete a login: its token is revoked and its sessions end."""
    rt.delete(ctx, as_json, f"{API}/logins/{name}", "login", name, scoped=False)
