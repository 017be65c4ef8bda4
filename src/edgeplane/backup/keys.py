"""The backup key: what encrypts every backup, kept apart from the control plane's own key.

It comes from ``EDGEPLANE_BACKUP_KEY`` (32 bytes in URL-safe base64, or a passphrase, which is
stretched with scrypt) or from ``$EDGEPLANE_HOME/backup.key``, created (mode 0600) by the first
backup. A backup holds the control plane's secret key (``secret.key``) inside its encrypted
payload, so the backup key alone restores everything: keep a copy of it off the machine.
The key id in every manifest is a fingerprint that tells which key a backup needs without
telling anything of the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from edgeplane.backup.errors import BackupError
from edgeplane.settings import Settings

KEY_FILE = "backup.key"


@dataclass(frozen=True)
class BackupKey:
    material: bytes  # 32 bytes
    source: str  # where it came from, for messages (never the key)

    @property
    def key_id(self) -> str:
        return hmac.new(self.material, b"edgeplane backup key id", hashlib.sha256).hexdigest()[:16]

    def derive(self, label: bytes) -> bytes:
        return hmac.new(self.material, b"edgeplane backup " + label, hashlib.sha256).digest()

    def __repr__(self) -> str:  # never the material
        return f"BackupKey(id={self.key_id}, source={self.source})"


def from_text(text: str, source: str) -> BackupKey:
    raw = text.strip()
    if not raw:
        raise BackupError(f"the backup key in {source} is empty")
    try:
        decoded = base64.urlsafe_b64decode(raw.encode())
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) == 32:
        return BackupKey(decoded, source)
    stretched = hashlib.scrypt(raw.encode(), salt=b"edgeplane backup key", n=2**14, r=8, p=1)
    return BackupKey(stretched[:32], source)


def key_path(settings: Settings) -> Path:
    return settings.home / KEY_FILE


def generate() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def load(settings: Settings, *, create: bool = False, key_file: Path | None = None) -> BackupKey:
    """The backup key: ``key_file`` if given, else the settings' key, else the home's file
    (created when ``create``)."""
    if key_file is not None:
        if not key_file.is_file():
            raise BackupError(f"no backup key file at {key_file}")
        return from_text(key_file.read_text(), str(key_file))
    if settings.backup_key:
        return from_text(settings.backup_key, "EDGEPLANE_BACKUP_KEY")
    path = key_path(settings)
    if path.is_file():
        return from_text(path.read_text(), str(path))
    if not create:
        raise BackupError(
            f"no backup key: set EDGEPLANE_BACKUP_KEY or pass --key-file (the key of the "
            f"backups; a control plane keeps it in {path})"
        )
    write(path, generate())
    return from_text(path.read_text(), str(path))


def write(path: Path, text: str) -> None:
    """Write a key file with mode 0600, never replacing one that exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text.strip() + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
