"""A configuration backup's files, written out for ``edgeplane apply``."""

from __future__ import annotations

import shutil
from pathlib import Path

from edgeplane.backup import catalog, fetch, keys, locations
from edgeplane.backup.errors import BackupError
from edgeplane.backup.seal import workdir
from edgeplane.settings import Settings


def export(
    settings: Settings,
    backup_id: str,
    directory: Path,
    *,
    source: str | None = None,
    key_file: Path | None = None,
) -> list[Path]:
    key = keys.load(settings, key_file=key_file)
    with locations.opened(settings, source) as targets, workdir(settings) as work:
        found = catalog.scan(targets)
        entry = found.get(backup_id)
        if entry is None:
            raise BackupError(f"no reachable target holds backup {backup_id!r}")
        if entry.manifest.kind != "config":
            raise BackupError(f"{backup_id} is a database backup: edgeplane restore restores it")
        unpacked = fetch.open_backup(entry, targets, key, work)
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for path in sorted((unpacked / "config").glob("*.yaml")):
            dest = directory / path.name
            shutil.copyfile(path, dest)
            written.append(dest)
    return written
