"""Where backups go: ``$EDGEPLANE_HOME/backups`` (target ``local``) and the targets of
``EDGEPLANE_BACKUP_TARGETS`` (another host over SFTP, a mounted directory...)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from edgeplane.backup.errors import BackupError
from edgeplane.backup.targets import LocalTarget, Target, parse_targets
from edgeplane.settings import Settings


def local_dir(settings: Settings) -> Path:
    return settings.home / "backups"


def state_dir(settings: Settings) -> Path:
    """What the making of backups keeps between runs (page digests of SQLite backups)."""
    return settings.home / "backup-state"


def configured(settings: Settings, extra: str | None = None) -> list[Target]:
    """The local target, then the configured ones (and ``extra``, a restore's ``--from``)."""
    found: list[Target] = [LocalTarget(local_dir(settings), name="local")]
    for text in (settings.backup_targets, extra):
        if text:
            found.extend(parse_targets(text))
    names = [t.name for t in found]
    for name in names:
        if names.count(name) > 1:
            raise BackupError(f"two backup targets are named {name!r}: give one ?name=...")
    return found


@contextmanager
def opened(settings: Settings, extra: str | None = None) -> Iterator[list[Target]]:
    targets = configured(settings, extra)
    try:
        yield targets
    finally:
        for target in targets:
            with suppress(Exception):  # closing must not hide what happened
                target.close()
