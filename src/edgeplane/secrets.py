"""Secrets at rest: private keys, the internal CA, ACME account keys, DNSSEC keys and the
secrets of notification channels are stored encrypted (Fernet), under a keyring.

**The keyring** is text, one key per line (a Fernet key, or any passphrase, which is stretched
into one); blank lines and ``#`` comments are ignored. The first key is the *primary*: it
encrypts. Every key decrypts (``MultiFernet``). A line ``derive=KEY`` names the key that
``derive`` uses (values derived from the keyring, such as TLS session ticket keys and IaC
digests, must not change when the primary does); without one, the last key derives (with one
key, as before keyrings existed, that key).

It comes from ``EDGEPLANE_SECRET_KEY`` (one key, or keyring text with newlines) or from the
file ``$EDGEPLANE_HOME/secret.key``, created with one key and mode 0600 on first use. A box on
a file reads it again when it changes (checked at most once a second, and at once when a value
does not decrypt), so processes that share the file (``serve --workers``, replicas on one
host or a shared volume) learn a new key without restarting.

**Rotation with no downtime** (``edgeplane.services.secret_keys``): add the new key as a
secondary (every process learns it: they all decrypt with it), make it primary (new values are
encrypted with it), re-encrypt what is stored (a background job), then retire the old key when
no value uses it. The process that opens the database makes the box
(``SecretBox.from_settings``) and hands it to the ``Database``; services reach it as
``tx.secrets``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from edgeplane.settings import Settings

DERIVE = "derive="
RELOAD_EVERY_S = 1.0
HEADER = (
    "# Edgeplane secret keyring: one key per line. The first encrypts; every key decrypts.\n"
    "# derive=KEY names the key of derived values (TLS ticket keys); edit with care:\n"
    "# edgeplane secrets rotate-key | add-key | promote-key | retire-key do it safely.\n"
)


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


def key_id(fernet_key: bytes) -> str:
    """A key's public name: says which key a value needs, tells nothing of the key."""
    return hashlib.sha256(b"edgeplane secret key id " + fernet_key).hexdigest()[:12]


@dataclass(frozen=True)
class Keyring:
    """Fernet keys (base64 bytes), the primary first, and the key that derives."""

    keys: tuple[bytes, ...]
    derive_key: bytes

    @classmethod
    def parse(cls, text: str) -> Keyring:
        keys: list[bytes] = []
        derive: bytes | None = None
        for line in text.splitlines():
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            if stripped.startswith(DERIVE):
                derive = _fernet_key(stripped[len(DERIVE) :])
                continue
            key = _fernet_key(stripped)
            if key not in keys:
                keys.append(key)
        if not keys:
            raise SecretError("the secret keyring holds no key")
        return cls(tuple(keys), derive if derive is not None else keys[-1])

    @property
    def ids(self) -> list[str]:
        return [key_id(k) for k in self.keys]

    @property
    def primary_id(self) -> str:
        return key_id(self.keys[0])

    @property
    def derive_id(self) -> str:
        return key_id(self.derive_key)

    def text(self) -> str:
        lines = [k.decode() for k in self.keys]
        if len(self.keys) > 1 or self.derive_key != self.keys[-1]:
            lines.append(DERIVE + self.derive_key.decode())
        return HEADER + "\n".join(lines) + "\n"

    def find(self, kid: str) -> bytes:
        for key in self.keys:
            if key_id(key) == kid:
                return key
        raise KeyError(kid)


def _write_new(path: Path, text: str) -> None:
    """Create ``path`` (mode 0600) with ``text`` unless it exists (never replace a key another
    process created meanwhile)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def write_keyring(path: Path, ring: Keyring) -> None:
    """Replace the keyring file atomically (mode 0600)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(ring.text())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _key_from_file(path: Path) -> str:
    if not path.exists():
        _write_new(path, Fernet.generate_key().decode() + "\n")
    return path.read_text()


class SecretBox:
    """Encrypts and decrypts short secrets under a keyring; decryptions are cached (they are
    immutable). ``path``: the keyring file it came from, read again when it changes."""

    def __init__(self, key: str | bytes, *, path: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._plain: dict[str, str] = {}
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._checked = 0.0
        self._set(Keyring.parse(key.decode() if isinstance(key, bytes) else key))
        if path is not None:
            self._stamp = self._file_stamp()

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        if settings.secret_key:
            return cls(settings.secret_key)
        path = settings.secret_key_path
        return cls(_key_from_file(path), path=path)

    def _set(self, ring: Keyring) -> None:
        self._ring = ring
        self._fernet = MultiFernet([Fernet(k) for k in ring.keys])
        self._signers = [(key_id(k), base64.urlsafe_b64decode(k)[:16]) for k in ring.keys]

    def _file_stamp(self) -> tuple[int, int, int] | None:
        assert self.path is not None
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def reload(self, *, force: bool = False) -> bool:
        """Read the keyring file again if it changed (at most once a second unless
        ``force``); whether the keyring changed."""
        if self.path is None:
            return False
        now = time.monotonic()
        if not force and now - self._checked < RELOAD_EVERY_S:
            return False
        self._checked = now
        stamp = self._file_stamp()
        if stamp is None or stamp == self._stamp:
            return False
        with self._lock:
            try:
                ring = Keyring.parse(self.path.read_text())
            except (OSError, SecretError):
                return False  # a file being replaced, or emptied by mistake: keep ours
            self._stamp = stamp
            if ring == self._ring:
                return False
            self._set(ring)
        return True

    @property
    def keyring(self) -> Keyring:
        self.reload()
        return self._ring

    def derive(self, label: str) -> bytes:
        """32 bytes for one purpose (``label``), derived from the keyring's derivation key:
        the same on every replica with the same keyring, the same after the primary key
        changes, and telling nothing about the keys or other labels."""
        key = self.keyring.derive_key
        return hmac.new(key, b"edgeplane derive " + label.encode(), hashlib.sha256).digest()

    def encrypt(self, plain: str) -> str:
        self.reload()
        return self._fernet.encrypt(plain.encode()).decode()

    def key_of(self, token: str) -> str | None:
        """The id of the key that encrypted ``token`` (its signature checked, nothing
        decrypted), or None when no key of the keyring did."""
        try:
            raw = base64.urlsafe_b64decode(token.encode())
        except (ValueError, TypeError):
            return None
        if len(raw) < 57:
            return None
        body, mac = raw[:-32], raw[-32:]
        for kid, signing in self._signers:
            if hmac.compare_digest(hmac.new(signing, body, hashlib.sha256).digest(), mac):
                return kid
        return None

    def decrypt(self, token: str) -> str:
        hit = self._plain.get(token)
        if hit is not None:
            return hit
        self.reload()
        try:
            plain = self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            # a key added to the file a moment ago by another process: read it now
            if not self.reload(force=True):
                raise self._error() from None
            try:
                plain = self._fernet.decrypt(token.encode()).decode()
            except InvalidToken:
                raise self._error() from None
        with self._lock:
            if len(self._plain) > 100_000:
                self._plain.clear()
            self._plain[token] = plain
        return plain

    def reencrypt(self, token: str) -> str:
        """``token`` under the primary key (the same token when it is already)."""
        if self.key_of(token) == self._ring.primary_id:
            return token
        return self.encrypt(self.decrypt(token))

    @staticmethod
    def _error() -> SecretError:
        return SecretError(
            "a stored secret cannot be decrypted: no key of the keyring "
            "(EDGEPLANE_SECRET_KEY or $EDGEPLANE_HOME/secret.key) is the key it was "
            "encrypted with"
        )
