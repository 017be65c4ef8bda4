"""Rolling a deployment version out: one node first, checked, then the rest; rolled back on
any failed check.

A new version starts as ``canary``: only its canary node (a live node of its regions) gets it.
The node fetches the bundle by hash, verifies it, activates it and checks it through its own
nginx, then says so in its heartbeat (``EdgeNodeRow.bundles``). A good canary makes the version
``rolling``: every node of its regions gets it. When every live node of the regions serves it,
the version is ``active`` and the one before it ``superseded``; a newer deployment cancels one
still in progress. A failed check, a canary that goes offline, or a phase that outlasts its
timeout makes the version ``failed``: the snapshot no longer names it, so every node that had
it goes back to the active version (still on its disk), which is the automatic rollback.

``decide`` is pure; ``advance`` reads the state, applies what ``decide`` says and records each
change (a new revision, so nodes get it). It runs when a node's bundle reports change and every
second from the control plane's monitor (timeouts, nodes going offline).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from edgeplane.services import liveness
from edgeplane.settings import Settings
from edgeplane.store.db import Tx
from edgeplane.store.tables import EdgeDeploymentRow, EdgeNodeRow

KIND = "edge-deployment"


@dataclass(frozen=True)
class NodeView:
    id: str
    name: str
    region: str
    live: bool
    report: Mapping[str, Any] | None  # what it said of the project's site, if anything


@dataclass(frozen=True)
class Transition:
    status: str
    error: str | None = None


def serves(report: Mapping[str, Any] | None, deployment: str) -> str | None:
    """``active`` / ``failed`` when the report is about ``deployment``, else None."""
    if not report or report.get("deployment") != deployment:
        return None
    state = report.get("state")
    return state if state in ("active", "failed") else None


def region_state(
    status: str, version: str, canary_node: str | None, here: list[NodeView]
) -> tuple[int, int, str]:
    """Of a version in ``status``, in one region whose live nodes are ``here``: how many serve
    it, how many failed it, and the region's state (offline, failed, done, active, canary,
    pending, rolling)."""
    states = [serves(n.report, version) for n in here]
    active = sum(1 for s in states if s == "active")
    failed = sum(1 for s in states if s == "failed")
    if not here:
        state = "offline"
    elif status == "failed" or failed:
        state = "failed"
    elif status in ("active", "superseded") or active == len(here):
        state = "done" if status != "rolling" else "active"
    elif status == "canary":
        state = "canary" if any(n.id == canary_node for n in here) else "pending"
    else:
        state = "rolling"
    return active, failed, state


def decide(
    status: str,
    deployment: str,
    regions: tuple[str, ...],
    canary: str | None,
    phase_at: datetime | None,
    nodes: list[NodeView],
    now: datetime,
    settings: Settings,
) -> Transition | None:
    """What happens next to a ``canary`` or ``rolling`` version, if anything (pure)."""
    started = phase_at or now
    if status == "canary":
        node = next((n for n in nodes if n.id == canary), None)
        if node is None:
            return Transition("failed", "the canary node was removed")
        state = serves(node.report, deployment)
        if state == "active":
            return Transition("rolling")
        if state == "failed":
            error = str((node.report or {}).get("error") or "the check failed")
            return Transition("failed", f"canary {node.name}: {error}")
        if not node.live:
            return Transition("failed", f"the canary node {node.name} went offline")
        if now - started > timedelta(seconds=settings.canary_timeout_s):
            return Transition(
                "failed",
                f"the canary node {node.name} did not activate the version within "
                f"{settings.canary_timeout_s:.0f}s",
            )
        return None
    if status != "rolling":
        return None
    targets = [n for n in nodes if n.region in regions and n.live]
    failed = [n for n in targets if serves(n.report, deployment) == "failed"]
    if failed:
        n = failed[0]
        error = str((n.report or {}).get("error") or "the check failed")
        return Transition("failed", f"{n.name}: {error}")
    waiting = [n for n in targets if serves(n.report, deployment) != "active"]
    if not waiting:
        return Transition("active")
    if now - started > timedelta(seconds=settings.rollout_timeout_s):
        names = ", ".join(sorted(n.name for n in waiting))
        return Transition(
            "failed", f"not activated within {settings.rollout_timeout_s:.0f}s by: {names}"
        )
    return None


def node_views(tx: Tx, project: str) -> list[NodeView]:
    live = liveness.live_ids(tx)
    return [
        NodeView(
            id=n.id,
            name=n.name,
            region=n.region,
            live=n.id in live,
            report=(n.bundles or {}).get(project),
        )
        for n in tx.session.scalars(select(EdgeNodeRow).order_by(EdgeNodeRow.name))
    ]


def set_status(
    tx: Tx, row: EdgeDeploymentRow, status: str, now: datetime, error: str | None = None
) -> None:
    record_status(tx, row, status, now, error, kind=KIND, key=row.id)


def record_status(
    tx: Tx,
    row: Any,
    status: str,
    now: datetime,
    error: str | None,
    *,
    kind: str,
    key: str,
    label: Mapping[str, Any] | None = None,
) -> None:
    """A version's new ``status`` (its phase time, a new revision, ``activated_at`` /
    ``finished_at``), recorded in the audit log as ``kind`` ``key`` with ``label``."""
    before = {**(label or {}), "status": row.status}
    row.status = status
    row.phase_at = now
    row.changed_revision = tx.next_revision()
    if error is not None:
        row.error = error[:4000]
    if status == "active":
        row.activated_at = now
    if status in ("superseded", "failed", "cancelled"):
        row.finished_at = now
    after: dict[str, Any] = {**(label or {}), "status": status}
    if error:
        after["error"] = error[:4000]
    tx.record("update", kind, key, before, after)


def apply(tx: Tx, row: EdgeDeploymentRow, change: Transition, now: datetime) -> None:
    set_status(tx, row, change.status, now, change.error)
    if change.status != "active":
        return
    older = tx.session.scalars(
        select(EdgeDeploymentRow).where(
            EdgeDeploymentRow.project_id == row.project_id,
            EdgeDeploymentRow.status == "active",
            EdgeDeploymentRow.id != row.id,
        )
    )
    for old in older:
        set_status(tx, old, "superseded", now)


def in_progress(tx: Tx, project: str | None = None) -> list[EdgeDeploymentRow]:
    query = select(EdgeDeploymentRow).where(EdgeDeploymentRow.status.in_(("canary", "rolling")))
    if project is not None:
        query = query.where(EdgeDeploymentRow.project_id == project)
    return list(tx.session.scalars(query.order_by(EdgeDeploymentRow.created_at)))


def advance(tx: Tx, settings: Settings, now: datetime, project: str | None = None) -> int:
    """Move every version in progress (of ``project``) on; the number of changes."""
    rows = in_progress(tx, project)
    return advance_rows(tx, settings, now, rows, lambda row: node_views(tx, row.project_id), apply)


def advance_rows(
    tx: Tx,
    settings: Settings,
    now: datetime,
    rows: Iterable[Any],
    views: Callable[[Any], list[NodeView]],
    apply_change: Callable[[Tx, Any, Transition, datetime], None],
) -> int:
    """Move each version of ``rows`` on as ``decide`` says, over the nodes ``views`` gives
    for it; the number of changes. A phase can move twice in one call: a canary that is good,
    then a one-node rollout."""
    changes = 0
    for row in rows:
        for _ in range(2):
            change = decide(
                row.status,
                row.id,
                tuple(row.regions or ()),
                row.canary_node,
                row.phase_at,
                views(row),
                now,
                settings,
            )
            if change is None:
                break
            apply_change(tx, row, change, now)
            changes += 1
            if change.status != "rolling":
                break
    return changes
