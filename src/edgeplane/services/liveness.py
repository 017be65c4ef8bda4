"""Which edge nodes are live: heartbeat within ``node_timeout_s`` and healthy.

GeoDNS answers only with live nodes (``edgeplane.snapshot.zones.build_geo``), so the live set
is part of what the edge serves: a change is written (``EdgeLivenessRow``) as a change of the
desired state, with a revision and an audit event, and every node's DNS server gets it through
its snapshot's geo answers (``EdgeConfig.geo``; no zone changes with it). The control plane's
monitor calls ``refresh`` every ``liveness_interval_s``; a heartbeat of a node coming back
calls it at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from edgeplane.settings import Settings
from edgeplane.store.db import Tx
from edgeplane.store.tables import EdgeLivenessRow, EdgeNodeRow

KIND = "edge-liveness"


def live_ids(tx: Tx) -> set[str]:
    row = tx.session.get(EdgeLivenessRow, 1)
    return set(row.live) if row is not None else set()


def compute(nodes: list[EdgeNodeRow], now: datetime, timeout_s: float) -> list[str]:
    """The live nodes' ids, sorted (pure)."""
    limit = now - timedelta(seconds=timeout_s)
    return sorted(
        n.id for n in nodes if n.healthy and n.heartbeat_at is not None and n.heartbeat_at >= limit
    )


def refresh(tx: Tx, settings: Settings, now: datetime) -> bool:
    """Bring the stored live set up to date; True when it changed."""
    nodes = list(tx.session.scalars(select(EdgeNodeRow)))
    live = compute(nodes, now, settings.node_timeout_s)
    row = tx.session.get(EdgeLivenessRow, 1)
    if row is None:
        row = EdgeLivenessRow(id=1, live=[], revision=0)
        tx.session.add(row)
    if list(row.live or []) == live:
        return False
    before = list(row.live or [])
    row.live = live
    row.revision = tx.next_revision()
    row.changed_at = now
    names = {n.id: n.name for n in nodes}
    tx.record(
        "update",
        KIND,
        "edge",
        {"live": sorted(names.get(i, i) for i in before)},
        {"live": sorted(names.get(i, i) for i in live)},
        global_object=True,
    )
    return True
