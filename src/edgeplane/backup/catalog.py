"""The catalog: the backups the database knows of (``backups``), and the manifests the targets
hold, which a fresh machine reads to restore."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select

from edgeplane.backup.errors import BackupError
from edgeplane.backup.manifest import Manifest, valid_id
from edgeplane.backup.targets import Target
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.store.backup_tables import BackupRow
from edgeplane.store.db import Database

log = logging.getLogger("edgeplane.backup")


@dataclass
class Found:
    """A backup as the targets hold it: its manifest and where it is."""

    manifest: Manifest
    locations: list[str] = field(default_factory=list)


def retention_s(settings: Settings, kind: str) -> float:
    return {
        "full": settings.backup_full_retention_s,
        "incremental": settings.backup_incremental_retention_s,
        "config": settings.backup_config_retention_s,
    }[kind]


def expires(settings: Settings, manifest: Manifest) -> datetime:
    return manifest.created_at + timedelta(seconds=retention_s(settings, manifest.kind))


def scan(targets: list[Target]) -> dict[str, Found]:
    """Every backup the reachable targets hold (by id); unreadable manifests are logged."""
    found: dict[str, Found] = {}
    for target in targets:
        try:
            names = target.list()
        except BackupError as exc:
            log.warning("backup target %s cannot be listed: %s", target.name, exc)
            continue
        for name in names:
            if not name.endswith(".json") or not valid_id(name[:-5]):
                continue
            try:
                manifest = Manifest.from_json(target.read_text(name), f"{target.name}:{name}")
            except BackupError as exc:
                log.warning("%s", exc)
                continue
            entry = found.setdefault(manifest.id, Found(manifest))
            entry.locations.append(target.name)
    return found


def record(db: Database, settings: Settings, manifest: Manifest, locations: list[str]) -> None:
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        row = tx.session.get(BackupRow, manifest.id)
        if row is None:
            row = BackupRow(id=manifest.id)
            tx.session.add(row)
        row.kind, row.engine, row.parent_id = manifest.kind, manifest.engine, manifest.parent
        row.created_at, row.revision = manifest.created_at, manifest.revision
        row.size_bytes, row.sha256 = manifest.size, manifest.sha256
        row.locations, row.manifest = sorted(locations), manifest.to_dict()
        row.expires_at = expires(settings, manifest)


def refresh(db: Database, settings: Settings, targets: list[Target]) -> int:
    """Bring the catalog in line with the targets: add what they hold, forget what none holds
    any more; the number of rows changed."""
    found = scan(targets)
    reachable = {t.name for t in targets}
    changed = 0
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        rows = {r.id: (list(r.locations), r.sha256) for r in tx.session.scalars(select(BackupRow))}
    for backup_id, entry in found.items():
        if rows.get(backup_id, ([], ""))[0] != sorted(entry.locations):
            record(db, settings, entry.manifest, entry.locations)
            changed += 1
    gone = [
        backup_id
        for backup_id, (locations, _sha) in rows.items()
        if backup_id not in found and set(locations) <= reachable
    ]
    if gone:
        with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
            for backup_id in gone:
                row = tx.session.get(BackupRow, backup_id)
                if row is not None:
                    tx.session.delete(row)
        changed += len(gone)
    return changed


def rows(db: Database, kind: str | None = None) -> list[BackupRow]:
    """The catalog, newest first."""
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        q = select(BackupRow).order_by(BackupRow.created_at.desc(), BackupRow.id.desc())
        if kind:
            q = q.where(BackupRow.kind == kind)
        found = list(tx.session.scalars(q))
        tx.session.expunge_all()
        return found


def newest(db: Database, kinds: tuple[str, ...], engine: str | None = None) -> BackupRow | None:
    """The newest backup of ``kinds`` (and ``engine``) in the catalog."""
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        q = select(BackupRow).where(BackupRow.kind.in_(kinds))
        if engine is not None:
            q = q.where(BackupRow.engine == engine)
        row = tx.session.scalars(
            q.order_by(BackupRow.created_at.desc(), BackupRow.id.desc()).limit(1)
        ).first()
        if row is not None:
            tx.session.expunge(row)
    return row
