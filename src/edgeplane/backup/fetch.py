"""Reading backups back from the targets: download, check the checksum, decrypt, unpack, and
rebuild what a chain of backups holds."""

from __future__ import annotations

import shutil
from pathlib import Path

from edgeplane.backup import archive, crypto, sqlite
from edgeplane.backup.catalog import Found
from edgeplane.backup.errors import BackupError
from edgeplane.backup.keys import BackupKey
from edgeplane.backup.manifest import Manifest, payload_name
from edgeplane.backup.targets import Target


def download(target: Target, manifest: Manifest, work: Path) -> Path:
    """The payload of ``manifest`` from ``target``, its size and SHA-256 checked."""
    local = work / f"{manifest.id}.{target.name}.backup"
    target.get(payload_name(manifest.id), local)
    size = local.stat().st_size
    if size != manifest.size or crypto.sha256_of(local) != manifest.sha256:
        local.unlink(missing_ok=True)
        raise BackupError(
            f"backup {manifest.id} at {target.name} is damaged: its "
            + ("size" if size != manifest.size else "SHA-256")
            + " does not match its manifest"
        )
    return local


def open_backup(
    found: Found, targets: list[Target], key: BackupKey, work: Path, prefer: str | None = None
) -> Path:
    """Download (from the first location whose copy is intact), decrypt and unpack one backup;
    the directory it was unpacked into."""
    by_name = {t.name: t for t in targets}
    order = sorted(found.locations, key=lambda n: (n != prefer, n))
    errors = []
    for name in order:
        target = by_name.get(name)
        if target is None:
            continue
        try:
            payload = download(target, found.manifest, work)
        except BackupError as exc:
            errors.append(str(exc))
            continue
        plain = work / f"{found.manifest.id}.tar.gz"
        try:
            crypto.decrypt_file(payload, plain, key, f"backup {found.manifest.id}")
        finally:
            payload.unlink(missing_ok=True)
        dest = work / found.manifest.id
        dest.mkdir()
        archive.unpack(plain, dest)
        plain.unlink()
        return dest
    raise BackupError("; ".join(errors) or f"backup {found.manifest.id} is at no reachable target")


def chain_of(manifest: Manifest, found: dict[str, Found]) -> list[Found]:
    """The backups a restore of ``manifest`` needs, the full first."""
    out = []
    for backup_id in [*manifest.chain, manifest.id]:
        entry = found.get(backup_id)
        if entry is None:
            raise BackupError(
                f"backup {manifest.id} needs {backup_id}, which no reachable target holds"
            )
        out.append(entry)
    return out


def rebuild_sqlite(
    chain: list[Found], targets: list[Target], key: BackupKey, work: Path, prefer: str | None = None
) -> tuple[Path, Path]:
    """Rebuild the database file of a SQLite chain; (the file, the last backup's unpacked
    directory, which holds the home's files)."""
    db = work / "restored.db"
    last = work
    for entry in chain:
        unpacked = open_backup(entry, targets, key, work, prefer)
        if entry.manifest.kind == "full":
            shutil.move(unpacked / "db" / "edgeplane.db", db)
        else:
            if not db.exists():
                raise BackupError(f"incremental {entry.manifest.id} has no full before it")
            sqlite.apply_diff(db, unpacked / "db" / "pages.bin")
        last = unpacked
    final = chain[-1].manifest
    if final.db_sha256 and crypto.sha256_of(db) != final.db_sha256:
        raise BackupError(f"backup {final.id} does not rebuild the database it recorded")
    return db, last
