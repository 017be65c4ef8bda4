"""A backup's payload before encryption: a gzip'd tar of named files, and back."""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath

from edgeplane.backup.errors import BackupError

# The files of the home a backup carries: the control plane's secret key (stored secrets
# decrypt with it), and the tokens ``edgeplane up`` wrote (the database keeps only their
# hashes, so these copies are what a restored machine's operator and node read).
HOME_FILES = ("secret.key", "admin-token", "edge-token", "metrics-token")


def pack(members: dict[str, Path], out: Path) -> list[str]:
    """Write ``members`` (archive name -> file) into ``out``; the names written."""
    with tarfile.open(out, "w:gz", compresslevel=6) as tar:
        for name in sorted(members):
            tar.add(members[name], arcname=name, recursive=False)
    return sorted(members)


def unpack(archive: Path, dest: Path) -> list[str]:
    """Extract into ``dest`` (regular files and directories only, no path leaves ``dest``)."""
    names = []
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                path = PurePosixPath(member.name)
                if path.is_absolute() or ".." in path.parts:
                    raise BackupError(f"a backup names a file outside it: {member.name!r}")
                if not (member.isfile() or member.isdir()):
                    raise BackupError(f"a backup holds something not a file: {member.name!r}")
                names.append(member.name)
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupError(f"a backup's archive cannot be read: {exc}") from None
    return names


def home_members(home: Path) -> dict[str, Path]:
    return {f"home/{name}": home / name for name in HOME_FILES if (home / name).is_file()}
