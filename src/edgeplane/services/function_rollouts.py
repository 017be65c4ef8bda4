"""Rolling a function version out, as ``edgeplane.services.rollouts`` rolls an edge deployment
out, with the same pure ``rollouts.decide``.

A version is placed in the regions of the project's current edge deployment, else every region
with a live node; its canary is the first live function-capable node of those regions (by
region, then name). Only function-capable nodes (``snapshot.functions.runs_functions``) take
part: they get the version (``snapshot.functions.node_functions``) and report it in their
heartbeats (``Heartbeat.functions``, stored as ``EdgeNodeRow.function_reports``). A good
canary makes the version ``rolling``; when every live capable node of its regions serves it,
it is ``active`` and the function's previous active version ``superseded``. A failed load or
check, a canary gone, or a phase past its timeout makes it ``failed``: it is then named
nowhere and nodes keep the active version.

``advance`` runs when a node's function reports change (``edge_nodes.heartbeat``) and every
second from the control plane's runner (``jobs.advance_function_rollouts``: timeouts, nodes
going offline).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select

from edgeplane.errors import Conflict
from edgeplane.model.functions import FunctionRegionProgress
from edgeplane.services import edge_deployments, liveness, rollouts
from edgeplane.services.rollouts import NodeView, Transition
from edgeplane.settings import Settings
from edgeplane.snapshot.functions import runs_functions
from edgeplane.store.db import Tx
from edgeplane.store.function_tables import FunctionVersionRow
from edgeplane.store.tables import EdgeNodeRow

KIND = "function"


def report_key(project: str, name: str) -> str:
    """The key of a function in ``Heartbeat.functions``."""
    return f"{project}/{name}"


def _as_deployment_report(report: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """A function report in the shape ``rollouts.serves`` reads (``deployment``: the id)."""
    if not report:
        return None
    state = report.get("state")
    return {
        "deployment": report.get("version_id"),
        "state": state if state in ("active", "failed") else "fetching",
        "error": report.get("error"),
    }


def node_views(tx: Tx, project: str, name: str) -> list[NodeView]:
    """The function-capable nodes, with what each said of the function."""
    live = liveness.live_ids(tx)
    key = report_key(project, name)
    return [
        NodeView(
            id=n.id,
            name=n.name,
            region=n.region,
            live=n.id in live,
            report=_as_deployment_report((n.function_reports or {}).get(key)),
        )
        for n in tx.session.scalars(select(EdgeNodeRow).order_by(EdgeNodeRow.name))
        if runs_functions(n.protocol, n.functions)
    ]


# Placing ------------------------------------------------------------------------------------


def placement(tx: Tx) -> tuple[list[str], str]:
    """(regions, canary node) of a new version of one of the project's functions; 409 when
    no live edge node can run functions there."""
    live = liveness.live_ids(tx)
    nodes = [
        n
        for n in tx.session.scalars(select(EdgeNodeRow).order_by(EdgeNodeRow.name))
        if n.id in live
    ]
    current = edge_deployments.current_row(tx)
    if current is not None and current.regions:
        regions = sorted(current.regions)
    else:
        regions = sorted({n.region for n in nodes})
    capable = [n for n in nodes if n.region in regions and runs_functions(n.protocol, n.functions)]
    if not capable:
        raise Conflict(
            "no live edge node can run functions"
            + (f" in {', '.join(regions)}" if regions else "")
            + " (a node runs them when its agent found the functions runtime)"
        )
    capable.sort(key=lambda n: (regions.index(n.region), n.name))
    return regions, capable[0].id


def progress(row: FunctionVersionRow, nodes: list[NodeView]) -> list[FunctionRegionProgress]:
    """Per region of the version: its live capable nodes, those serving it, its state."""
    out: list[FunctionRegionProgress] = []
    for region in sorted(row.regions or ()):
        here = [n for n in nodes if n.region == region and n.live]
        serving, failed, state = rollouts.region_state(row.status, row.id, row.canary_node, here)
        out.append(
            FunctionRegionProgress(
                region=region, nodes=len(here), serving=serving, failed=failed, state=state
            )
        )
    return out


# Moving on ----------------------------------------------------------------------------------


def set_status(
    tx: Tx, row: FunctionVersionRow, status: str, now: datetime, error: str | None = None
) -> None:
    rollouts.record_status(
        tx, row, status, now, error, kind=KIND, key=row.name, label={"version": row.version}
    )


def apply(tx: Tx, row: FunctionVersionRow, change: Transition, now: datetime) -> None:
    set_status(tx, row, change.status, now, change.error)
    if change.status != "active":
        return
    older = tx.session.scalars(
        select(FunctionVersionRow).where(
            FunctionVersionRow.project_id == row.project_id,
            FunctionVersionRow.name == row.name,
            FunctionVersionRow.status == "active",
            FunctionVersionRow.id != row.id,
        )
    )
    for old in older:
        set_status(tx, old, "superseded", now)


def in_progress(
    tx: Tx, project: str | None = None, name: str | None = None
) -> list[FunctionVersionRow]:
    query = select(FunctionVersionRow).where(FunctionVersionRow.status.in_(("canary", "rolling")))
    if project is not None:
        query = query.where(FunctionVersionRow.project_id == project)
    if name is not None:
        query = query.where(FunctionVersionRow.name == name)
    return list(tx.session.scalars(query.order_by(FunctionVersionRow.created_at)))


def cancel_in_progress(tx: Tx, name: str, version: int, now: datetime) -> None:
    for row in in_progress(tx, tx.project, name):
        set_status(tx, row, "cancelled", now, f"replaced by version {version}")


def advance(
    tx: Tx,
    settings: Settings,
    now: datetime,
    project: str | None = None,
    name: str | None = None,
) -> int:
    """Move every version in progress (of ``project``'s function ``name``) on; the number of
    changes."""
    return rollouts.advance_rows(
        tx,
        settings,
        now,
        in_progress(tx, project, name),
        lambda row: node_views(tx, row.project_id, row.name),
        apply,
    )
