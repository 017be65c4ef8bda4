"""Building the node archive: hashes, content types, cache hints and precompressed variants.

``build_bundle`` turns the checked files of an upload into the one file edge nodes download:
an uncompressed tar whose first member is ``manifest.json`` (every file's sha256, size, content
type, whether it is fingerprinted and so immutable, and its ``.gz`` and ``.br`` variants),
followed by the files under ``files/`` in sorted order. The archive is deterministic (sorted
members, mtime 0, uid/gid 0, no owner names, mode 0644; gzip with mtime 0; a fixed table of
content types rather than the host's ``/etc/mime.types``): the same files give the same bytes
and so the same hash, which is the bundle's identity.

Precompression: files of a compressible type (text, JavaScript, JSON, XML, SVG, wasm, web app
manifests, source maps, ttf/otf/eot fonts, icons) of at least 256 bytes get a gzip variant
(level 6) and a brotli variant, each kept only when smaller than 95% of the original, and only
when the bundle does not already hold its own ``x.gz`` or ``x.br`` (that file is kept and
served as it is).

Brotli quality 5, measured on the 2-core development machine with real JS, CSS and HTML (the
Rust documentation). 40 MB of large files: gzip 6 runs at 61 MB/s to 15.3% of the size;
brotli quality 4 at 92 MB/s to 14.9%, 5 at 60 MB/s to 13.7%, 6 at 55 MB/s to 13.5%, 7 at
44 MB/s to 13.3%. 3,000 small files (5.5 KB on average, what sites are mostly made of): gzip
at 51 MB/s to 32.4%; brotli 4 at 44 MB/s to 31.0%, 5 at 37 MB/s to 29.0%, 6 at 32 MB/s to
29.0%. Quality 5 costs about what gzip costs and is 10% smaller than it; 4 hardly beats gzip
on small files, 6 and up add time for next to nothing. (Brotli's default, 11, runs at about
1 MB/s.)

Parallelism: zlib, brotli and hashlib release the GIL (two threads compressing one 8 MB
input each take the time of one), but with the small files of a site the Python work between
the calls dominates: in the benchmark below two threads built in 1.9 s where two processes
took 1.7 s and one 2.7 s (the compression alone: 1.2 s in two processes, 2.0-2.2 s in one).
Compression therefore runs in a process pool of the ``forkserver`` kind (never a fork of the
caller, which may be a threaded server; the server preloads this module) when there is
enough of it to pay for starting one (4 MiB), and inline otherwise; should the workers fail to
start, the work is done inline.

Workers read the file, hash it, compress it and append the variants to a spool file of their
own in a staging directory beside ``out`` (one file per worker, not one per variant: creating
thousands of small files is what costs most on an ordinary disk); only the figures and
offsets come back. The tar headers are written here rather than by ``tarfile``, which spends
55 us on each (0.6 s for the benchmark's 11,000 members).

Benchmark: 5,000 files, 52 MB (60% JS/CSS/HTML/JSON/SVG-like text, 40% random .png/.woff2;
3,000 files get variants, the archive is 78 MB): ``build_bundle`` takes 1.8-2.3 s with two
worker processes (2.7-3.4 s in one) on a tmpfs, 2.2-2.8 s on the VM's ext4 disk; the range is
the machine's, which other work shared.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import brotli  # type: ignore[import-untyped]

from edgeplane.bundles.errors import BundleError
from edgeplane.bundles.paths import clean_path

if TYPE_CHECKING:
    from edgeplane.bundles.reuse import Earlier

FORMAT = 1
MANIFEST = "manifest.json"
FILES = "files/"

BROTLI_QUALITY = 5
GZIP_LEVEL = 6
MIN_COMPRESS_BYTES = 256
KEEP_RATIO = 0.95
# Below this much compressible data, starting worker processes costs more than it saves.
PARALLEL_MIN_BYTES = 4 * 1024 * 1024
CHUNK = 1024 * 1024

# -- content types ---------------------------------------------------------------------------

_TYPES: dict[str, str] = {
    ".html": "text/html",
    ".htm": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".cjs": "text/javascript",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".wasm": "application/wasm",
    ".xml": "application/xml",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".xhtml": "application/xhtml+xml",
    ".svg": "image/svg+xml",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".csv": "text/csv",
    ".ics": "text/calendar",
    ".vtt": "text/vtt",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/vnd.microsoft.icon",
    ".bmp": "image/bmp",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".eot": "application/vnd.ms-fontobject",
    ".pdf": "application/pdf",
    ".zip": "application/zip",
    ".gz": "application/gzip",
    ".br": "application/x-brotli",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".wav": "audio/wav",
}
_COMPRESSIBLE = {
    "text/javascript",
    "application/javascript",
    "application/json",
    "application/manifest+json",
    "application/wasm",
    "application/xml",
    "image/svg+xml",
    "image/vnd.microsoft.icon",
    "image/x-icon",
    "font/ttf",
    "font/otf",
    "application/vnd.ms-fontobject",
}


def _type_table() -> dict[str, str]:
    # Python's built-in table (not the host's mime.types, which differs between machines),
    # under the types above.
    import mimetypes

    table = dict(mimetypes.MimeTypes().types_map[True])
    table.update(_TYPES)
    return table


_TYPE_TABLE = _type_table()


def content_type(path: str) -> str:
    """The Content-Type a file is served with, by its extension."""
    name = path.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    if dot <= 0:
        return "application/octet-stream"
    return _TYPE_TABLE.get(name[dot:].lower(), "application/octet-stream")


def compressible(ctype: str) -> bool:
    return (
        ctype.startswith("text/")
        or ctype in _COMPRESSIBLE
        or ctype.endswith("+xml")
        or ctype.endswith("+json")
    )


def wanted(path: str, size: int, present: set[str] | frozenset[str]) -> tuple[bool, bool]:
    """Whether a file of the bundle (``present``: all its paths) gets a gzip and a brotli
    variant attempt: a compressible type, big enough, and no ``x.gz`` / ``x.br`` of its own."""
    want = compressible(content_type(path)) and size >= MIN_COMPRESS_BYTES
    return want and f"{path}.gz" not in present, want and f"{path}.br" not in present


# -- fingerprints ----------------------------------------------------------------------------

_HEX = re.compile(r"[0-9a-fA-F]{8,}")
_SEPARATORS = re.compile(r"[-_]")


def _hash_like(run: str, tokens: list[str]) -> bool:
    if len(run) < 8:
        return False
    if len(tokens) == 1 and _HEX.fullmatch(run) and not run.isdigit():
        return True
    letters = sum(c.isalpha() for c in run)
    digits = sum(c.isdigit() for c in run)
    if not run.replace("-", "").replace("_", "").isalnum() or not run.isascii():
        return False
    if digits == 0 or letters < 2:
        return False
    # Random text changes between digits and letters; words and sizes ("chapter10",
    # "icon-180x180") hardly do, and hold a word of letters only.
    classes = [c.isdigit() for c in run if c.isalnum()]
    changes = sum(a != b for a, b in itertools.pairwise(classes))
    if changes < 2:
        return False
    return not (len(tokens) > 1 and any(len(t) >= 3 and t.isalpha() for t in tokens))


def is_fingerprinted(path: str) -> bool:
    """Whether the file name carries a content hash, so that the file never changes.

    A hash is a part of the name set off by ``.``, ``-`` or ``_`` (and not the whole name, nor
    the extension) that is either 8+ hex digits with a letter among them (``app.3f2a9c1b.js``,
    ``chunk_7d9e1a2b3c.mjs``; all-digit runs are dates and versions), or 8+ characters of
    ``[A-Za-z0-9_-]`` that mix digits and letters the way random text does
    (``main-BxK9fQ2a.css``, ``index-D-Pb9vYx.js``): with a digit, two letters, at least two
    changes between digits and letters, and no word of three letters or more inside it.
    Deliberately cautious: a file wrongly marked immutable is served stale for a year.
    """
    name = path.rsplit("/", 1)[-1]
    parts = name.split(".")
    if len(parts) >= 2:
        parts = parts[:-1]  # the extension
        if parts == [""]:
            return False  # a dot file
    elif len(_SEPARATORS.split(name)) < 2:
        return False  # nothing but the would-be hash
    for part in parts:
        tokens = _SEPARATORS.split(part)
        for i in range(len(tokens)):
            for j in range(i + 1, len(tokens) + 1):
                run_tokens = tokens[i:j]
                if len(parts) == 1 and "." not in name and j - i == len(tokens):
                    continue  # the whole name
                run = _join(part, tokens, i, j)
                if _hash_like(run, run_tokens):
                    return True
    return False


def _join(part: str, tokens: list[str], i: int, j: int) -> str:
    """``tokens[i:j]`` with the separators ``part`` has between them."""
    start = sum(len(t) + 1 for t in tokens[:i])
    length = sum(len(t) for t in tokens[i:j]) + (j - i - 1)
    return part[start : start + length]


# -- the work on one file --------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    path: str
    source: str  # absolute
    staging: str  # the directory of the spool files
    gzip: bool
    br: bool


@dataclass(frozen=True)
class _Variant:
    sha256: str
    size: int
    spool: str  # the file holding it, from offset on
    offset: int

    def doc(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size}


@dataclass(frozen=True)
class _Done:
    path: str
    sha256: str
    size: int
    gzip: _Variant | None
    br: _Variant | None


def _gzip(data: bytes) -> bytes:
    # wbits 31: a gzip wrapper with no name and mtime 0, so the output depends on data alone.
    packer = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    return packer.compress(data) + packer.flush()


_SPOOLS: dict[str, tuple[str, int]] = {}  # staging directory -> this process's spool (name, fd)


def _spool(staging: str) -> tuple[str, int]:
    spool = _SPOOLS.get(staging)
    if spool is None:
        name = os.path.join(staging, f"spool-{os.getpid()}")
        spool = _SPOOLS[staging] = (name, os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    return spool


def _close_spool(staging: str) -> None:
    spool = _SPOOLS.pop(staging, None)
    if spool is not None:
        os.close(spool[1])


def _keep(original: int, variant: bytes, staging: str) -> _Variant | None:
    if len(variant) >= KEEP_RATIO * original:
        return None
    name, fd = _spool(staging)
    offset = os.lseek(fd, 0, os.SEEK_END)
    view = memoryview(variant)
    while view:
        view = view[os.write(fd, view) :]
    return _Variant(hashlib.sha256(variant).hexdigest(), len(variant), name, offset)


def _process(job: _Job) -> _Done:
    if not (job.gzip or job.br):
        with open(job.source, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        return _Done(job.path, digest, size, None, None)
    with open(job.source, "rb") as f:
        data = f.read()
    gz = _keep(len(data), _gzip(data), job.staging) if job.gzip else None
    br = None
    if job.br:
        packed: bytes = brotli.compress(data, quality=BROTLI_QUALITY)
        br = _keep(len(data), packed, job.staging)
    return _Done(job.path, hashlib.sha256(data).hexdigest(), len(data), gz, br)


def _inline(jobs: list[_Job]) -> list[_Done]:
    try:
        return [_process(job) for job in jobs]
    finally:
        if jobs:
            _close_spool(jobs[0].staging)


def _process_all(jobs: list[_Job], workers: int | None, heavy_bytes: int) -> list[_Done]:
    if workers is None:
        workers = min(os.cpu_count() or 1, 8)
    if workers <= 1 or heavy_bytes < PARALLEL_MIN_BYTES or len(jobs) < 2:
        return _inline(jobs)
    context = multiprocessing.get_context("forkserver")
    # Workers fork from a server that has this module (and brotli) loaded already: 0.1 s less
    # per build. (No effect once the server runs; "__main__" is the default preload.)
    context.set_forkserver_preload(["__main__", __name__])
    chunk = max(1, min(64, len(jobs) // (workers * 8)))
    try:
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            return list(pool.map(_process, jobs, chunksize=chunk))
    except BrokenProcessPool:
        # The workers could not start (a __main__ that cannot be imported again, say): the
        # results are not lost work to worry about, the spools are per process.
        return _inline(jobs)


# -- the archive -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltBundle:
    hash: str  # sha256 of the archive file
    size: int  # bytes of the archive file
    files: int
    source_bytes: int
    compressed_files: int  # files with at least one variant
    manifest: dict[str, Any]
    reused_files: int = 0  # files whose variants came from an earlier archive
    offsets: dict[str, int] = field(default_factory=dict)  # member -> where its data starts


def _checked(src: Path, files: Iterable[str]) -> list[str]:
    paths = sorted(files)
    for i, path in enumerate(paths):
        if clean_path(path) != path or path.endswith("/"):
            raise BundleError("not a normalised file path", path)
        if i and paths[i - 1] == path:
            raise BundleError("the bundle lists this path more than once", path)
        mode = os.lstat(src / path).st_mode
        if not stat.S_ISREG(mode):
            raise BundleError("not a regular file", path)
    return paths


def _reused(job: _Job, earlier: Earlier, spool: str) -> _Done | None:
    """The file's variants from ``earlier`` (in the archive linked at ``spool``), if it has
    this very file with the same variants wanted."""
    with open(job.source, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    found = earlier.variants(job.path, digest, (job.gzip, job.br))
    if found is None:
        return None
    gz, br = (
        None if v is None else _Variant(v.sha256, v.size, spool, v.offset) for v in found
    )
    return _Done(job.path, digest, size, gz, br)


def build_bundle(
    src: Path,
    files: list[str],
    out: Path,
    *,
    workers: int | None = None,
    earlier: Earlier | None = None,
) -> BuiltBundle:
    """Write the node archive of the files ``files`` (paths relative to ``src``) at ``out``.

    With ``earlier`` (an archive built before, see ``edgeplane.bundles.reuse``), the files it
    holds unchanged take their variants from it instead of being compressed again."""
    paths = _checked(src, files)
    present = set(paths)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=out.parent))
    try:
        jobs: list[_Job] = []
        for path in paths:
            source = src / path
            gzip, br = wanted(path, source.stat().st_size, present)
            jobs.append(_Job(path, str(source), str(staging), gzip, br))
        reused: dict[str, _Done] = {}
        if earlier is not None:
            spool = str(staging / "earlier.tar")  # a link: pruning cannot take it away
            try:
                os.link(earlier.archive, spool)
            except OSError:
                spool = str(earlier.archive)
            for job in jobs:
                if job.gzip or job.br:
                    hit = _reused(job, earlier, spool)
                    if hit is not None:
                        reused[job.path] = hit
        todo = [job for job in jobs if job.path not in reused]
        heavy = sum(os.stat(job.source).st_size for job in todo if job.gzip or job.br)
        by_path = {d.path: d for d in _process_all(todo, workers, heavy)} | reused
        done = [by_path[job.path] for job in jobs]
        manifest = _manifest(paths, by_path)
        digest, size, offsets = _write(out, manifest, _members(jobs, done))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BuiltBundle(
        hash=digest,
        size=size,
        files=len(paths),
        source_bytes=manifest["total_bytes"],
        compressed_files=sum(1 for d in done if d.gzip or d.br),
        manifest=manifest,
        reused_files=len(reused),
        offsets=offsets,
    )


def _manifest(paths: list[str], done: dict[str, _Done]) -> dict[str, Any]:
    entries: dict[str, Any] = {}
    for path in paths:
        d = done[path]
        entries[path] = {
            "sha256": d.sha256,
            "size": d.size,
            "type": content_type(path),
            "immutable": is_fingerprinted(path),
            "gzip": d.gzip.doc() if d.gzip else None,
            "br": d.br.doc() if d.br else None,
        }
    return {
        "format": FORMAT,
        "files": entries,
        "total_bytes": sum(d.size for d in done.values()),
    }


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode("ascii")


@dataclass(frozen=True, order=True)
class _Member:
    name: str
    source: str
    offset: int  # where the data starts in source
    size: int
    spooled: bool  # a variant, in a spool file; else a file of the bundle, whole


def _members(jobs: list[_Job], done: list[_Done]) -> list[_Member]:
    members: list[_Member] = []
    for job, d in zip(jobs, done, strict=True):
        members.append(_Member(FILES + job.path, job.source, 0, d.size, spooled=False))
        for suffix, v in ((".gz", d.gzip), (".br", d.br)):
            if v is not None:
                name = f"{FILES}{job.path}{suffix}"
                members.append(_Member(name, v.spool, v.offset, v.size, spooled=True))
    return sorted(members)


def _write(
    out: Path, manifest: dict[str, Any], members: list[_Member]
) -> tuple[str, int, dict[str, int]]:
    with ExitStack() as stack:
        tar = TarWriter(stack.enter_context(out.open("wb")))
        tar.add_bytes(MANIFEST, manifest_bytes(manifest))
        spools: dict[str, BinaryIO] = {}
        for m in members:
            if m.spooled:
                if m.source not in spools:
                    spools[m.source] = stack.enter_context(open(m.source, "rb"))
                spool = spools[m.source]
                spool.seek(m.offset)
                tar.add_file(m.name, spool, m.size)
                continue
            with open(m.source, "rb") as f:
                tar.add_file(m.name, f, m.size)
        tar.close()
        return tar.sha256(), tar.size, tar.offsets


# -- tar -------------------------------------------------------------------------------------


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


_MODE, _ZERO = _octal(0o644, 8), _octal(0, 8)
_MTIME = _octal(0, 12)


def _ustar_header(name: bytes, prefix: bytes, size: int) -> bytes:
    header = b"".join(
        (
            name.ljust(100, b"\0"),
            _MODE,
            _ZERO,  # uid
            _ZERO,  # gid
            _octal(size, 12),
            _MTIME,
            b" " * 8,  # the checksum, counted as spaces
            tarfile.REGTYPE,
            b"\0" * 100,  # linkname
            b"ustar\x0000",
            b"\0" * 64,  # uname, gname
            b"\0" * 16,  # devmajor, devminor: none, as tarfile writes them
            prefix.ljust(155, b"\0"),
            b"\0" * 12,
        )
    )
    checksum = b"%06o\0 " % sum(header)
    return header[:148] + checksum + header[156:]


def _split(name: bytes) -> tuple[bytes, bytes] | None:
    """``name`` as ustar's (name, prefix), or None if it does not fit."""
    if len(name) <= 100:
        return name, b""
    for i in range(len(name) - 101, min(len(name), 156)):
        if i >= 0 and name[i : i + 1] == b"/":
            return name[i + 1 :], name[:i]
    return None


