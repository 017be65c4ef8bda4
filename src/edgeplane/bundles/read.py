"""Reading an upload: a tar, tar.gz or zip archive, checked member by member into a directory.

``extract_upload`` never trusts the archive: every name goes through ``clean_path``, only regular
files are written (with ``open(..., "xb")`` under an empty ``dest``, so nothing is ever
overwritten or written through a link), and the limits are checked on the sizes the archive
declares *and* on the bytes actually read. Links are not created: a symlink or hardlink whose
target is a file inside the bundle becomes a copy of that file once every member has been read
(a symlink may name a member that comes after it); any other link is refused. Directories are
implied by the files. The first problem stops the extraction; the caller removes ``dest``.

The tar reader uses ``tarfile``'s streaming mode (``r|``: one pass, no seeking, no member
cache of file data) made strict: a truncated archive or a damaged header is an error rather
than a silent end, and an extended (pax or GNU long name) header may not exceed 1 MiB. The
decompressed stream as a whole is bounded too, so a tar.gz cannot expand without limit
through headers or skipped members.
"""

from __future__ import annotations

import gzip
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Literal, Protocol, cast

from edgeplane.bundles.errors import BundleError
from edgeplane.bundles.limits import BundleLimits, MiB, format_mib
from edgeplane.bundles.paths import clean_path

ArchiveFormat = Literal["tar", "tar.gz", "zip"]

NOT_AN_ARCHIVE = "the upload is not a tar, tar.gz or zip archive"
NOT_A_TAR_GZ = "the upload is a gzip file that does not hold a tar archive"
CHUNK = 1 * MiB
MAX_LINK_DEPTH = 40
MAX_EXTENDED_HEADER = 1 * MiB
MAX_LINK_TARGET = 4096


# -- formats ---------------------------------------------------------------------------------


def _is_tar_header(block: bytes) -> bool:
    if len(block) < tarfile.BLOCKSIZE:
        return False
    if block[257:262] == b"ustar":  # POSIX and GNU
        return True
    # A pre-POSIX (v7) header has no magic: its checksum must match.
    field = block[148:156].replace(b"\0", b" ").strip()
    if not field or block.count(0) == tarfile.BLOCKSIZE:
        return False
    try:
        declared = int(field, 8)
    except ValueError:
        return False
    return declared == sum(block[:148]) + 8 * 32 + sum(block[156:512])


def archive_format(path: Path) -> ArchiveFormat | None:
    """The format of ``path`` by its first bytes (gzip is taken as tar.gz), or None."""
    with path.open("rb") as f:
        head = f.read(tarfile.BLOCKSIZE)
    if head[:2] == b"\x1f\x8b":
        return "tar.gz"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return "zip"
    if _is_tar_header(head):
        return "tar"
    return None


# -- what ends up in dest --------------------------------------------------------------------


