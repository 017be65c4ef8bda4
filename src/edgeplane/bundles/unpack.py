"""Unpacking a node archive on an edge node: verify everything, then appear at once.

A node trusts nothing in the archive but its hash, which the control plane signed off: the
whole file is hashed first, and a mismatch stops there. Then the members are written into a
temporary sibling of ``dest`` (``.<name>.tmp-<random>``), each one checked again: its path
(``clean_path``), that it is a regular file, that the manifest lists it (as a file or as one
of a file's variants) and that its sha256 and size are the manifest's; at the end, that every
file the manifest lists arrived. Files get an mtime derived from the bundle's hash (so
``Last-Modified`` and nginx's ETags agree between nodes, and differ from one bundle to the
next: a changed file of the same size must not revalidate as unchanged) and world-readable
modes (nginx's workers run as another user).
The temporary directory is then renamed to ``dest`` in one step; if ``dest`` exists already
the same bundle is there (its name carries the hash): the work is dropped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from edgeplane.bundles.build import FILES, FORMAT, MANIFEST
from edgeplane.bundles.errors import BundleError
from edgeplane.bundles.paths import clean_path

FIXED_MTIME = 946_684_800  # 2000-01-01T00:00:00Z


def bundle_mtime(expected_hash: str) -> int:
    """The files' mtime: 2000-01-01 plus up to ~8 years taken from the bundle's hash."""
    return FIXED_MTIME + int(expected_hash[:7], 16)
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
CHUNK = 1024 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class _Expected:
    sha256: str
    size: int


def _sha256_of(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _digest(value: Any, where: str) -> _Expected:
    if not isinstance(value, dict):
        raise BundleError("the manifest's entry is not an object", where)
    sha, size = value.get("sha256"), value.get("size")
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise BundleError("the manifest's sha256 is not a sha256", where)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BundleError("the manifest's size is not a size", where)
    return _Expected(sha, size)


def _expected(manifest: Any) -> dict[str, _Expected]:
    """Every member the archive must hold under ``files/``, from a checked manifest."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"the manifest is not of format {FORMAT}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleError("the manifest lists no files")
    expected: dict[str, _Expected] = {}
    total = 0
    for path, entry in files.items():
        if not isinstance(path, str) or clean_path(path) != path or path.endswith("/"):
            raise BundleError("the manifest lists a path that is not normalised", str(path))
        original = _digest(entry, path)
        total += original.size
        if not isinstance(entry.get("type"), str) or not isinstance(entry.get("immutable"), bool):
            raise BundleError("the manifest's entry lacks its type or immutable flag", path)
        members = {path: original}
        for suffix, key in ((".gz", "gzip"), (".br", "br")):
            if entry.get(key) is not None:
                members[path + suffix] = _digest(entry[key], path + suffix)
        for name, want in members.items():
            if name in expected:
                raise BundleError("the manifest lists this file twice", name)
            expected[name] = want
    if manifest.get("total_bytes") != total:
        raise BundleError("the manifest's total_bytes is not the sum of its files")
    for name in expected:
        parts = name.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in expected:
                raise BundleError("the manifest lists a file inside another file", name)
    return expected


def _read_manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    first = tar.next()
    if first is None or first.name != MANIFEST or not first.isreg():
        raise BundleError(f"the archive does not start with {MANIFEST}")
    if first.size > MAX_MANIFEST_BYTES:
        raise BundleError(f"the archive's {MANIFEST} is too large")
    data = tar.extractfile(first)
    assert data is not None
    try:
        manifest = json.loads(data.read())
    except ValueError:
        raise BundleError(f"the archive's {MANIFEST} is not JSON") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"the archive's {MANIFEST} is not an object")
    return manifest


def _write(
    data: IO[bytes], target: Path, want: _Expected, name: str, made: set[Path], mtime: int
) -> None:
    digest = hashlib.sha256()
    written = 0
    if target.parent not in made:
        target.parent.mkdir(parents=True, exist_ok=True)
        made.add(target.parent)
    with target.open("xb") as out:
        while chunk := data.read(CHUNK):
            digest.update(chunk)
            written += len(chunk)
            out.write(chunk)
        if written != want.size or digest.hexdigest() != want.sha256:
            raise BundleError("the file does not match the manifest's sha256", name)
        out.flush()  # before the mtime: a later write would move it
        os.fchmod(out.fileno(), 0o644)
        os.utime(out.fileno(), (mtime, mtime))


def _extract(archive: Path, into: Path, mtime: int) -> dict[str, Any]:
    with tarfile.open(archive, "r|") as tar:
        manifest = _read_manifest(tar)
        expected = _expected(manifest)
        seen: set[str] = set()
        made: set[Path] = set()
        while (member := tar.next()) is not None:
            name = member.name
            if not name.startswith(FILES):
                raise BundleError("the archive holds a member outside files/", name)
            path = name[len(FILES) :]
            if clean_path(path) != path:
                raise BundleError("the archive holds a path that is not normalised", name)
            if not member.isreg() or member.issparse():
                raise BundleError("the archive holds something other than a regular file", name)
            want = expected.get(path)
            if want is None:
                raise BundleError("the archive holds a file the manifest does not list", name)
            if path in seen:
                raise BundleError("the archive holds this file twice", name)
            if member.size != want.size:
                raise BundleError("the file's size is not the manifest's", name)
            seen.add(path)
            data = tar.extractfile(member)
            assert data is not None
            with data:
                _write(data, into / path, want, path, made, mtime)
    missing = sorted(set(expected) - seen)
    if missing:
        raise BundleError("the archive lacks a file the manifest lists", missing[0])
    for directory, _, _ in os.walk(into):
        os.chmod(directory, 0o755)
        os.utime(directory, (mtime, mtime))
    return manifest


def unpack(archive: Path, dest: Path, expected_hash: str) -> dict[str, Any]:
    """Verify the node archive ``archive`` against ``expected_hash`` and unpack it at ``dest``.

    Returns its manifest. Raises ``BundleError`` if anything does not match.
    """
    actual = _sha256_of(archive)
    if actual != expected_hash.lower():
        raise BundleError(f"the bundle's sha256 is {actual}, expected {expected_hash}")
    if dest.is_dir():
        # Unpacked before (the same hash): the manifest is all that is needed.
        with tarfile.open(archive, "r|") as tar:
            manifest = _read_manifest(tar)
        _expected(manifest)
        return manifest
    temp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        try:
            manifest = _extract(archive, temp, bundle_mtime(expected_hash))
        except tarfile.TarError as exc:
            raise BundleError(f"the bundle is damaged ({exc})") from None
        try:
            os.rename(temp, dest)
        except OSError:
            if not dest.is_dir():
                raise
            shutil.rmtree(temp)  # another unpack of the same bundle got there first
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return manifest
