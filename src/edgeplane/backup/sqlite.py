"""SQLite: consistent online copies (the backup API) and page-level incrementals.

A full backup is a copy made by SQLite's online backup API while the control plane runs: one
step, under a read transaction, so it is one consistent state. An incremental holds the pages
that differ from the state its parent rebuilt (pages compared by a keyed digest of each page,
kept per backup under ``$EDGEPLANE_HOME/backups/.pages``), the new page count and the SHA-256
of the file it rebuilds; applying a chain (full, then each incremental) rebuilds the file and
checks that digest.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import struct
from pathlib import Path

from edgeplane.backup import crypto
from edgeplane.backup.errors import BackupError

_DIGEST = 16


def online_copy(src: Path, dst: Path) -> None:
    """A consistent copy of the live database ``src`` into ``dst`` (a single file)."""
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30)
    try:
        target = sqlite3.connect(dst)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")
            target.commit()
        finally:
            target.close()
    finally:
        source.close()


def page_size(path: Path) -> int:
    with path.open("rb") as fh:
        header = fh.read(100)
    if not header.startswith(b"SQLite format 3\x00"):
        raise BackupError(f"{path.name} is not a SQLite database")
    (size,) = struct.unpack(">H", header[16:18])
    return 65536 if size == 1 else size


def _digest(page: bytes, key: bytes) -> bytes:
    return hashlib.blake2b(page, digest_size=_DIGEST, key=key[:32]).digest()


def page_digests(path: Path, key: bytes) -> bytes:
    """A keyed digest of every page, concatenated."""
    size = page_size(path)
    out = bytearray()
    with path.open("rb") as fh:
        while page := fh.read(size):
            out += _digest(page, key)
    return bytes(out)


def write_diff(path: Path, parent_digests: bytes, key: bytes, out: Path) -> int:
    """Write the pages of ``path`` that differ from the parent's into ``out``; the number of
    pages written."""
    size = page_size(path)
    count = 0
    with path.open("rb") as fh, out.open("wb") as fout:
        total = path.stat().st_size // size
        header = {"page_size": size, "pages": total, "sha256": crypto.sha256_of(path)}
        blob = json.dumps(header).encode()
        fout.write(struct.pack(">I", len(blob)) + blob)
        index = 0
        while page := fh.read(size):
            digest = _digest(page, key)
            old = parent_digests[index * _DIGEST : (index + 1) * _DIGEST]
            if digest != old:
                fout.write(struct.pack(">I", index) + page)
                count += 1
            index += 1
    return count


def apply_diff(base: Path, diff: Path) -> str:
    """Apply an incremental's pages to ``base`` (in place); the SHA-256 of the result, which
    must be the one the incremental names (BackupError otherwise)."""
    with diff.open("rb") as fin:
        (length,) = struct.unpack(">I", fin.read(4))
        header = json.loads(fin.read(length))
        size, total = int(header["page_size"]), int(header["pages"])
        with base.open("r+b") as fout:
            while True:
                head = fin.read(4)
                if not head:
                    break
                (index,) = struct.unpack(">I", head)
                page = fin.read(size)
                if len(page) != size:
                    raise BackupError("an incremental backup's pages are cut short")
                fout.seek(index * size)
                fout.write(page)
            fout.truncate(total * size)
    got = crypto.sha256_of(base)
    if got != header["sha256"]:
        raise BackupError(
            "the chain of backups does not rebuild the database it recorded (a missing or "
            "wrong backup in the chain)"
        )
    return got


def facts(path: Path) -> dict[str, object]:
    """What a verification checks of a database file: integrity, schema revision, the
    control plane's revision, every table's row count."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
                "ORDER BY name"
            )
        ]
        rows = {t: int(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in tables}
        schema = revision = None
        if "alembic_version" in tables:
            schema = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        if "revision" in tables:
            found = conn.execute("SELECT value FROM revision").fetchone()
            revision = int(found[0]) if found else 0
        return {"integrity": integrity, "rows": rows, "schema": schema, "revision": revision}
    finally:
        conn.close()