class _Bundle:
    """The files written so far, the links to resolve at the end, and the limits' counters."""

    def __init__(self, dest: Path, limits: BundleLimits) -> None:
        self.dest = dest
        self.limits = limits
        self.files: dict[str, int] = {}  # path -> size
        self.links: dict[str, str] = {}  # path -> the path it points to, resolved
        self.dirs: set[str] = set()
        self.made: set[Path] = set()  # folders created in dest
        self.total = 0
        self.entries = 0
        # Directories do not count as files, but there cannot be any number of them either.
        self.max_entries = 2 * limits.max_files + 1000

    def _check_entry(self) -> None:
        self.entries += 1
        if self.entries > self.max_entries:
            raise BundleError(f"the archive has more than {self.max_entries} entries")

    def _claim(self, path: str) -> None:
        """Register a file (or link) path: new, not a directory, not inside a file."""
        if path in self.files or path in self.links:
            raise BundleError("the archive holds this path more than once", path)
        if path in self.dirs:
            raise BundleError("this path is both a file and a folder", path)
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in self.files or parent in self.links:
                raise BundleError(f"this path is inside {parent}, which is a file", path)
        if len(self.files) + len(self.links) >= self.limits.max_files:
            raise BundleError(f"the bundle has more than {self.limits.max_files} files")
        for i in range(1, len(parts)):
            self.dirs.add("/".join(parts[:i]))

    def _parent(self, target: Path) -> None:
        """Create the folder ``target`` goes in (once: thousands of mkdir calls add up)."""
        if target.parent not in self.made:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.made.add(target.parent)

    def _name(self, name: str) -> str:
        return clean_path(name, max_bytes=self.limits.max_path_bytes)

    def _check_size(self, path: str, size: int) -> None:
        limits = self.limits
        if size > limits.max_file_bytes:
            limit = format_mib(limits.max_file_bytes)
            raise BundleError(f"the file is larger than the limit of {limit} per file", path)
        if self.total + size > limits.max_total_bytes:
            limit = format_mib(limits.max_total_bytes)
            raise BundleError(f"the bundle is larger than the limit of {limit}", path)

    def directory(self, name: str) -> None:
        self._check_entry()
        path = self._name(name.rstrip("/") + "/")
        if path == "./":
            return
        path = path.rstrip("/")
        if path in self.files or path in self.links:
            raise BundleError("this path is both a file and a folder", path)
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            self.dirs.add("/".join(parts[:i]))

    def regular(self, name: str, declared: int, data: IO[bytes]) -> None:
        self._check_entry()
        path = self._name(name)
        if path.endswith("/"):
            raise BundleError("a file's name may not end with /", name)
        self._claim(path)
        self._check_size(path, declared)
        target = self.dest / path
        self._parent(target)
        written = 0
        with target.open("xb") as out:
            while chunk := data.read(CHUNK):
                written += len(chunk)
                # The declared size may lie (a zip's header): count what is really there.
                self._check_size(path, written)
                out.write(chunk)
        self.files[path] = written
        self.total += written

    def link(self, name: str, target: str, *, hard: bool) -> None:
        """A link at ``name`` to ``target`` (relative to the link's folder, or for a hardlink
        to the archive's root)."""
        self._check_entry()
        path = self._name(name)
        if path.endswith("/"):
            raise BundleError("a link's name may not end with /", name)
        self._claim(path)
        self.links[path] = _resolve(path, target, hard=hard)

    def finish(self) -> list[str]:
        for path in sorted(self.links):
            source = self._follow(path)
            self._check_size(path, self.files[source])
            target = self.dest / path
            self._parent(target)
            with (self.dest / source).open("rb") as src, target.open("xb") as out:
                shutil.copyfileobj(src, out, CHUNK)
            self.total += self.files[source]
        if not self.files:
            raise BundleError("the archive holds no files")
        return sorted([*self.files, *self.links])

    def _follow(self, path: str) -> str:
        """The regular file the link at ``path`` ends at, through other links."""
        seen = [path]
        target = self.links[path]
        while True:
            parts = target.split("/")
            for i in range(1, len(parts)):
                if "/".join(parts[:i]) in self.links:
                    raise BundleError("a link to a directory is not supported", seen[-1])
            if target in self.files:
                return target
            if target in self.links:
                if target in seen or len(seen) > MAX_LINK_DEPTH:
                    raise BundleError("the links make a loop", path)
                seen.append(target)
                target = self.links[target]
                continue
            if target in self.dirs:
                raise BundleError("a link to a directory is not supported", seen[-1])
            raise BundleError(f"a link points to {target}, which is not in the bundle", seen[-1])


def _resolve(path: str, target: str, *, hard: bool) -> str:
    """The bundle path a link's target names, without following links."""
    if target == "":
        raise BundleError("a link has no target", path)
    if target.startswith("/"):
        raise BundleError(f"a link may not point out of the bundle: -> {target}", path)
    if "\\" in target or "\0" in target:
        raise BundleError("a link's target may not contain a backslash or NUL", path)
    parts = [] if hard else path.split("/")[:-1]
    for segment in target.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not parts:
                raise BundleError(f"a link may not point out of the bundle: -> {target}", path)
            parts.pop()
        else:
            parts.append(segment)
    if not parts:
        raise BundleError("a link to a directory is not supported", path)
    return "/".join(parts)


# -- tar -------------------------------------------------------------------------------------


class _Corrupt(tarfile.ReadError):
    pass


