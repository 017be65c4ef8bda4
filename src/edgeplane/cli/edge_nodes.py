"""``edgeplane edge nodes`` and ``edgeplane edge node ID``: nodes and their propagation."""

from __future__ import annotations

from typing import Annotated

import typer

from edgeplane.cli import options as o
from edgeplane.cli import runtime as rt
from edgeplane.cli.output import Column

NODES = "/api/v1/edge/nodes"
COLUMNS: list[Column] = [
    ("ID", "id"),
    ("NAME", "name"),
    ("REGION", "region"),
    ("STATUS", "status"),
    ("LIVE", "live"),
    ("REV", lambda n: f"{n['applied_revision']}/{n['desired_revision']}"),
    ("IN SYNC", "in_sync"),
    ("APPLY ms", lambda n: _ms(n["apply_ms"])),
    ("PROPAGATION ms", lambda n: _ms(n["propagation_ms"])),
    ("LAST SEEN", "last_seen_at"),
    ("ERROR", "last_error"),
]


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def nodes(ctx: typer.Context, as_json: o.Json = False) -> None:
    """Edge nodes: applied / desired revision, in sync, apply and propagation times."""
    rt.listing(ctx, as_json, NODES, COLUMNS, title="edge nodes", scoped=False)


def node(
    ctx: typer.Context,
    node_id: Annotated[str, typer.Argument(metavar="ID", help="node id (node-...)")],
    as_json: o.Json = False,
) -> None:
    """One edge node in detail."""
    rt.request(ctx, as_json, "GET", f"{NODES}/{node_id}", title="edge node", scoped=False)


def register(app: typer.Typer) -> None:
    """Add ``nodes`` and ``node`` to the ``edgeplane edge`` group."""
    app.command("nodes")(nodes)
    app.command("node")(node)
