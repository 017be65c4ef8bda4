"""``edgeplane restore``: the state of a backup onto this machine (spec 004's data recovery:
backup validation, environment preparation, data restoration, integrity check).

Everything is rebuilt and checked in a work directory first; only then is anything replaced,
so a damaged backup, a wrong key or a missing link of a chain leaves the machine as it was. A
home that already holds a control plane's state is refused unless ``force``, which moves that
state aside (``HOME/before-restore-<time>/``) rather than deleting it; a home whose
``edgeplane up`` is running is refused either way.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from edgeplane.backup import catalog, fetch, keys, locations, sqlite
from edgeplane.backup.archive import HOME_FILES
from edgeplane.backup.catalog import Found
from edgeplane.backup.errors import BackupError
from edgeplane.backup.seal import workdir
from edgeplane.settings import Settings
from edgeplane.store.tables import utcnow


@dataclass
class Restored:
    backup: str
    chain: list[str]
    revision: int
    created_at: datetime
    home: str
    database: str
    moved_aside: str | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "backup": self.backup,
            "chain": self.chain,
            "revision": self.revision,
            "created_at": self.created_at.isoformat(),
            "home": self.home,
            "database": self.database,
            "moved_aside": self.moved_aside,
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
        }


def choose(
    found: dict[str, Found], backup_id: str | None, at: datetime | None, engine: str | None
) -> Found:
    """The backup to restore: ``backup_id``, else the newest database backup (made at or
    before ``at`` when given)."""
    if backup_id:
        entry = found.get(backup_id)
        if entry is None:
            raise BackupError(
                f"no reachable target holds backup {backup_id!r} (they hold {len(found)} backups: "
                "edgeplane backup list)"
            )
        return entry
    candidates = [
        f
        for f in found.values()
        if f.manifest.kind in ("full", "incremental")
        and (engine is None or f.manifest.engine == engine)
        and (at is None or f.manifest.created_at <= at)
    ]
    if not candidates:
        raise BackupError(
            "no database backup to restore"
            + (f" made at or before {at.isoformat()}" if at else "")
            + f" at the targets ({len(found)} backups found)"
        )
    return max(candidates, key=lambda f: (f.manifest.created_at, f.manifest.id))


def _live_state(settings: Settings) -> str | None:
    """What makes the home a live instance (None: nothing to overwrite)."""
    db = settings.home / "edgeplane.db"
    if settings.database_url is None and db.is_file() and db.stat().st_size > 0:
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                found = conn.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type='table'"
                ).fetchone()
            finally:
                conn.close()
        except sqlite3.Error:
            return f"{db} exists"
        if found and found[0]:
            return f"{db} holds a control plane's state"
    return None


def _running(settings: Settings) -> str | None:
    from edgeplane.cli.supervise import UP_LOCK
    from edgeplane.node.agent.lock import LockHeld, PidLock

    path = settings.home / UP_LOCK
    if not path.exists():
        return None
    lock = PidLock(path)
    try:
        lock.acquire()
    except LockHeld as exc:
        return f"edgeplane up is running on {settings.home} ({exc})"
    except OSError:
        return None
    lock.release()
    return None


def _move_aside(settings: Settings) -> Path:
    aside = settings.home / f"before-restore-{utcnow():%Y%m%dT%H%M%SZ}"
    aside.mkdir(mode=0o700)
    for name in ("edgeplane.db", "edgeplane.db-wal", "edgeplane.db-shm", *HOME_FILES):
        path = settings.home / name
        if path.exists():
            os.replace(path, aside / name)
    return aside


def _install(settings: Settings, db_file: Path | None, unpacked: Path) -> None:
    home = settings.home
    for name in HOME_FILES:
        src = unpacked / "home" / name
        if src.is_file():
            tmp = home / f".{name}.restore"
            shutil.copyfile(src, tmp)
            os.chmod(tmp, 0o600)
            os.replace(tmp, home / name)
    if db_file is not None:
        for suffix in ("-wal", "-shm"):
            (home / f"edgeplane.db{suffix}").unlink(missing_ok=True)
        os.replace(db_file, home / "edgeplane.db")


def restore(
    settings: Settings,
    *,
    backup_id: str | None = None,
    at: datetime | None = None,
    source: str | None = None,
    key_file: Path | None = None,
    force: bool = False,
    pg_data: Path | None = None,
    pg_port: int | None = None,
) -> Restored:
    started = time.monotonic()
    running = _running(settings) if settings.home.exists() else None
    if running:
        raise BackupError(f"{running}: stop it before restoring")
    live = _live_state(settings)
    if live and not force:
        raise BackupError(
            f"{live}: restoring would replace it; pass --force to move it aside first"
        )
    key = keys.load(settings, key_file=key_file)
    settings.home.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.home, 0o700)
    with locations.opened(settings, source) as targets, workdir(settings) as work:
        found = catalog.scan(targets)
        engine = (
            None
            if backup_id
            else (
                "postgresql"
                if (settings.database_url or "").startswith("postgresql") or pg_data
                else "sqlite"
            )
        )
        if engine == "postgresql" and at is not None:
            from edgeplane.backup import pg_backup

            entry = pg_backup.choose_for_time(found, at)
        else:
            entry = choose(found, backup_id, at, engine)
        manifest = entry.manifest
        if manifest.kind == "config":
            raise BackupError(
                f"{manifest.id} is a configuration backup: `edgeplane backup export-config "
                f"{manifest.id} DIR` writes its files for `edgeplane apply`"
            )
        if manifest.key_id != key.key_id:
            raise BackupError(
                f"backup {manifest.id} was made with another backup key (key id "
                f"{manifest.key_id}); the key given ({key.source}) has id {key.key_id}"
            )
        chain = fetch.chain_of(manifest, found)
        prefer = source and targets[-1].name
        notes: list[str] = []
        if manifest.engine == "postgresql":
            from edgeplane.backup import pg_backup

            if pg_data is None:
                raise BackupError(
                    "pg_data: a PostgreSQL backup is restored into a new data directory "
                    "(--pg-data DIR)"
                )
            unpacked = pg_backup.restore_into(
                chain, targets, key, work, pg_data, at=at, port=pg_port, notes=notes
            )
            db_file = None
            database = str(pg_data)
        else:
            db_file, unpacked = fetch.rebuild_sqlite(chain, targets, key, work, prefer)
            facts = sqlite.facts(db_file)
            if facts["integrity"] != "ok":
                raise BackupError(
                    f"the restored database fails its integrity check: {facts['integrity']}"
                )
            database = str(settings.home / "edgeplane.db")
        aside = _move_aside(settings) if live else None
        _install(settings, db_file, unpacked)
        if not keys.key_path(settings).exists() and key_file is not None:
            keys.write(keys.key_path(settings), key_file.read_text())
    return Restored(
        backup=manifest.id,
        chain=[f.manifest.id for f in chain],
        revision=manifest.revision,
        created_at=manifest.created_at,
        home=str(settings.home),
        database=database,
        moved_aside=str(aside) if aside else None,
        seconds=time.monotonic() - started,
        notes=notes,
    )
