"""PostgreSQL backups as the backup package makes, verifies and restores them, on the tools of
``edgeplane.backup.postgres`` (``pg_basebackup``, ``pg_receivewal``, recovery):

- a **full** is a base backup (``pg/``: ``base.tar.gz``, ``pg_wal.tar.gz``,
  ``backup_manifest``); its manifest ``covers`` the WAL positions and the start time;
- an **incremental** is the WAL streamed since the previous backup of the chain (``wal/``),
  up to a ``pg_switch_wal()`` made for it; with no WAL archiver (``backup_wal_dir`` unset) or no
  full to extend, a full is made instead;
- a **restore** rebuilds a data directory from a full and the WAL of the incrementals after it,
  up to a point in time, checks it, and stops the server (the operator starts it);
- a **verification** does the same into a scratch directory and reads it.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from edgeplane.backup import archive, catalog, checks, fetch, keys, pitr, postgres
from edgeplane.backup.catalog import Found
from edgeplane.backup.errors import BackupError
from edgeplane.backup.manifest import Manifest
from edgeplane.backup.seal import seal
from edgeplane.backup.targets import Target
from edgeplane.backup.wal_archive import WalArchiver, switch_wal
from edgeplane.settings import Settings
from edgeplane.store import migrate
from edgeplane.store.db import Database
from edgeplane.store.tables import utcnow

_archivers: dict[tuple[str, str], WalArchiver] = {}
_lock = threading.Lock()


def archiver(db: Database, settings: Settings) -> WalArchiver | None:
    """This process's WAL archiver for the database (started on first use), if configured."""
    if not settings.backup_wal_dir:
        return None
    key = (db.url, str(Path(settings.backup_wal_dir).resolve()))
    with _lock:
        found = _archivers.get(key)
        if found is None:
            found = WalArchiver(db.url, Path(key[1]))
            _archivers[key] = found
        if not found.running:
            found.start()
        return found


def stop_archivers() -> None:
    """Stop this process's archivers (the control plane stops; their slots stay)."""
    with _lock:
        for found in _archivers.values():
            found.stop()
        _archivers.clear()


def make(
    db: Database, settings: Settings, key: keys.BackupKey, kind: str, work: Path
) -> tuple[Path, Manifest]:
    from edgeplane.backup.manifest import new_id

    url = make_url(db.url)
    where = {"database": url.database or "postgres", "user": url.username or "postgres"}
    revision = db.current_revision()  # the backup holds at least this
    schema = migrate.current(db.engine) or ""
    wal = archiver(db, settings)
    parent = (
        catalog.newest(db, ("full", "incremental"), "postgresql") if kind == "incremental" else None
    )
    if kind == "incremental" and (parent is None or wal is None):
        kind, parent = "full", None
    members = archive.home_members(settings.home)
    if kind == "full":
        info = postgres.base_backup(db.url, work / "pg")
        members.update({f"pg/{name}": info.path / name for name in info.files})
        covers: dict[str, Any] = {
            **where,
            "start_lsn": info.start_lsn,
            "end_lsn": info.stop_lsn,
            "timeline": info.timeline,
            "from": info.consistent_from.isoformat(),
            "to": utcnow().isoformat(),
            "pg_major": info.pg_major,
        }
    else:
        assert parent is not None and wal is not None
        before = dict(parent.manifest.get("covers") or {})
        end = switch_wal(db.url)
        wal.wait_for(end)
        files = wal.collect(since_lsn=str(before["end_lsn"]))
        if not files:
            raise BackupError("the WAL archive holds nothing since the previous backup")
        members.update({f"wal/{p.name}": p for p in files})
        covers = {
            **before,
            "start_lsn": before["end_lsn"],
            "end_lsn": end,
            "to": utcnow().isoformat(),
        }
    return seal(
        work,
        key,
        members,
        backup_id=new_id(kind, utcnow()),
        kind=kind,
        engine="postgresql",
        revision=revision,
        schema=schema,
        parent=parent,
        covers=covers,
    )


def choose_for_time(found: dict[str, Found], at: datetime) -> Found:
    """For a point in time: the newest chain whose full starts before ``at``, to its newest
    incremental (the WAL past ``at`` does no harm: recovery stops there)."""
    fulls = [
        f
        for f in found.values()
        if f.manifest.engine == "postgresql"
        and f.manifest.kind == "full"
        and datetime.fromisoformat(str(f.manifest.covers.get("from"))) <= at
    ]
    if not fulls:
        raise BackupError(f"no PostgreSQL base backup was made before {at.isoformat()}")
    full = max(fulls, key=lambda f: f.manifest.created_at)
    chain = [f for f in found.values() if f.manifest.chain[:1] == [full.manifest.id]]
    return max(chain, key=lambda f: f.manifest.created_at) if chain else full


def _unpack_chain(
    chain: list[Found], targets: list[Target], key: keys.BackupKey, work: Path
) -> tuple[Path, list[Path], Path]:
    base: Path | None = None
    wal_dirs: list[Path] = []
    last = work
    for entry in chain:
        unpacked = fetch.open_backup(entry, targets, key, work)
        if entry.manifest.kind == "full":
            base = unpacked / "pg"
        else:
            wal_dirs.append(unpacked / "wal")
        last = unpacked
    if base is None:
        raise BackupError(f"backup {chain[-1].manifest.id} has no base backup before it")
    return base, wal_dirs, last


def _secret(unpacked: Path) -> str | None:
    path = unpacked / "home" / "secret.key"
    return path.read_text() if path.is_file() else None


def scratch_facts(
    settings: Settings, chain: list[Found], targets: list[Target], key: keys.BackupKey, work: Path
) -> dict[str, Any]:
    """Restore the chain into a scratch cluster and read what a verification checks."""
    base, wal_dirs, last = _unpack_chain(chain, targets, key, work)
    covers = chain[-1].manifest.covers
    with pitr.scratch_cluster(
        base, wal_dirs, user=str(covers.get("user", "postgres")),
        database=str(covers.get("database", "postgres")),
    ) as restored:  # fmt: skip
        return checks.database_facts(restored.url, _secret(last))


def restore_into(
    chain: list[Found],
    targets: list[Target],
    key: keys.BackupKey,
    work: Path,
    pg_data: Path,
    *,
    at: datetime | None,
    port: int | None,
    notes: list[str],
) -> Path:
    """Recover the chain into the new data directory ``pg_data``, check it, stop it; the
    unpacked last backup (the home's files)."""
    base, wal_dirs, last = _unpack_chain(chain, targets, key, work)
    manifest = chain[-1].manifest
    covers = manifest.covers
    database = str(covers.get("database", "postgres"))
    restored = pitr.restore_cluster(
        base,
        wal_dirs,
        pg_data,
        target_time=at,
        port=port,
        user=str(covers.get("user", "postgres")),
        database=database,
    )
    try:
        facts = checks.database_facts(restored.url, _secret(last))
        if facts["schema"] != manifest.schema:
            raise BackupError(
                f"the recovered database has schema {facts['schema']}, the backup {manifest.schema}"
            )
        if facts["secrets"]["failed"]:
            raise BackupError("stored secrets of the recovered database do not decrypt")
        reached = restored.reached_time.isoformat() if restored.reached_time else "the backup"
        notes.append(f"recovered to {reached} (revision {facts['revision']})")
    except BaseException:
        restored.discard()
        raise
    restored.stop()
    notes.append(f"start it: {restored.start_command()}")
    notes.append(
        f"then point EDGEPLANE_DATABASE_URL at its database {database!r} (its roles and "
        "passwords are the source's)"
    )
    return last
