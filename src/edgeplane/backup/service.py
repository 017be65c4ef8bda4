"""The backups as the API, CLI and SDK use them: platform admins only (a backup holds every
project and the keys)."""

from __future__ import annotations

from typing import Any

from edgeplane.backup import catalog, create, keys, locations, schedule
from edgeplane.backup.errors import BackupError
from edgeplane.errors import Conflict, NotFound, UpstreamFailed
from edgeplane.model.backups import Backup, BackupStatus, BackupTarget, backup_view
from edgeplane.settings import Settings
from edgeplane.store.actor import Actor
from edgeplane.store.db import Database


def _failed(exc: BackupError) -> UpstreamFailed:
    return UpstreamFailed(str(exc))


def list_backups(
    db: Database,
    actor: Actor,
    settings: Settings,
    *,
    kind: str | None = None,
    refresh: bool = False,
) -> list[Backup]:
    actor.require_platform_admin()
    if refresh:
        try:
            with locations.opened(settings) as targets:
                catalog.refresh(db, settings, targets)
        except BackupError as exc:
            raise _failed(exc) from None
    return [backup_view(r) for r in catalog.rows(db, kind)]


def get_backup(db: Database, actor: Actor, backup_id: str) -> Backup:
    """One backup by id, or ``latest`` (the newest)."""
    actor.require_platform_admin()
    for row in catalog.rows(db):
        if row.id == backup_id or backup_id == "latest":
            return backup_view(row)
    raise NotFound(f"no backup {backup_id!r} in the catalog (edgeplane backup list --refresh)")


def create_backup(db: Database, actor: Actor, settings: Settings, kind: str) -> Backup | None:
    actor.require_platform_admin()
    try:
        made = create.create(db, settings, kind)
    except BackupError as exc:
        raise _failed(exc) from None
    if made is None:
        return None
    return get_backup(db, actor, made.manifest.id)


def verify_backup(db: Database, actor: Actor, settings: Settings, backup_id: str) -> dict[str, Any]:
    backup = get_backup(db, actor, backup_id)
    return schedule.verify_one(db, settings, backup.id)


def status(db: Database, actor: Actor, settings: Settings) -> BackupStatus:
    actor.require_platform_admin()
    try:
        targets = locations.configured(settings)
    except BackupError as exc:
        raise Conflict(f"EDGEPLANE_BACKUP_TARGETS: {exc}") from None
    try:
        key_id: str | None = keys.load(settings).key_id
    except BackupError:
        key_id = None
    rows = catalog.rows(db)
    newest = {
        kind: next((backup_view(r) for r in rows if r.kind == kind), None)
        for kind in ("full", "incremental", "config")
    }
    return BackupStatus(
        schedule=schedule.enabled(settings, db),
        engine=create.engine_of(db),
        key_id=key_id,
        targets=[BackupTarget(name=t.name, url=t.url, kinds=sorted(t.kinds)) for t in targets],
        newest=newest,
        full_every_s=settings.backup_full_every_s,
        incremental_every_s=settings.backup_incremental_every_s,
        verify_every_s=settings.backup_verify_every_s,
        retention_s={
            k: catalog.retention_s(settings, k) for k in ("full", "incremental", "config")
        },
    )
