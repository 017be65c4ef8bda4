"""The backup schedule (spec 004): a full backup every ``backup_full_every_s`` (weekly), an
incremental every ``backup_incremental_every_s`` (daily), a configuration backup whenever the
configuration changed, each kept for its retention; and the verification of every new backup
and, every ``backup_verify_every_s`` (daily), of the newest one again.

The jobs (``edgeplane.services.jobs``) call ``run_backups`` and ``run_verification``; what is
due is a pure function of the catalog (``due``), so the schedule is tested without waiting.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from threading import Event

from edgeplane.backup import catalog, create, locations
from edgeplane.backup.errors import BackupError
from edgeplane.backup.manifest import manifest_name, payload_name
from edgeplane.backup.verify import verify
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.store.backup_tables import BackupRow
from edgeplane.store.db import Database
from edgeplane.store.tables import utcnow

log = logging.getLogger("edgeplane.backup")
CHECK_EVERY_S = 60.0


def enabled(settings: Settings, db: Database) -> bool:
    mode = (settings.backup_schedule or "auto").lower()
    if mode == "off":
        return False
    if mode == "on":
        return True
    return create.engine_of(db) == "sqlite"


def due(
    rows: list[BackupRow],
    settings: Settings,
    now: datetime,
    revision: int,
    checked: int | None = None,
) -> list[str]:
    """The kinds of backup due now, given the catalog (newest first), the revision, and the
    revision the configuration was last compared at (``checked``: a revision moved by what is
    not configuration, an OCSP staple say, is compared once, not every minute)."""
    out = []
    fulls = [r for r in rows if r.kind == "full"]
    databases = [r for r in rows if r.kind in ("full", "incremental")]
    configs = [r for r in rows if r.kind == "config"]
    if not fulls or now - fulls[0].created_at >= timedelta(seconds=settings.backup_full_every_s):
        out.append("full")
    elif now - databases[0].created_at >= timedelta(seconds=settings.backup_incremental_every_s):
        out.append("incremental")
    if (not configs or configs[0].revision != revision) and checked != revision:
        out.append("config")
    return out


def expired(rows: list[BackupRow], now: datetime) -> list[BackupRow]:
    """Backups past their retention that no kept backup needs (a full stays while an
    incremental of its chain is kept)."""
    needed: set[str] = set()
    for row in rows:
        if row.expires_at is None or row.expires_at > now:
            needed.update((row.manifest or {}).get("chain") or [])
    return [
        r for r in rows if r.expires_at is not None and r.expires_at <= now and r.id not in needed
    ]


class Backups:
    """The job body: what is due, made; what expired, deleted."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db, self.settings = db, settings
        self.started = time.monotonic()
        self.refreshed = False
        self.checked: int | None = None  # the revision the configuration was compared at

    def __call__(self, stopping: Event | None = None) -> list[str]:
        if not enabled(self.settings, self.db):
            return []
        if create.engine_of(self.db) == "postgresql" and self.settings.backup_wal_dir:
            from edgeplane.backup import pg_backup

            pg_backup.archiver(self.db, self.settings)  # streaming from before the first full
        if time.monotonic() - self.started < self.settings.backup_start_delay_s:
            return []
        if not self.refreshed:
            with locations.opened(self.settings) as targets:
                catalog.refresh(self.db, self.settings, targets)
            self.refreshed = True
        made = []
        now = utcnow()
        revision = self.db.current_revision()
        for kind in due(catalog.rows(self.db), self.settings, now, revision, self.checked):
            if stopping is not None and stopping.is_set():
                break
            try:
                result = create.create(self.db, self.settings, kind)
            except BackupError as exc:
                log.error("the %s backup failed: %s", kind, exc)
                continue
            if kind == "config":
                self.checked = revision
            if result is not None:
                made.append(result.manifest.id)
        prune(self.db, self.settings, now)
        return made


def stop_streaming() -> None:
    """Stop the WAL archivers this process started (PostgreSQL)."""
    import sys

    if "edgeplane.backup.pg_backup" in sys.modules:
        sys.modules["edgeplane.backup.pg_backup"].stop_archivers()


def prune(db: Database, settings: Settings, now: datetime) -> list[str]:
    gone = expired(catalog.rows(db), now)
    if not gone:
        return []
    with locations.opened(settings) as targets:
        for row in gone:
            for target in targets:
                if target.name in row.locations:
                    try:
                        target.delete(payload_name(row.id))
                        target.delete(manifest_name(row.id))
                    except BackupError as exc:
                        log.warning(
                            "expired backup %s not deleted at %s: %s", row.id, target.name, exc
                        )
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        for row in gone:
            found = tx.session.get(BackupRow, row.id)
            if found is not None:
                tx.session.delete(found)
    log.info("deleted %d expired backups", len(gone))
    return [r.id for r in gone]


def to_verify(rows: list[BackupRow], settings: Settings, now: datetime) -> list[BackupRow]:
    """Never-verified backups (oldest first), then the newest database backup again when its
    last verification is older than ``backup_verify_every_s``."""
    out = sorted((r for r in rows if r.verified_at is None), key=lambda r: r.created_at)
    newest = next((r for r in rows if r.kind in ("full", "incremental")), None)
    every = timedelta(seconds=settings.backup_verify_every_s)
    if newest is not None and newest.verified_at is not None and now - newest.verified_at >= every:
        out.append(newest)
    return out


def record_verification(db: Database, backup_id: str, report: dict[str, object]) -> None:
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        row = tx.session.get(BackupRow, backup_id)
        if row is None:
            return
        row.verified_at = utcnow()
        row.verify_ok = bool(report["ok"])
        row.verify_message = str(report["message"])[:2000]
        row.verify_report = report


def verify_one(db: Database, settings: Settings, backup_id: str) -> dict[str, object]:
    return verify_many(db, settings, [backup_id])[0]


def verify_many(
    db: Database, settings: Settings, backup_ids: list[str], stopping: Event | None = None
) -> list[dict[str, object]]:
    """Verify backups and record what was found; the targets are listed once for all."""
    reports = []
    with locations.opened(settings) as targets:
        found = catalog.scan(targets)
        for backup_id in backup_ids:
            if stopping is not None and stopping.is_set():
                break
            report = verify(settings, backup_id, found, targets).as_dict()
            record_verification(db, backup_id, report)
            if not report["ok"]:
                log.error("backup %s failed its verification: %s", backup_id, report["message"])
            reports.append(report)
    return reports


def run_verification(db: Database, settings: Settings, stopping: Event | None = None) -> int:
    if not enabled(settings, db):
        return 0
    due = [row.id for row in to_verify(catalog.rows(db), settings, utcnow())]
    return len(verify_many(db, settings, due, stopping)) if due else 0
