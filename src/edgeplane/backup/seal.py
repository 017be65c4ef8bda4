"""Sealing a backup's files (pack, encrypt, checksum, describe in a manifest), and the work
directory everything is made and read in."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgeplane.backup import archive, crypto, keys, locations
from edgeplane.backup.manifest import Manifest, payload_name
from edgeplane.settings import Settings
from edgeplane.store.backup_tables import BackupRow
from edgeplane.store.tables import utcnow
from edgeplane.version import __version__


@contextmanager
def workdir(settings: Settings) -> Iterator[Path]:
    base = locations.state_dir(settings) / "work"
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(locations.state_dir(settings), 0o700)
    path = Path(tempfile.mkdtemp(dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def seal(
    work: Path,
    key: keys.BackupKey,
    members: dict[str, Path],
    *,
    backup_id: str,
    kind: str,
    engine: str,
    revision: int,
    schema: str,
    parent: BackupRow | None = None,
    **extra: object,
) -> tuple[Path, Manifest]:
    plain = work / "payload.tar.gz"
    files = archive.pack(members, plain)
    sealed = work / payload_name(backup_id)
    digest = crypto.encrypt_file(plain, sealed, key)
    plain.unlink()
    chain = [*(parent.manifest.get("chain") or []), parent.id] if parent is not None else []
    manifest = Manifest(
        id=backup_id,
        kind=kind,
        engine=engine,
        created_at=utcnow(),
        revision=revision,
        schema=schema,
        size=sealed.stat().st_size,
        sha256=digest,
        key_id=key.key_id,
        parent=parent.id if parent is not None else None,
        chain=chain,
        files=files,
        version=__version__,
        host=socket.gethostname(),
        **extra,  # type: ignore[arg-type]
    )
    return sealed, manifest
