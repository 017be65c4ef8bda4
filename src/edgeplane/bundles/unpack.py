"""Unpacking a node archive on an edge node: verify everything, then appear at once.

A node trusts nothing in the archive but its hash, which the control plane signed off. The
archive is read once, as it arrives (``unpack_stream``: the node unpacks while it downloads):
its sha256 is computed on the way, and its members are written into a temporary sibling of
``dest`` (``.<name>.tmp-<random>``), each one checked: its path (``clean_path``), that it is a
regular file, that the manifest lists it (as a file or as one of a file's variants) and that
its sha256 and size are the manifest's; at the end, that every file the manifest lists
arrived, and that the archive's sha256 is the expected one. Only then is the temporary
directory renamed to ``dest``, in one step: nothing unverified is ever at ``dest``, and a
mismatch of any kind removes the temporary directory. If ``dest`` exists already the same
bundle is there (its name carries the hash): the work is dropped.

Files get an mtime derived from their content's sha256 (so ``Last-Modified`` and nginx's ETags
agree between nodes, stay the same for a file a new bundle did not change, and differ when it
did: a changed file of the same size must not revalidate as unchanged; nginx's
``if_modified_since exact``, its default, compares dates for equality), folders one derived
from the bundle's hash, and world-readable modes (nginx's workers run as another user). A file
whose content the node has already (``reuse``) is a hard link to it: same content, same inode,
same mtime.
Nothing is fsynced: durability across a power loss is not promised (a bundle's directory
could then hold truncated files).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeplane.bundles.build import FILES, FORMAT, MANIFEST
from edgeplane.bundles.errors import BundleError
from edgeplane.bundles.paths import clean_path
from edgeplane.bundles.tarread import Readable, TarReader

FIXED_MTIME = 946_684_800  # 2000-01-01T00:00:00Z


def bundle_mtime(expected_hash: str) -> int:
    """The folders' mtime: 2000-01-01 plus up to ~8 years taken from the bundle's hash."""
    return FIXED_MTIME + int(expected_hash[:7], 16)


def file_mtime(sha256: str) -> int:
    """A file's mtime: 2000-01-01 plus up to ~8 years taken from its content's sha256."""
    return FIXED_MTIME + int(sha256[:7], 16)


MAX_MANIFEST_BYTES = 64 * 1024 * 1024
CHUNK = 1024 * 1024
EMPTY: Mapping[str, str] = {}
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class _Expected:
    sha256: str
    size: int


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


def _read_manifest(tar: TarReader) -> dict[str, Any]:
    first = tar.next()
    if first is None or first.name != MANIFEST or not first.regular:
        raise BundleError(f"the archive does not start with {MANIFEST}")
    if first.size > MAX_MANIFEST_BYTES:
        raise BundleError(f"the archive's {MANIFEST} is too large")
    data = tar.read(first.size)
    try:
        manifest = json.loads(data)
    except ValueError:
        raise BundleError(f"the archive's {MANIFEST} is not JSON") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"the archive's {MANIFEST} is not an object")
    return manifest


def _umask() -> int | None:
    """This process's umask, read without changing it (``os.umask`` would, for every
    thread); None when the kernel does not say."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return None


_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW


class _Writer:
    """Writes the files of one bundle under ``into``: folders made once each, every file
    hashed before it counts, modes and mtimes set by descriptor (no path lookups).

    A file whose content is already on the node (``reuse``: sha256 -> the path of a verified
    file of an earlier bundle) becomes a hard link to it instead of a new file, once its
    bytes in the archive have been hashed: creating a file (its inode) is the dearest step on
    an ordinary disk (11,000 files on this machine's ext4: about 1 s, and up to 3 s when other
    work uses the disk), a link costs a twentieth of that. A link is made only to a regular
    file with the size and mtime the file would get here; else the file is written.
    """

    def __init__(self, into: Path, mtime: int, reuse: Mapping[str, str]) -> None:
        self.into = str(into)
        self.mtime = mtime
        self.reuse = reuse
        self.dirs: set[str] = {""}
        self.linked = 0
        umask = _umask()
        self.chmod = umask is None or bool(umask & 0o755)  # else 0o644 / 0o755 as created

    def _folder(self, rel: str) -> None:
        if rel in self.dirs:
            return
        parent = rel.rpartition("/")[0]
        self._folder(parent)
        os.mkdir(f"{self.into}/{rel}", 0o755)
        self.dirs.add(rel)

    def _link(self, path: str, want: _Expected) -> bool:
        source = self.reuse.get(want.sha256)
        if source is None:
            return False
        try:
            st = os.stat(source, follow_symlinks=False)
            if not (
                stat.S_ISREG(st.st_mode)
                and st.st_size == want.size
                and st.st_mtime == file_mtime(want.sha256)
                and stat.S_IMODE(st.st_mode) == 0o644
            ):
                return False
            os.link(source, f"{self.into}/{path}", follow_symlinks=False)
        except OSError:  # gone meanwhile (an old bundle collected), another file system
            return False
        self.linked += 1
        return True

    def file(self, tar: TarReader, path: str, want: _Expected) -> None:
        self._folder(path.rpartition("/")[0])
        digest = hashlib.sha256()
        if want.sha256 in self.reuse:
            chunks = list(iter(lambda: tar.read(CHUNK), b""))
            for chunk in chunks:
                digest.update(chunk)
            if digest.hexdigest() != want.sha256:
                raise BundleError("the file does not match the manifest's sha256", path)
            if not self._link(path, want):
                self._write(path, chunks, want, None)
            return
        self._write(path, iter(lambda: tar.read(CHUNK), b""), want, digest)

    def _write(
        self, path: str, chunks: Iterable[bytes], want: _Expected, digest: Any | None
    ) -> None:
        """Write ``chunks`` at ``path``, hashing them into ``digest`` unless it is None
        (hashed already)."""
        fd = os.open(f"{self.into}/{path}", _FLAGS, 0o644)
        try:
            for chunk in chunks:
                if digest is not None:
                    digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            if digest is not None and digest.hexdigest() != want.sha256:
                raise BundleError("the file does not match the manifest's sha256", path)
            if self.chmod:
                os.fchmod(fd, 0o644)
            mtime = file_mtime(want.sha256)
            os.utime(fd, (mtime, mtime))  # after the last write, which would move it
        finally:
            os.close(fd)

    def finish(self) -> None:
        """Folders last: writing into one moves its mtime."""
        for rel in self.dirs:
            path = f"{self.into}/{rel}" if rel else self.into
            os.chmod(path, 0o755)  # mkdtemp makes the top one 0700: nginx could not enter
            os.utime(path, (self.mtime, self.mtime))