class _StrictTarInfo(tarfile.TarInfo):
    """tarfile ends an archive quietly at a damaged or missing header; this one raises."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> _StrictTarInfo:
        if len(buf) == tarfile.BLOCKSIZE and buf.count(0) == tarfile.BLOCKSIZE:
            return super().frombuf(buf, encoding, errors)  # the end marker: tarfile stops
        if len(buf) != tarfile.BLOCKSIZE:
            raise _Corrupt("the archive is truncated")
        try:
            info = super().frombuf(buf, encoding, errors)
        except tarfile.HeaderError as exc:
            raise _Corrupt(f"the archive has a damaged header ({exc})") from None
        extended = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME)
        if info.type in (*extended, tarfile.GNUTYPE_LONGLINK) and info.size > MAX_EXTENDED_HEADER:
            raise _Corrupt("the archive has an oversized extended header")
        return info


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Bounded:
    """A reader that refuses to deliver more than ``limit`` bytes."""

    def __init__(self, raw: _Readable, limit: int) -> None:
        self.raw = raw
        self.limit = limit
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.count += len(data)
        if self.count > self.limit:
            raise BundleError("the archive is larger than the bundle limits allow")
        return data


def _read_tar(archive: Path, compressed: bool, bundle: _Bundle) -> None:
    limits = bundle.limits
    # Everything a valid archive within the limits can hold: data, headers, padding.
    bound = limits.max_total_bytes + bundle.max_entries * 4 * tarfile.BLOCKSIZE + MiB
    with archive.open("rb") as raw:
        source: _Readable = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        stream = cast(IO[bytes], _Bounded(source, bound))
        try:
            tar = tarfile.open(fileobj=stream, mode="r|", tarinfo=_StrictTarInfo)  # noqa: SIM115
        except tarfile.ReadError:
            if compressed:
                raise BundleError(NOT_A_TAR_GZ) from None
            raise
        with tar:
            for member in tar:
                with _naming(member.name):
                    _tar_member(tar, member, bundle)


def _tar_member(tar: tarfile.TarFile, member: tarfile.TarInfo, bundle: _Bundle) -> None:
    if member.isdir():
        bundle.directory(member.name)
    elif member.issym() or member.islnk():
        bundle.link(member.name, member.linkname, hard=member.islnk())
    elif member.issparse():
        raise BundleError("a sparse file is not supported", member.name)
    elif member.isreg():
        data = tar.extractfile(member)
        assert data is not None  # a regular member always has data
        with data:
            bundle.regular(member.name, member.size, data)
    else:
        raise BundleError(_special_file(member), member.name)


def _special_file(member: tarfile.TarInfo) -> str:
    if member.ischr() or member.isblk():
        kind = "a device file"
    elif member.isfifo():
        kind = "a FIFO"
    else:
        kind = "a special file"
    return f"{kind} cannot be part of a bundle (only files, folders and links)"


# -- zip -------------------------------------------------------------------------------------


def _zip_directory_size(archive: Path) -> int | None:
    """The size of a zip's central directory, from its end record (None if not found)."""
    with archive.open("rb") as f:
        end = f.seek(0, 2)
        f.seek(max(0, end - (65535 + 22)))
        tail = f.read()
    i = tail.rfind(b"PK\x05\x06")
    if i < 0 or len(tail) - i < 22:
        return None
    size = int.from_bytes(tail[i + 12 : i + 16], "little")
    if size == 0xFFFFFFFF:
        return None  # zip64: the real figure is elsewhere; the entry count check still holds
    return size


def _read_zip(archive: Path, bundle: _Bundle) -> None:
    # zipfile reads the whole central directory into memory first: bound it beforehand.
    per_entry = 46 + bundle.limits.max_path_bytes + 256
    size = _zip_directory_size(archive)
    if size is not None and size > bundle.max_entries * per_entry:
        raise BundleError(f"the archive has more than {bundle.max_entries} entries")
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        if len(infos) > bundle.max_entries:
            raise BundleError(f"the archive has more than {bundle.max_entries} entries")
        for info in infos:
            with _naming(info.filename):
                _zip_member(zf, info, bundle)


def _zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, bundle: _Bundle) -> None:
    mode = info.external_attr >> 16 if info.create_system == 3 else 0
    kind = stat.S_IFMT(mode)
    if info.is_dir() or kind == stat.S_IFDIR:
        bundle.directory(info.filename)
        return
    if info.flag_bits & 0x1:
        raise BundleError("an encrypted file is not supported", info.filename)
    if kind == stat.S_IFLNK:
        if info.file_size > MAX_LINK_TARGET:
            raise BundleError("a link's target is too long", info.filename)
        with zf.open(info) as data:
            target = data.read(MAX_LINK_TARGET + 1)
        try:
            text = target.decode("utf-8")
        except UnicodeDecodeError:
            raise BundleError("a link's target must be UTF-8", info.filename) from None
        bundle.link(info.filename, text, hard=False)
    elif kind in (0, stat.S_IFREG):
        with zf.open(info) as data:
            bundle.regular(info.filename, info.file_size, data)
    elif kind in (stat.S_IFCHR, stat.S_IFBLK):
        raise BundleError("a device file cannot be part of a bundle", info.filename)
    elif kind == stat.S_IFIFO:
        raise BundleError("a FIFO cannot be part of a bundle", info.filename)
    else:
        raise BundleError("a special file cannot be part of a bundle", info.filename)


# -- together --------------------------------------------------------------------------------


@contextmanager
def _naming(name: str) -> Iterator[None]:
    """Errors of the archive's own structure, blamed on the member being read."""
    try:
        yield
    except BundleError:
        raise
    except NotImplementedError as exc:  # a zip compression method Python does not have
        raise BundleError(f"the file uses an unsupported compression ({exc})", name) from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise BundleError(f"the archive is damaged or truncated ({e})", name) from None


def extract_upload(archive: Path, dest: Path, limits: BundleLimits) -> list[str]:
    """Check ``archive`` and write its files under the empty directory ``dest``.

    Returns the bundle's paths, sorted. Raises ``BundleError`` at the first problem.
    """
    fmt = archive_format(archive)
    if fmt is None:
        raise BundleError(NOT_AN_ARCHIVE)
    bundle = _Bundle(dest, limits)
    try:
        if fmt == "zip":
            _read_zip(archive, bundle)
        else:
            _read_tar(archive, fmt == "tar.gz", bundle)
    except BundleError:
        raise
    except NotImplementedError as exc:
        raise BundleError(f"the archive uses an unsupported feature ({exc})") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise BundleError(f"the archive is damaged or truncated ({e})") from None
    return bundle.finish()
