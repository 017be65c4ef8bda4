"""Making a backup: a consistent copy of the state, packed, encrypted, checksummed, stored at
every target that takes its kind, and recorded in the catalog.

- **full**: SQLite, a copy by the online backup API; PostgreSQL, a base backup
  (``pg_basebackup``). With the home's secret key and tokens.
- **incremental**: SQLite, the pages changed since the previous backup of the chain;
  PostgreSQL, the WAL streamed since the previous backup (``backup_wal_dir``). Without a chain
  to extend (no full yet, or the previous backup's page digests lost), a full is made instead.
- **config**: every project's configuration as ``edgeplane export`` writes it, only when it
  changed since the last configuration backup.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml
from sqlalchemy import select

from edgeplane.backup import archive, catalog, crypto, keys, locations, sqlite
from edgeplane.backup.errors import BackupError
from edgeplane.backup.manifest import Manifest, manifest_name, new_id, payload_name
from edgeplane.backup.seal import seal, workdir
from edgeplane.backup.targets import Target
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.store.backup_tables import BackupRow
from edgeplane.store.db import Database
from edgeplane.store.tables import ProjectRow, utcnow

log = logging.getLogger("edgeplane.backup")
MAX_CHAIN = 30  # incrementals after a full before the next one is a full


@dataclass
class Made:
    manifest: Manifest
    locations: list[str]
    failures: dict[str, str]  # target -> why it does not hold the backup


def engine_of(db: Database) -> str:
    return "postgresql" if db.engine.dialect.name == "postgresql" else "sqlite"


def _digests_path(settings: Settings, backup_id: str) -> Path:
    return locations.state_dir(settings) / "pages" / backup_id


def _sqlite_path(db: Database) -> Path:
    name = db.engine.url.database
    if not name:
        raise BackupError("an in-memory database cannot be backed up")
    return Path(name)


def _chain_tip(db: Database, settings: Settings) -> BackupRow | None:
    """The newest SQLite backup an incremental can extend (its page digests kept)."""
    row = catalog.newest(db, ("full", "incremental"), "sqlite")
    if row is None or not _digests_path(settings, row.id).is_file():
        return None
    chain = list(row.manifest.get("chain") or [])
    if len(chain) >= MAX_CHAIN:
        return None
    return row


def store(
    targets: list[Target], kind: str, payload: Path, manifest: Manifest
) -> tuple[list[str], dict[str, str]]:
    """Upload the payload, then the manifest, to every target that takes ``kind``."""
    stored, failures = [], {}
    for target in targets:
        if kind not in target.kinds:
            continue
        try:
            target.put(payload, payload_name(manifest.id))
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
                fh.write(manifest.to_json())
            try:
                target.put(Path(fh.name), manifest_name(manifest.id))
            finally:
                os.unlink(fh.name)
            stored.append(target.name)
        except BackupError as exc:
            failures[target.name] = str(exc)
            log.warning("backup %s not stored at %s: %s", manifest.id, target.name, exc)
    if not stored:
        raise BackupError(
            f"backup {manifest.id} could not be stored anywhere: "
            + "; ".join(f"{k}: {v}" for k, v in failures.items())
        )
    return stored, failures


def _sqlite(
    db: Database, settings: Settings, key: keys.BackupKey, kind: str, work: Path
) -> tuple[Path, Manifest]:
    parent = _chain_tip(db, settings) if kind == "incremental" else None
    if kind == "incremental" and parent is None:
        kind = "full"
    backup_id = new_id(kind, utcnow())
    copy = work / "edgeplane.db"
    sqlite.online_copy(_sqlite_path(db), copy)
    facts = sqlite.facts(copy)
    if facts["integrity"] != "ok":
        raise BackupError(f"the database fails its integrity check: {facts['integrity']}")
    digests = sqlite.page_digests(copy, key.derive(b"pages"))
    members = archive.home_members(settings.home)
    if parent is not None:
        diff = work / "pages.bin"
        sqlite.write_diff(
            copy, _digests_path(settings, parent.id).read_bytes(), key.derive(b"pages"), diff
        )
        members["db/pages.bin"] = diff
    else:
        members["db/edgeplane.db"] = copy
    sealed, manifest = seal(
        work,
        key,
        members,
        backup_id=backup_id,
        kind=kind,
        engine="sqlite",
        revision=int(facts["revision"] or 0),  # type: ignore[call-overload]
        schema=str(facts["schema"] or ""),
        parent=parent,
        rows=facts["rows"],
        db_sha256=crypto.sha256_of(copy),
    )
    path = _digests_path(settings, backup_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(digests)
    return sealed, manifest


def config_documents(db: Database, settings: Settings) -> dict[str, str]:
    """Every project's configuration as YAML, by project."""
    from edgeplane.iac import service as iac

    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        projects = list(tx.session.scalars(select(ProjectRow.id).order_by(ProjectRow.id)))
    out = {}
    for project in projects:
        doc = iac.export(db, LOCAL, project, settings)
        out[project] = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    return out


def _config(
    db: Database, settings: Settings, key: keys.BackupKey, work: Path
) -> tuple[Path, Manifest] | None:
    revision = db.current_revision()
    docs = config_documents(db, settings)
    digest = hashlib.sha256("\n".join(f"{p}\n{docs[p]}" for p in sorted(docs)).encode()).hexdigest()
    last = catalog.newest(db, ("config",))
    if last is not None and (last.manifest.get("covers") or {}).get("digest") == digest:
        return None
    members = {}
    for project, text in docs.items():
        path = work / f"{project}.yaml"
        path.write_text(text)
        members[f"config/{project}.yaml"] = path
    backup_id = new_id("config", utcnow())
    return seal(
        work,
        key,
        members,
        backup_id=backup_id,
        kind="config",
        engine="config",
        revision=revision,
        schema="",
        rows={"projects": len(docs)},
        covers={"digest": digest},
    )


def create(db: Database, settings: Settings, kind: str = "full") -> Made | None:
    """Make one backup of ``kind`` and store it; None when a config backup finds nothing new."""
    if kind not in ("full", "incremental", "config"):
        raise BackupError(f"kind: {kind!r} is not one of full, incremental, config")
    key = keys.load(settings, create=True)
    with locations.opened(settings) as targets, workdir(settings) as work:
        if kind == "config":
            made = _config(db, settings, key, work)
            if made is None:
                return None
        elif engine_of(db) == "postgresql":
            from edgeplane.backup import pg_backup

            made = pg_backup.make(db, settings, key, kind, work)
        else:
            made = _sqlite(db, settings, key, kind, work)
        sealed, manifest = made
        stored, failures = store(targets, manifest.kind, sealed, manifest)
    catalog.record(db, settings, manifest, stored)
    log.info(
        "backup %s (%s, %d bytes) stored at %s",
        manifest.id,
        manifest.kind,
        manifest.size,
        ", ".join(stored),
    )
    return Made(manifest, stored, failures)