def _extract(
    tar: TarReader,
    into: Path,
    mtime: int,
    reuse: Mapping[str, str] = EMPTY,
    counts: dict[str, int] | None = None,
) -> dict[str, Any]:
    manifest = _read_manifest(tar)
    expected = _expected(manifest)
    seen: set[str] = set()
    writer = _Writer(into, mtime, reuse)
    _members(tar, expected, seen, writer)
    if counts is not None:
        counts.update(written=len(seen) - writer.linked, linked=writer.linked)
    return manifest


def _members(
    tar: TarReader, expected: dict[str, _Expected], seen: set[str], writer: _Writer
) -> None:
    while (member := tar.next()) is not None:
        name = member.name
        if not name.startswith(FILES):
            raise BundleError("the archive holds a member outside files/", name)
        path = name[len(FILES) :]
        if clean_path(path) != path:
            raise BundleError("the archive holds a path that is not normalised", name)
        if not member.regular:
            raise BundleError("the archive holds something other than a regular file", name)
        want = expected.get(path)
        if want is None:
            raise BundleError("the archive holds a file the manifest does not list", name)
        if path in seen:
            raise BundleError("the archive holds this file twice", name)
        if member.size != want.size:
            raise BundleError("the file's size is not the manifest's", name)
        seen.add(path)
        writer.file(tar, path, want)
    missing = sorted(set(expected) - seen)
    if missing:
        raise BundleError("the archive lacks a file the manifest lists", missing[0])
    writer.finish()


def _verified(tar: TarReader, expected_hash: str) -> None:
    """Raise unless everything read so far, and the rest of the stream, is ``expected_hash``."""
    tar.drain()
    actual = tar.digest.hexdigest()
    if actual != expected_hash.lower():
        raise BundleError(f"the bundle's sha256 is {actual}, expected {expected_hash}")


def unpack_stream(
    source: Readable,
    dest: Path,
    expected_hash: str,
    reuse: Mapping[str, str] = EMPTY,
    counts: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Unpack the node archive read from ``source`` at ``dest``, as it arrives.

    One pass: the archive is hashed as it is read, its files are written into a temporary
    sibling of ``dest`` and each checked against the manifest; only when the stream ends and
    its sha256 is ``expected_hash`` is the directory renamed to ``dest``. Until then nothing
    is at ``dest``: a damaged or forged archive leaves nothing behind. When the archive's hash
    is wrong, that is the error reported, whatever went wrong before (a corrupt download
    shows first as a file that does not match). ``reuse`` maps the sha256 of files already
    on the node (verified, of earlier bundles) to their paths: the same content is linked
    rather than written again (``_Writer``); ``counts`` (if given) gets how many members were
    ``written`` and ``linked``. Returns the manifest.
    """
    tar = TarReader(source)
    if dest.is_dir():
        # Unpacked before (the same hash): the manifest is all that is needed.
        try:
            manifest = _read_manifest(tar)
            _expected(manifest)
        except BundleError:
            _verified(tar, expected_hash)
            raise
        _verified(tar, expected_hash)
        return manifest
    temp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        try:
            manifest = _extract(tar, temp, bundle_mtime(expected_hash), reuse, counts)
        except BundleError:
            _verified(tar, expected_hash)  # a wrong hash explains it better
            raise
        _verified(tar, expected_hash)
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


def unpack(
    archive: Path, dest: Path, expected_hash: str, reuse: Mapping[str, str] = EMPTY
) -> dict[str, Any]:
    """Verify the node archive ``archive`` against ``expected_hash`` and unpack it at ``dest``
    (``unpack_stream`` of the file). Returns its manifest; raises ``BundleError`` if anything
    does not match."""
    with archive.open("rb", buffering=CHUNK) as f:
        return unpack_stream(f, dest, expected_hash, reuse)
