"""Cache purges: a ``purges`` row per request, done by every edge node, acknowledged per node.

A purge is a change of the desired state: it is written in one transaction that bumps the
revision, which wakes the edge nodes' long-polls; each node removes the objects and
acknowledges (``purge_acks``). ``wait`` polls those acknowledgements (about every 10 ms) until
every online node that was registered when the purge was made has done it, or the timeout.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from edgeplane.errors import InvalidInput, NotFound
from edgeplane.model.cdn import PURGE_PATH_MAX, NodePurge, PurgeRequest, PurgeResult
from edgeplane.model.common import new_id
from edgeplane.model.enums import Role
from edgeplane.services import access
from edgeplane.services.common import validate
from edgeplane.store.actor import Actor
from edgeplane.store.db import Database, Tx
from edgeplane.store.tables import EdgeNodeRow, PurgeAckRow, PurgeRow, utcnow

KIND = "purge"
ONLINE_WITHIN = timedelta(seconds=60)
POLL_S = 0.01
_PATH = re.compile(r"^/[^\s*?#]*$")


def check_path(path: str) -> str | None:
    """Why a purge path is wrong, or None: ``/exact/path`` or ``/prefix/*``."""
    if not path.startswith("/"):
        return "must start with /"
    body = path[:-1] if path.endswith("*") else path
    if path.endswith("*") and not body.endswith("/"):
        return "a * is only allowed as the last character, after a / (/static/*)"
    if not _PATH.fullmatch(body):
        return "must be a path with no spaces, ?, # or * except a final /* (/static/*)"
    if len(path) > PURGE_PATH_MAX:
        return f"at most {PURGE_PATH_MAX} characters"
    return None


def _paths(request: PurgeRequest) -> list[str]:
    out: list[str] = []
    for i, path in enumerate(request.paths):
        reason = check_path(path)
        if reason is not None:
            raise InvalidInput.at(f"paths.{i}", reason)
        if path not in out:
            out.append(path)
    return out


def create(tx: Tx, data: PurgeRequest | dict[str, Any]) -> PurgeRow:
    """Record a purge of the project's cached objects; the revision bumps with it."""
    tx.actor.require(tx.project, Role.EDITOR)
    request = data if isinstance(data, PurgeRequest) else validate(PurgeRequest, data)
    paths = [] if request.purge_all else _paths(request)
    row = PurgeRow(
        id=new_id("purge"),
        project_id=tx.project,
        paths=paths,
        purge_all=request.purge_all,
        revision=tx.next_revision(),
        created_at=utcnow(),
        created_by=tx.actor.name,
    )
    tx.session.add(row)
    tx.session.flush()
    tx.record("create", KIND, row.id, None, {"paths": paths, "purge_all": request.purge_all})
    return row


def _online(now: datetime, node: EdgeNodeRow) -> bool:
    return node.last_seen_at is not None and now - node.last_seen_at < ONLINE_WITHIN


def _result(tx: Tx, purge: PurgeRow, now: datetime) -> PurgeResult:
    acks = {
        a.node_id: a
        for a in tx.session.scalars(select(PurgeAckRow).where(PurgeAckRow.purge_id == purge.id))
    }
    nodes = list(tx.session.scalars(select(EdgeNodeRow).order_by(EdgeNodeRow.name)))
    out: list[NodePurge] = []
    complete = True
    for node in nodes:
        ack = acks.get(node.id)
        if ack is None:
            # Only online nodes that knew of the purge are waited for.
            if not _online(now, node) or node.registered_at > purge.created_at:
                continue
            complete = False
            out.append(
                NodePurge(node=node.name, completed_at=None, purged_count=None, latency_ms=None)
            )
            continue
        latency = (ack.completed_at - purge.created_at).total_seconds() * 1000
        out.append(
            NodePurge(
                node=node.name,
                completed_at=ack.completed_at,
                purged_count=ack.purged_count,
                latency_ms=round(max(latency, 0.0), 3),
                error=ack.error,
            )
        )
    return PurgeResult(
        id=purge.id,
        purged_count=sum(n.purged_count or 0 for n in out),
        complete=complete,
        nodes=out,
        created_at=purge.created_at,
    )


def _get_row(tx: Tx, purge_id: str) -> PurgeRow:
    row = tx.session.get(PurgeRow, purge_id)
    if row is None or row.project_id != tx.project:
        raise NotFound(f"purge {purge_id!r} not found in project {tx.project!r}")
    return row


def get(tx: Tx, purge_id: str) -> PurgeResult:
    tx.actor.require(tx.project, Role.VIEWER)
    return _result(tx, _get_row(tx, purge_id), utcnow())


def wait(db: Database, actor: Actor, project: str, purge_id: str, timeout_s: float) -> PurgeResult:
    """Poll the acknowledgements until the purge is complete or ``timeout_s`` has passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        with db.read(actor, project) as tx:
            result = get(tx, purge_id)
        if result.complete or time.monotonic() >= deadline:
            return result
        time.sleep(POLL_S)


def purge(
    db: Database, actor: Actor, project: str, data: PurgeRequest | dict[str, Any]
) -> PurgeResult:
    """Create a purge and, when asked, wait for every online edge node to have done it."""
    request = data if isinstance(data, PurgeRequest) else validate(PurgeRequest, data)
    with db.transaction(actor, project) as tx:
        access.require_project(tx)
        purge_id = create(tx, request).id
    if request.wait:
        return wait(db, actor, project, purge_id, request.timeout_s)
    with db.read(actor, project) as tx:
        return get(tx, purge_id)
