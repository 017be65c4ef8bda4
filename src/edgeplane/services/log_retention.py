"""Retention of log lines kept one row per line under a key (a domain's access lines, a
function's console lines).

A pass (``LogRetention``, called by a background job) first deletes the lines older than the
log's retention in one DELETE by time (an index), ``DELETE_BATCH`` rows per transaction; then
caps each key that received lines since the last pass (found by id, the primary key) to its
newest lines, one indexed look-up each, ``KEYS_PER_TX`` keys per transaction: at 10,000 keys a
pass costs what arrived, not a query per key. Stopping between transactions keeps what the pass
has not looked at for the next one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from threading import Event
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import InstrumentedAttribute

from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.store.db import Database, Tx
from edgeplane.store.tables import utcnow

log = logging.getLogger(__name__)

DELETE_BATCH = 5000  # rows per DELETE by age
KEYS_PER_TX = 200  # keys capped per transaction


@dataclass(frozen=True)
class RetainedLog:
    """A table of log lines: ``row`` has ``id``, ``project_id`` and ``at``; ``key`` is the
    column the cap applies to; the settings give the retention and the cap."""

    name: str  # for the log line: "access log"
    row: Any
    key: InstrumentedAttribute[str]
    retention_s: Callable[[Settings], float]
    keep: Callable[[Settings], int]


class LogRetention:
    """The retention job of one log; it remembers the newest id its last complete pass saw."""

    def __init__(self, retained: RetainedLog) -> None:
        self.log = retained
        self.seen_id = 0

    def __call__(self, db: Database, settings: Settings, stopping: Event | None = None) -> int:
        """One pass; the number of lines deleted."""
        row = self.log.row
        deleted = self.expire(db, settings, stopping)
        with db.read(LOCAL, PLATFORM_PROJECT) as tx:
            top = tx.session.scalar(select(func.max(row.id)))
            if top is None or top <= self.seen_id:
                return deleted
            touched = list(
                tx.session.execute(
                    select(row.project_id, self.log.key)
                    .where(row.id > self.seen_id, row.id <= top)
                    .distinct()
                )
            )
        keep = self.log.keep(settings)
        for start in range(0, len(touched), KEYS_PER_TX):
            if stopping is not None and stopping.is_set():
                return deleted  # seen_id stays: the next pass looks at them again
            with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
                for project, key in touched[start : start + KEYS_PER_TX]:
                    deleted += self.cap(tx, project, key, keep)
        self.seen_id = top
        return deleted

    def expire(self, db: Database, settings: Settings, stopping: Event | None = None) -> int:
        """Delete the lines older than the retention, ``DELETE_BATCH`` per transaction."""
        row = self.log.row
        cutoff = utcnow() - timedelta(seconds=self.log.retention_s(settings))
        deleted = 0
        while stopping is None or not stopping.is_set():
            with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
                old = select(row.id).where(row.at < cutoff).limit(DELETE_BATCH)
                result: Any = tx.session.execute(
                    delete(row).where(row.id.in_(old)),
                    execution_options={"synchronize_session": False},
                )
                count = int(result.rowcount or 0)
            deleted += count
            if count < DELETE_BATCH:
                break
        if deleted:
            log.info("%s retention: %d lines older than %s deleted", self.log.name, deleted, cutoff)
        return deleted

    def cap(self, tx: Tx, project: str, key: str, keep: int) -> int:
        """Keep the key's newest ``keep`` lines; the number deleted."""
        row = self.log.row
        mine = (row.project_id == project, self.log.key == key)
        cut = tx.session.scalar(
            select(row.id).where(*mine).order_by(row.id.desc()).offset(max(0, keep)).limit(1)
        )
        if cut is None:
            return 0
        result: Any = tx.session.execute(
            delete(row).where(*mine, row.id <= cut),
            execution_options={"synchronize_session": False},
        )
        return int(result.rowcount or 0)
