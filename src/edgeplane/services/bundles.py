"""Uploaded bundles: validated and built outside any transaction, then stored in the database.

``build_upload`` unpacks an uploaded archive into a work directory under the limits
(``edgeplane.bundles``), then builds the node archive (files, gzip and brotli variants, the
manifest); the variants of files the project's previous archive holds unchanged are copied
from it rather than compressed again (``keep`` keeps the newest archive per project in the
home, a cache: a replica without it compresses everything). ``save`` stores it as ``bundles``
(per project) and ``bundle_chunks`` (the archive in slices, shared by projects that upload the
same content), so every control plane replica can serve it; ``chunks`` streams it to edge
nodes one slice per short read.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import func, select

from edgeplane.bundles import BuiltBundle, BundleError, BundleLimits, build_bundle, extract_upload
from edgeplane.bundles.reuse import RECIPE, Earlier
from edgeplane.errors import InvalidInput, NotFound
from edgeplane.model.edge_deployments import Bundle
from edgeplane.model.enums import Role
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.store.db import Database, Tx
from edgeplane.store.tables import BundleChunkRow, BundleRow, utcnow

KIND = "bundle"
CHUNK_BYTES = 4 << 20
CHUNK_FILE = 1 << 20


@dataclass(frozen=True)
class Upload:
    built: BuiltBundle
    archive: Path
    # What each step took, in ms (``extract``, ``build``): the upload's Server-Timing header.
    timings: dict[str, float] = field(default_factory=dict)


def invalid(exc: BundleError) -> InvalidInput:
    """A refused bundle as a 422 naming the file (``bundle`` the field, the path in the text)."""
    return InvalidInput(str(exc), field="bundle")


def kept_dir(home: Path, project: str) -> Path:
    """Where the control plane keeps the project's newest node archive it built: the next
    build copies the variants of unchanged files from it (``edgeplane.bundles.reuse``)."""
    return home / "cache" / f"bundles-{RECIPE}" / project


# The last archive read, by path and identity: a kept archive is never changed in place (a
# new one replaces it), so one that was checked once need not be read again.
_OPENED: dict[Path, tuple[tuple[int, int, int], Earlier]] = {}


def earlier(kept: Path | None) -> Earlier | None:
    """The archive kept in ``kept``, checked, if any."""
    if kept is None or not kept.is_dir():
        return None
    for archive in kept.glob("*.tar"):
        try:
            st = archive.stat()
        except OSError:
            continue
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        hit = _OPENED.get(archive)
        if hit is not None and hit[0] == key:
            return hit[1]
        found = Earlier.open(archive)
        if found is not None:
            _OPENED.clear()
            _OPENED[archive] = (key, found)
            return found
    return None


def build_path(kept: Path | None, work: Path) -> Path:
    """Where the node archive is written: beside the kept one (``keep`` then renames it into
    place, no copy), else in the work directory."""
    if kept is None:
        return work / "bundle.tar"
    kept.mkdir(parents=True, exist_ok=True)
    return kept / f".build-{os.getpid()}-{uuid.uuid4().hex}.tar"


def keep(upload: Upload, kept: Path) -> None:
    """Keep the archive just built in ``kept`` (only it: one per project)."""
    name = f"{upload.built.hash}.tar"
    if upload.archive.parent == kept:
        os.replace(upload.archive, kept / name)
    else:
        kept.mkdir(parents=True, exist_ok=True)
        temp = kept / f".{name}.tmp"
        shutil.copyfile(upload.archive, temp)
        os.replace(temp, kept / name)
    for other in kept.iterdir():
        if other.name == name:
            continue
        try:
            # "." : a build under way, unless a crash left it there an hour ago or more
            if other.name.startswith(".") and time.time() - other.stat().st_mtime < 3600:
                continue
            if other.is_dir():
                shutil.rmtree(other, ignore_errors=True)
            else:
                other.unlink(missing_ok=True)
        except OSError:
            pass
    st = (kept / name).stat()
    _OPENED.clear()
    _OPENED[kept / name] = (
        (st.st_ino, st.st_size, st.st_mtime_ns),
        Earlier.built(kept / name, upload.built),
    )


def discard(upload: Upload) -> None:
    """Remove the built archive (when it is not kept)."""
    upload.archive.unlink(missing_ok=True)


def build_upload(
    upload: Path, work: Path, limits: BundleLimits, kept: Path | None = None
) -> Upload:
    """Validate and build an uploaded archive; raises ``InvalidInput`` naming the bad file.
    ``kept``: where the project's earlier archive is kept, if anywhere (``kept_dir``)."""
    src = work / "files"
    src.mkdir(parents=True)
    try:
        started = time.perf_counter()
        files = extract_upload(upload, src, limits)
        if not files:
            raise BundleError("the bundle holds no files")
        extracted = time.perf_counter()
        before = earlier(kept)
        opened = time.perf_counter()
        out = build_path(kept, work)
        try:
            built = build_bundle(src, files, out, earlier=before)
        except BaseException:
            out.unlink(missing_ok=True)
            raise
    except BundleError as exc:
        raise invalid(exc) from None
    timings = {
        "extract": (extracted - started) * 1000,
        "earlier": (opened - extracted) * 1000,
        "build": (time.perf_counter() - opened) * 1000,
    }
    return Upload(built=built, archive=out, timings=timings)


