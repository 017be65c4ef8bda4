"""Heartbeats without a database write per node per second.

Every edge node sends a heartbeat about every second. Most say nothing new: the node is alive,
as it was. Those are kept in this process's memory and written in batches: a node's
``heartbeat_at`` is written when the stored one is ``fresh_s`` old (a third of the node
timeout, at most 2 s), the due nodes together in one transaction, at most every
``FLUSH_EVERY_S``. The stored heartbeat is then never more than ``fresh_s`` plus one heartbeat
interval old while a node beats, well inside the node timeout that the liveness monitor
applies to it.

A heartbeat that says something new (its health, its DNS serials, its DNS error, its bundles'
or its function versions' states, a node this process has not seen yet, a node whose live
state it would change) takes the full path at once (``edge_nodes.heartbeat``). Each replica
keeps its own memory: a node that moves to another replica takes the full path there once.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Table, bindparam, update

from edgeplane.protocol.messages import Heartbeat
from edgeplane.services import edge_nodes, liveness
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT, Actor
from edgeplane.store.db import Database
from edgeplane.store.tables import EdgeNodeRow, utcnow

FLUSH_EVERY_S = 0.25
LIVE_CACHE_S = 0.5  # how long the live set read from the database is taken as current


def fresh_for(settings: Settings) -> timedelta:
    """How old a stored heartbeat may get before it is written again."""
    return timedelta(seconds=min(2.0, settings.node_timeout_s / 3))


def digest(body: Heartbeat) -> str:
    """What a heartbeat says besides "alive" (its DNS serials aside: only a full path has
    them)."""
    said = body.model_dump_json(include={"healthy", "reason", "dns_error", "bundles", "functions"})
    return hashlib.sha256(said.encode()).hexdigest()


@dataclass
class _Known:
    digest: str
    stored: datetime  # the heartbeat_at the database holds
    token_id: str | None


class HeartbeatBuffer:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.fresh = fresh_for(settings)
        self._lock = threading.Lock()
        self._known: dict[str, _Known] = {}
        self._pending: dict[str, datetime] = {}  # node -> its newest heartbeat not written
        self._live: set[str] = set()
        self._live_read = 0.0  # monotonic
        self._flushed = 0.0  # monotonic
        self.writes = 0  # nodes' heartbeats written (full path or batch)
        self.batched = 0  # heartbeats kept in memory rather than written at once

    def beat(self, actor: Actor, node_id: str, body: Heartbeat) -> None:
        now = utcnow()
        said = digest(body)
        with self._lock:
            known = self._known.get(node_id)
        quick = (
            known is not None
            and body.dns_serials is None
            and known.digest == said
            and known.token_id == actor.token_id
            and (node_id in self._live_set()) == body.healthy
        )
        if not quick:
            with self.db.transaction(actor, PLATFORM_PROJECT) as tx:
                edge_nodes.heartbeat(tx, node_id, body, self.settings)
            with self._lock:
                self._known[node_id] = _Known(said, now, actor.token_id)
                self._pending.pop(node_id, None)
                self.writes += 1
                if body.healthy:
                    self._live.add(node_id)
            return
        assert known is not None
        with self._lock:
            self._pending[node_id] = now
            self.batched += 1
            due = now - known.stored >= self.fresh
        if due:
            self.flush()

    def _live_set(self) -> set[str]:
        if time.monotonic() - self._live_read > LIVE_CACHE_S:
            with self.db.read(LOCAL, PLATFORM_PROJECT) as tx:
                live = liveness.live_ids(tx)
            with self._lock:
                self._live, self._live_read = live, time.monotonic()
        return self._live

    def flush(self, force: bool = False) -> int:
        """Write the heartbeats whose stored one is due, in one transaction; how many."""
        with self._lock:
            if not force and time.monotonic() - self._flushed < FLUSH_EVERY_S:
                return 0
            self._flushed = time.monotonic()
            due = {
                node: at
                for node, at in self._pending.items()
                if force or at - self._known[node].stored >= self.fresh
            }
            for node in due:
                del self._pending[node]
        if not due:
            return 0
        rows = [{"node": node, "at": at} for node, at in due.items()]
        with self.db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
            table = EdgeNodeRow.__table__
            assert isinstance(table, Table)
            written = tx.session.connection().execute(
                update(table)
                .where(table.c.id == bindparam("node"))
                .values(heartbeat_at=bindparam("at"), last_seen_at=bindparam("at")),
                rows,
            )
        with self._lock:
            if written.rowcount < len(rows):  # a node was deleted: their next beat says so
                for node in due:
                    self._known.pop(node, None)
            for node, at in due.items():
                known = self._known.get(node)
                if known is not None:
                    known.stored = at
            self.writes += len(due)
        return len(due)
