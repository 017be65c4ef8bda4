"""Secrets at rest: private keys and the internal CA are stored encrypted (Fernet).

The key comes from ``EDGEPLANE_SECRET_KEY`` (a Fernet key, or any passphrase, which is
stretched into one) or from ``$EDGEPLANE_HOME/secret.key``, created with mode 0600 on first
use. The process that opens the database makes the box (``SecretBox.from_settings``) and hands
it to the ``Database``; services reach it as ``tx.secrets``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from edgeplane.settings import Settings


class SecretError(Exception):
    """A secret could not be decrypted (wrong key); the message never holds the secret."""


def _fernet_key(material: str) -> bytes:
    raw = material.strip().encode()
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32:
            return raw
    except (ValueError, TypeError):
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest())


def _key_from_file(path: Path) -> bytes:
    if path.exists():
        return _fernet_key(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key + b"\n")
    try:
        os.link(tmp, path)  # never replace a key another process created meanwhile
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return _fernet_key(path.read_text())


class SecretBox:
    """Encrypts and decrypts short secrets; decryptions are cached (they are immutable)."""

    def __init__(self, key: str | bytes) -> None:
        self._key = _fernet_key(key.decode() if isinstance(key, bytes) else key)
        self._fernet = Fernet(self._key)
        self._plain: dict[str, str] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        if settings.secret_key:
            return cls(settings.secret_key)
        return cls(_key_from_file(settings.secret_key_path))

    def derive(self, label: str) -> bytes:
        """32 bytes for one purpose (``label``), derived from the box's key: the same on every
        replica with the same key, and telling nothing about the key or other labels."""
        return hmac.new(self._key, b"edgeplane derive " + label.encode(), hashlib.sha256).digest()

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        hit = self._plain.get(token)
        if hit is not None:
            return hit
        try:
            plain = self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretError(
                "a stored secret cannot be decrypted: EDGEPLANE_SECRET_KEY or "
                "$EDGEPLANE_HOME/secret.key is not the key it was encrypted with"
            ) from None
        with self._lock:
            if len(self._plain) > 100_000:
                self._plain.clear()
            self._plain[token] = plain
        return plain
