"""``edgeplane edge nodes`` and ``edgeplane edge node ID``: nodes and their propagation."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Annotated

import typer

from edgeplane.cli import options as o
from edgeplane.cli import output
from edgeplane.cli import runtime as rt
from edgeplane.cli.output import Column, Doc

if TYPE_CHECKING:
    from edgeplane.sdk.client import Client

NODES = "/api/v1/edge/nodes"
COLUMNS: list[Column] = [
    ("ID", "id"),
    ("NAME", "name"),
    ("LOCATION", output.place("region")),
    ("STATUS", "status"),
    ("LIVE", "live"),
    ("REV", lambda n: f"{n['applied_revision']}/{n['desired_revision']}"),
    ("IN SYNC", "in_sync"),
    ("APPLY ms", lambda n: _ms(n["apply_ms"])),
    ("PROPAGATION ms", lambda n: _ms(n["propagation_ms"])),
    ("LAST SEEN", "last_seen_at"),
    ("PROTOCOL", lambda n: str(n.get("protocol", 1))),  # its edge protocol version
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


async def wait_applied(c: Client, revision: int, timeout: float, *, show: bool) -> list[str]:
    """Wait until every online edge node has applied ``revision`` (or failed to); a note on
    stderr as each does. Returns the problems: nodes that failed, or had not applied it in
    time."""
    deadline = time.monotonic() + timeout
    noted: set[str] = set()
    while True:
        nodes: list[Doc] = await c.request("GET", NODES)
        online = [n for n in nodes if n["status"] == "online"]
        failed, behind = [], []
        for n in online:
            if (n["applied_revision"] or 0) >= revision:
                if show and n["id"] not in noted:
                    noted.add(n["id"])
                    output.note(
                        f"{n['name']}: applied revision {n['applied_revision']} (apply "
                        f"{_ms(n['apply_ms'])} ms, propagation {_ms(n['propagation_ms'])} ms)"
                    )
            elif (n["failed_revision"] or 0) >= revision:
                failed.append(f"{n['name']}: revision {revision} failed: {n['last_error']}")
            else:
                behind.append(f"{n['name']} at revision {n['applied_revision']} of {revision}")
        if show and not online:
            output.note("no edge node online: nothing to wait for")
        if failed or not behind:
            return failed
        if time.monotonic() >= deadline:
            return [f"{b} after {timeout:g} s" for b in behind]
        await asyncio.sleep(0.1)
