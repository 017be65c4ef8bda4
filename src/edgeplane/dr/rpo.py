"""The recovery point a drill measures: how much of the control plane's data the backup side
would lack if the primary were lost now.

- **Backups**: the age of the newest good backup of the data (kinds ``full`` and
  ``incremental`` of the catalog, ``BackupRow``, whose verification did not fail): what a
  restore would bring back. Without one, the RPO is unknown, and a drill fails its target.
- **Replication** (PostgreSQL): when a standby streams from this database
  (``pg_stat_replication``), the largest ``replay_lag``: what a promoted standby would lack
  (a standby caught up and idle shows no lag: 0). The RPO is then the smaller of the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, text

from edgeplane.store.actor import PLATFORM_PROJECT, Actor
from edgeplane.store.backup_tables import BackupRow
from edgeplane.store.db import Database

DATA_KINDS = ("full", "incremental")


@dataclass(frozen=True)
class RecoveryPoint:
    seconds: float | None  # None: unknown
    message: str
    detail: dict[str, Any] = field(default_factory=dict)


def replication_lag(db: Database) -> tuple[int, float | None] | None:
    """(standbys, their largest replay lag in seconds) on PostgreSQL; None elsewhere or when
    the statistics cannot be read."""
    if db.engine.dialect.name != "postgresql":
        return None
    try:
        with db.engine.connect() as conn:
            count, lag = conn.execute(
                text(
                    "SELECT count(*), max(extract(epoch FROM replay_lag)) FROM pg_stat_replication"
                )
            ).one()
    except Exception:
        return None
    return int(count or 0), float(lag) if lag is not None else None


def measure(db: Database, actor: Actor, now: datetime) -> RecoveryPoint:
    with db.read(actor, PLATFORM_PROJECT) as tx:
        newest = tx.session.scalars(
            select(BackupRow)
            .where(BackupRow.kind.in_(DATA_KINDS), BackupRow.verify_ok.is_not(False))
            .order_by(BackupRow.created_at.desc())
            .limit(1)
        ).first()
        age = round(max(0.0, (now - newest.created_at).total_seconds()), 3) if newest else 0.0
        backup = (
            {
                "id": newest.id,
                "kind": newest.kind,
                "created_at": newest.created_at.isoformat(),
                "age_s": age,
                "verified": newest.verify_ok,
                "revision": newest.revision,
            }
            if newest is not None
            else None
        )
    detail: dict[str, Any] = {"backup": backup}
    standby = replication_lag(db)
    if standby is not None:
        count, lag = standby
        detail["replication"] = {"standbys": count, "lag_s": lag if count else None}
    if backup is None:
        return RecoveryPoint(
            None,
            "no good full or incremental backup of the control plane: the recovery point is "
            "unknown (make one: `edgeplane backup create`)",
            detail,
        )
    seconds = age
    source = f"the newest good backup ({backup['id']}) is {seconds:.1f} s old"
    if standby is not None and standby[0]:
        lag = standby[1] or 0.0
        if lag < seconds:
            seconds = lag
            source = f"the standby lags {lag:.3f} s behind (the newest good backup is older)"
    return RecoveryPoint(round(seconds, 3), source, detail)
