"""Realigning the revision counter when revision numbers may have been used twice.

An edge node holds a revision by its number and takes only a newer one. Two things can hand
the same numbers out again, with other content:

- a failover of PostgreSQL with asynchronous replication that lost the last transactions: the
  old primary reached revision N+k (and edge nodes may have applied it), the promoted standby
  has N and numbers its next change N+1;
- a restore of the database from a backup (``edgeplane restore``, a point-in-time recovery).

The control plane notices by itself, in two ways, and each time moves the counter past every
revision a node may hold, in one transaction with an audit event (kind ``revision``, action
``realign``, a global object):

- **The timeline.** Each process reads the database's timeline (``Database.timeline``: the
  PostgreSQL WAL timeline, which a promotion or a recovery starts anew) at most once a second
  while edge nodes poll (``Realigner.check``). When it is not the timeline recorded by the last
  realignment (1 when there was none), the counter moves ``TIMELINE_MARGIN`` ahead (past the
  revisions the lost transactions can have taken; a node that holds a later one is ahead, as
  below) and the new timeline is recorded with it. Under the counter's lock: replicas that
  notice together realign once.
- **A node ahead.** A node that polls with ``after`` greater than the database's revision
  holds a revision the database does not have. The counter moves to ``after + 1``; at most
  ``MAX_AHEAD`` ahead: a node's word is not taken beyond that (logged); its poll then ends
  as before, with the database's older revision, which the agent takes whole.

Either way this process's snapshot cache is cleared, and the caches of other processes clear
themselves when the revisions they build include the realignment's event
(``snapshot.cache.realigned_since``): every node gets a revision newer than the one it holds,
as a full manifest built from the database (no delta base is left). What the lost
transactions changed stays lost; the edge serves what the database says again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from edgeplane.snapshot.cache import REALIGN_ACTION, REALIGN_KIND, SnapshotCache
from edgeplane.store import revision as revisions
from edgeplane.store.actor import PLATFORM_PROJECT, Actor
from edgeplane.store.db import Database, Tx, unavailable
from edgeplane.store.tables import AuditRow, RevisionRow

log = logging.getLogger(__name__)

REALIGNER = Actor(name="edgeplane-realign", local=True)
TIMELINE_OBJECT = "timeline"  # the object of a realignment for a new timeline
FIRST_TIMELINE = 1  # a database never realigned is on the timeline a new server starts with
TIMELINE_MARGIN = 1000  # revisions skipped at a new timeline
MAX_AHEAD = 100_000  # a node that says it is further ahead is not believed
CHECK_EVERY_S = 1.0


def timeline_target(current: int) -> int:
    """The revision a new timeline's realignment commits as (pure)."""
    return current + TIMELINE_MARGIN


def ahead_target(current: int, after: int) -> int | None:
    """The revision to move the counter to for a node that holds ``after``: None when the
    database is not behind it, or is further behind than ``MAX_AHEAD`` (pure)."""
    if after <= current or after - current > MAX_AHEAD:
        return None
    return after + 1


def recorded_timeline(session: Session) -> int:
    """The timeline recorded by the last realignment for one (``FIRST_TIMELINE`` if none)."""
    after = session.scalar(
        select(AuditRow.after)
        .where(AuditRow.kind == REALIGN_KIND, AuditRow.object_id == TIMELINE_OBJECT)
        .order_by(AuditRow.id.desc())
        .limit(1)
    )
    value = after.get("timeline") if isinstance(after, dict) else None
    return value if isinstance(value, int) else FIRST_TIMELINE


def _move(tx: Tx, current: int, target: int, object_id: str, after: dict[str, Any]) -> None:
    """Commit ``tx`` as revision ``target`` (the counter is locked, at ``current``)."""
    tx.session.execute(update(RevisionRow).where(RevisionRow.id == 1).values(value=target - 1))
    before = {"revision": current}
    tx.record(REALIGN_ACTION, REALIGN_KIND, object_id, before, after, global_object=True)