def tar_header(name: str, size: int) -> bytes:
    """The header of a regular file in a deterministic tar: mode 0644, mtime 0, owner 0.

    A ustar header when the name fits (the common case, built here: ``tarfile`` spends three
    times as long per member), else the pax header ``tarfile`` writes.
    """
    raw = name.encode("utf-8", "surrogateescape")
    fits = _split(raw) if raw.isascii() and size < 8**11 else None
    if fits is not None:
        return _ustar_header(fits[0], fits[1], size)
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class TarWriter:
    """Writes a deterministic uncompressed tar of regular files, hashing it on the way."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._hash = hashlib.sha256()
        self.size = 0
        self.offsets: dict[str, int] = {}  # member -> where its data starts

    def _emit(self, data: bytes) -> None:
        self._out.write(data)
        self._hash.update(data)
        self.size += len(data)

    def _pad(self, size: int) -> None:
        if size % tarfile.BLOCKSIZE:
            self._emit(b"\0" * (tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE))

    def add_bytes(self, name: str, data: bytes) -> None:
        self._emit(tar_header(name, len(data)))
        self.offsets[name] = self.size
        self._emit(data)
        self._pad(len(data))

    def add_file(self, name: str, source: BinaryIO, size: int) -> None:
        """``size`` bytes of ``source`` from where it stands."""
        self._emit(tar_header(name, size))
        self.offsets[name] = self.size
        left = size
        while left:
            chunk = source.read(min(left, CHUNK))
            if not chunk:
                raise BundleError("the file changed while the archive was written", name)
            self._emit(chunk)
            left -= len(chunk)
        self._pad(size)

    def close(self) -> None:
        """The end-of-archive blocks, and the padding to a whole record, as tarfile does."""
        self._emit(b"\0" * (2 * tarfile.BLOCKSIZE))
        self._pad_record()

    def _pad_record(self) -> None:
        if self.size % tarfile.RECORDSIZE:
            self._emit(b"\0" * (tarfile.RECORDSIZE - self.size % tarfile.RECORDSIZE))

    def sha256(self) -> str:
        return self._hash.hexdigest()
