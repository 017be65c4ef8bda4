"""The encrypted payload of a backup: AES-256-GCM in 1 MiB chunks, streamed.

Layout: ``MAGIC`` (10 bytes), the key id (16 ASCII hex), a random 16-byte salt, then chunks,
each a 4-byte big-endian length and the chunk's ciphertext with its tag. The file key is
derived from the backup key and the salt; chunk ``i`` has nonce ``i`` (a 12-byte counter), and
its additional data binds the header, ``i`` and whether it is the last chunk, so chunks cannot
be reordered, dropped or appended, and a truncated file fails. The SHA-256 of the whole file is
computed while writing; the manifest keeps it, so a flipped byte is caught before decrypting.
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edgeplane.backup.errors import BackupError
from edgeplane.backup.keys import BackupKey

MAGIC = b"EPBACKUP1\n"
CHUNK = 1 << 20
_TAG = 16
_HEADER = len(MAGIC) + 16 + 16


def _aad(header: bytes, index: int, last: bool) -> bytes:
    return header + struct.pack(">Q?", index, last)


def _nonce(index: int) -> bytes:
    return struct.pack(">IQ", 0, index)


def encrypt_file(src: Path, dst: Path, key: BackupKey) -> str:
    """Encrypt ``src`` into ``dst``; the SHA-256 (hex) of ``dst``."""
    salt = os.urandom(16)
    header = MAGIC + key.key_id.encode() + salt
    aead = AESGCM(key.derive(b"file " + salt))
    digest = hashlib.sha256(header)
    with src.open("rb") as fin, dst.open("wb") as fout:
        fout.write(header)
        index = 0
        chunk = fin.read(CHUNK)
        while True:
            following = fin.read(CHUNK)
            last = not following
            sealed = aead.encrypt(_nonce(index), chunk, _aad(header, index, last))
            framed = struct.pack(">I", len(sealed)) + sealed
            fout.write(framed)
            digest.update(framed)
            if last:
                break
            chunk, index = following, index + 1
        fout.flush()
        os.fsync(fout.fileno())
    return digest.hexdigest()


def key_id_of(path: Path) -> str:
    with path.open("rb") as fh:
        header = fh.read(_HEADER)
    if len(header) < _HEADER or not header.startswith(MAGIC):
        raise BackupError(f"{path.name} is not an Edgeplane backup payload")
    return header[len(MAGIC) : len(MAGIC) + 16].decode("ascii", "replace")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def decrypt_file(src: Path, dst: Path, key: BackupKey, what: str = "the backup") -> None:
    """Decrypt ``src`` into ``dst``; BackupError for a wrong key or a damaged payload."""
    found = key_id_of(src)
    if found != key.key_id:
        raise BackupError(
            f"{what} was encrypted with another backup key (key id {found}); the key given "
            f"({key.source}) has id {key.key_id}"
        )
    with src.open("rb") as fin, dst.open("wb") as fout:
        header = fin.read(_HEADER)
        aead = AESGCM(key.derive(b"file " + header[-16:]))
        index = 0
        while True:
            size_bytes = fin.read(4)
            if len(size_bytes) < 4:
                raise BackupError(f"{what} is truncated (chunk {index} missing)")
            (size,) = struct.unpack(">I", size_bytes)
            sealed = fin.read(size)
            if len(sealed) < size or size < _TAG:
                raise BackupError(f"{what} is truncated (chunk {index} cut short)")
            last = fin.peek(1) == b"" if hasattr(fin, "peek") else False
            try:
                plain = aead.decrypt(_nonce(index), sealed, _aad(header, index, last))
            except InvalidTag:
                raise BackupError(
                    f"{what} is damaged: chunk {index} fails its authentication"
                ) from None
            fout.write(plain)
            if last:
                break
            index += 1
