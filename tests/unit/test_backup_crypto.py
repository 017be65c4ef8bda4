"""The encrypted payload: round trips, and every kind of damage or wrong key refused with a
message that names it (and never the key)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from edgeplane.backup import crypto, keys
from edgeplane.backup.errors import BackupError

KEY = keys.from_text(keys.generate(), "test")
OTHER = keys.from_text("a passphrase, stretched", "other")


def sealed(tmp_path: Path, size: int) -> tuple[Path, bytes]:
    plain = os.urandom(size)
    src = tmp_path / "plain"
    src.write_bytes(plain)
    dst = tmp_path / "sealed"
    digest = crypto.encrypt_file(src, dst, KEY)
    assert digest == crypto.sha256_of(dst)
    return dst, plain


@pytest.mark.parametrize("size", [0, 1, crypto.CHUNK, crypto.CHUNK * 2 + 17])
def test_round_trip(tmp_path: Path, size: int) -> None:
    dst, plain = sealed(tmp_path, size)
    out = tmp_path / "out"
    crypto.decrypt_file(dst, out, KEY)
    assert out.read_bytes() == plain
    assert size < 64 or plain[:64] not in dst.read_bytes()


def test_a_flipped_byte_fails_authentication(tmp_path: Path) -> None:
    dst, _ = sealed(tmp_path, 3000)
    data = bytearray(dst.read_bytes())
    data[len(data) // 2] ^= 0x01
    dst.write_bytes(bytes(data))
    with pytest.raises(BackupError, match="damaged: chunk 0 fails its authentication"):
        crypto.decrypt_file(dst, tmp_path / "out", KEY)


def test_a_truncated_payload_is_refused(tmp_path: Path) -> None:
    dst, _ = sealed(tmp_path, crypto.CHUNK * 2 + 5)
    data = dst.read_bytes()
    # drop the last chunk whole: every chunk left authenticates, but none says it is the last
    first = len(crypto.MAGIC) + 32
    (n0,) = struct.unpack(">I", data[first : first + 4])
    second = first + 4 + n0
    (n1,) = struct.unpack(">I", data[second : second + 4])
    dst.write_bytes(data[: second + 4 + n1])
    with pytest.raises(BackupError, match=r"chunk 1 fails|truncated"):
        crypto.decrypt_file(dst, tmp_path / "out", KEY)


def test_the_wrong_key_is_named_by_its_id_before_decrypting(tmp_path: Path) -> None:
    dst, _ = sealed(tmp_path, 100)
    with pytest.raises(BackupError) as err:
        crypto.decrypt_file(dst, tmp_path / "out", OTHER)
    assert KEY.key_id in str(err.value) and OTHER.key_id in str(err.value)
    assert not (tmp_path / "out").exists() or (tmp_path / "out").read_bytes() == b""


def test_not_a_backup(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"hello world, not a backup at all" * 3)
    with pytest.raises(BackupError, match="not an Edgeplane backup"):
        crypto.decrypt_file(junk, tmp_path / "out", KEY)


def test_key_sources(tmp_path: Path) -> None:
    text = keys.generate()
    assert keys.from_text(text, "a").material == keys.from_text(text + "\n", "b").material
    assert len(keys.from_text("correct horse battery staple", "p").material) == 32
    assert "material" not in repr(KEY) and KEY.key_id in repr(KEY)
    with pytest.raises(BackupError, match="empty"):
        keys.from_text("  ", "EDGEPLANE_BACKUP_KEY")