def to_model(row: BundleRow) -> Bundle:
    return Bundle(
        id=row.id,
        project_id=row.project_id,
        size=row.size,
        source_bytes=row.source_bytes,
        files=row.files,
        compressed_files=int((row.manifest or {}).get("compressed_files", 0)),
        created_at=row.created_at,
        created_by=row.created_by,
    )


def save(tx: Tx, upload: Upload) -> tuple[Bundle, bool]:
    """Store the bundle for the project; (it, created). The same content is stored once."""
    tx.actor.require(tx.project, Role.EDITOR)
    built = upload.built
    existing = tx.session.get(BundleRow, (built.hash, tx.project))
    if existing is not None:
        return to_model(existing), False
    have_chunks = tx.session.scalar(
        select(func.count())
        .select_from(BundleChunkRow)
        .where(BundleChunkRow.bundle_id == built.hash)
    )
    if not have_chunks:
        with upload.archive.open("rb") as f:
            seq = 0
            while chunk := f.read(CHUNK_BYTES):
                tx.session.add(BundleChunkRow(bundle_id=built.hash, seq=seq, data=chunk))
                seq += 1
                tx.session.flush()
    manifest = dict(built.manifest)
    manifest["compressed_files"] = built.compressed_files
    row = BundleRow(
        id=built.hash,
        project_id=tx.project,
        size=built.size,
        source_bytes=built.source_bytes,
        files=built.files,
        manifest=manifest,
        created_at=utcnow(),
        created_by=tx.actor.name,
    )
    tx.session.add(row)
    tx.session.flush()
    tx.record(
        "create",
        KIND,
        row.id,
        None,
        {"files": row.files, "size": row.size, "source_bytes": row.source_bytes},
    )
    return to_model(row), True


def get_row(tx: Tx, bundle_id: str) -> BundleRow:
    row = tx.session.get(BundleRow, (bundle_id, tx.project))
    if row is None:
        raise NotFound(f"no bundle {bundle_id} in this project", field="bundle")
    return row


def get(tx: Tx, bundle_id: str) -> Bundle:
    tx.actor.require(tx.project, Role.VIEWER)
    return to_model(get_row(tx, bundle_id))


def list_bundles(tx: Tx) -> list[Bundle]:
    tx.actor.require(tx.project, Role.VIEWER)
    rows = tx.session.scalars(
        select(BundleRow)
        .where(BundleRow.project_id == tx.project)
        .order_by(BundleRow.created_at.desc())
    )
    return [to_model(r) for r in rows]


def archive_size(tx: Tx, bundle_id: str) -> int:
    """The node archive's bytes; NotFound when no project has the bundle."""
    size = tx.session.scalar(select(BundleRow.size).where(BundleRow.id == bundle_id).limit(1))
    if size is None:
        raise NotFound(f"no bundle {bundle_id}")
    return int(size)


def kept_archive(tx: Tx, home: Path, bundle_id: str) -> BinaryIO | None:
    """The archive of ``bundle_id`` as this control plane kept it (``keep``), open, if it
    has it: served from there, nodes get it without a database read per slice. (They check
    its sha256 whatever it is read from.)"""
    rows = tx.session.execute(
        select(BundleRow.project_id, BundleRow.size).where(BundleRow.id == bundle_id)
    ).all()
    for project, size in rows:
        try:
            f = (kept_dir(home, project) / f"{bundle_id}.tar").open("rb")
        except OSError:
            continue
        if os.fstat(f.fileno()).st_size == size:
            return f  # open: a newer archive replacing it now does not cut the download
        f.close()
    return None


def file_chunks(f: BinaryIO) -> Iterator[bytes]:
    with f:
        while data := f.read(CHUNK_FILE):
            yield data


def chunks(db: Database, bundle_id: str) -> Iterator[bytes]:
    """The node archive, slice by slice, each read in its own short transaction."""
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        seqs = list(
            tx.session.scalars(
                select(BundleChunkRow.seq)
                .where(BundleChunkRow.bundle_id == bundle_id)
                .order_by(BundleChunkRow.seq)
            )
        )
    for seq in seqs:
        with db.read(LOCAL, PLATFORM_PROJECT) as tx:
            data = tx.session.scalar(
                select(BundleChunkRow.data).where(
                    BundleChunkRow.bundle_id == bundle_id, BundleChunkRow.seq == seq
                )
            )
        if data is not None:
            yield bytes(data)