def realign_timeline(db: Database, timeline: int) -> int | None:
    """Move the counter ``TIMELINE_MARGIN`` ahead and record ``timeline``; the revision it
    commits as, or None when a realignment already recorded that timeline."""
    with db.transaction(REALIGNER, PLATFORM_PROJECT) as tx:
        current = revisions.lock(tx.session)
        recorded = recorded_timeline(tx.session)
        if recorded == timeline:
            return None
        target = timeline_target(current)
        after = {"revision": target, "timeline": timeline, "previous_timeline": recorded}
        _move(tx, current, target, TIMELINE_OBJECT, after)
    return tx.revision


def realign_ahead(db: Database, node_id: str, after: int) -> tuple[int, bool]:
    """Move the counter to ``after + 1`` unless it is past ``after`` already (another replica
    did it); the revision now, and whether this call moved it."""
    with db.transaction(REALIGNER, PLATFORM_PROJECT) as tx:
        current = revisions.lock(tx.session)
        target = ahead_target(current, after)
        if target is None:
            return current, False
        _move(tx, current, target, f"node:{node_id}", {"revision": target, "node": node_id})
    return target, True


class Realigner:
    """One per process: realigns the counter when the database's timeline changes or an
    edge node is ahead of it, and clears the process's snapshot cache then."""

    def __init__(
        self,
        db: Database,
        snapshots: SnapshotCache,
        *,
        every: float = CHECK_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._snapshots = snapshots
        self._every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._due = 0.0
        self.timeline: int | None = None  # the database's, as last seen
        self.realignments = 0  # made by this process (tests and figures)
        self._disbelieved: dict[str, int] = {}  # node -> the revision it said, not believed

    def check(self) -> None:
        """Compare the database's timeline with the one last seen, at most once every
        ``every`` seconds (else at once); realign when it is not the recorded one. Never
        raises: a database that cannot tell now is asked again next time."""
        now = self._clock()
        if now < self._due or not self._lock.acquire(blocking=False):
            return
        try:
            self._due = now + self._every
            timeline = self._db.timeline()
            if timeline is None or timeline == self.timeline:
                return
            if self.timeline is not None:
                log.warning(
                    "the database is on timeline %d, no longer %d (a failover or a restore): "
                    "snapshots are built again from it",
                    timeline,
                    self.timeline,
                )
                self._snapshots.clear()
            with self._db.read(REALIGNER, PLATFORM_PROJECT) as tx:
                recorded = recorded_timeline(tx.session)
            if recorded != timeline:
                moved = realign_timeline(self._db, timeline)
                self._snapshots.clear()
                if moved is not None:
                    self.realignments += 1
                    log.warning(
                        "revision counter moved to %d: the database is on timeline %d, the "
                        "last revisions may have been lost with timeline %d; every edge node "
                        "gets the database's state whole",
                        moved,
                        timeline,
                        recorded,
                    )
            self.timeline = timeline
        except Exception as exc:
            level = logging.DEBUG if unavailable(exc) else logging.WARNING
            log.log(level, "the revision counter's timeline could not be checked: %s", exc)
        finally:
            self._lock.release()

    def node_ahead(self, node_id: str, after: int, current: int) -> int:
        """A node polls with ``after``, newer than the database's revision ``current``: move
        the counter past it; the revision now (``current`` when the node is not believed)."""
        if ahead_target(current, after) is None:
            if self._disbelieved.get(node_id) == after:
                return current  # said once (the poll reads the state again at each wake)
            self._disbelieved[node_id] = after
            log.warning(
                "edge node %s says it holds revision %d, %d ahead of the database's %d (more "
                "than %d): not believed; it is told the database's revision when its poll "
                "ends, and then takes it whole",
                node_id,
                after,
                after - current,
                current,
                MAX_AHEAD,
            )
            return current
        revision, moved = realign_ahead(self._db, node_id, after)
        self._snapshots.clear()
        if not moved:
            return revision
        self.realignments += 1
        log.warning(
            "edge node %s holds revision %d, the database only %d (transactions lost in a "
            "failover, or a restore): revision counter at %d; every edge node gets the "
            "database's state whole",
            node_id,
            after,
            current,
            revision,
        )
        return revision
