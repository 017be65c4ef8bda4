"""The background drift check: each project's live state against its newest applied file,
every ``drift_interval_s``. The count of drifted objects is the ``config_drift_objects``
series (the shipped ``config-drift`` alert rule fires on it); the objects are kept for the
dashboard and ``edgeplane drift`` reads them live. A row is written only when it changes.
"""

from __future__ import annotations

import logging
from threading import Event

from sqlalchemy import func, select

from edgeplane.iac import applied, drift, secret
from edgeplane.iac.kind import Context
from edgeplane.iac.service import digest_key
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL
from edgeplane.store.db import Database
from edgeplane.store.iac_tables import IacApplyRow, IacDriftRow
from edgeplane.store.tables import utcnow

log = logging.getLogger("edgeplane.iac")


def check_project(db: Database, settings: Settings, project: str) -> int | None:
    """Check one project; the number of drifted objects (None: never applied)."""
    with db.read(LOCAL, project) as tx:
        last = applied.latest(tx)
        if last is None:
            return None
        with secret.keyed(digest_key(tx)):
            found = drift.compare(Context(tx, settings), last)
        summary = [{"section": d.kind.section, "key": d.key, "change": d.change} for d in found]
        row = tx.session.get(IacDriftRow, project)
        if row is not None and row.apply_id == last.id and row.drifted == summary:
            return len(found)
        apply_id = last.id
    with db.transaction(LOCAL, project) as tx:
        row = tx.session.get(IacDriftRow, project)
        if row is None:
            row = IacDriftRow(project_id=project)
            tx.session.add(row)
        row.checked_at, row.apply_id = utcnow(), apply_id
        row.objects, row.drifted = len(summary), summary
    return len(found)


def run_once(db: Database, settings: Settings, stopping: Event | None = None) -> int:
    """Check every project that has an applied file; the projects with drift."""
    with db.read(LOCAL, "default") as tx:
        projects = list(
            tx.session.scalars(
                select(IacApplyRow.project_id)
                .group_by(IacApplyRow.project_id)
                .order_by(func.min(IacApplyRow.id))
            )
        )
    drifted = 0
    for project in projects:
        if stopping is not None and stopping.is_set():
            break
        try:
            if check_project(db, settings, project):
                drifted += 1
        except Exception:  # one project's failure must not stop the others' checks
            log.exception("drift check of project %s failed", project)
    return drifted
