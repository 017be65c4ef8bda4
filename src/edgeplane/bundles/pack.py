"""Packing a site directory for upload (the CLI's side): a plain tar of its files.

``pack_directory`` walks ``root`` in sorted order and writes an uncompressed, deterministic tar
of its regular files under their relative paths, applying the rules the control plane will
apply, so that a mistake shows on the user's machine with the file's name: the same path rules
(``clean_path``) and the same limits. ``.git`` folders and ``.DS_Store`` files are left out. A
symlink whose target lies inside ``root`` is followed (a file's content is stored as a regular
file; a folder is walked, and a link back into one of its own parents is refused as a loop); a
symlink out of ``root``, or to nothing, is refused, and so are sockets, FIFOs and devices.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from edgeplane.bundles.build import TarWriter
from edgeplane.bundles.errors import BundleError
from edgeplane.bundles.limits import BundleLimits, format_mib
from edgeplane.bundles.paths import clean_path
from edgeplane.bundles.read import archive_format

SKIPPED_DIRS = frozenset({".git"})
SKIPPED_FILES = frozenset({".DS_Store", ".git"})  # .git is a file in a git worktree


@dataclass(frozen=True)
class PackResult:
    files: int
    bytes: int


def is_archive(path: Path) -> bool:
    """Whether ``path`` is a regular file that starts like a tar, gzip or zip archive."""
    return path.is_file() and archive_format(path) is not None


class _Walk:
    def __init__(self, root: str, limits: BundleLimits, skip: str | None) -> None:
        self.root = root
        self.limits = limits
        self.skip = skip  # the output file, when it lies inside root
        self.files: list[tuple[str, str, int]] = []  # (path, real source, size)
        self.total = 0

    def directory(self, real: str, rel: str, parents: frozenset[str]) -> None:
        with os.scandir(real) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            path = f"{rel}{entry.name}"
            if entry.is_symlink():
                self._link(entry, path, parents)
            elif entry.is_dir(follow_symlinks=False):
                if entry.name not in SKIPPED_DIRS:
                    self.directory(entry.path, path + "/", parents | {entry.path})
            elif entry.is_file(follow_symlinks=False):
                if entry.name not in SKIPPED_FILES and entry.path != self.skip:
                    self._file(path, entry.path, entry.stat(follow_symlinks=False).st_size)
            else:
                raise BundleError("a socket, FIFO or device cannot be part of a bundle", path)

    def _link(self, entry: os.DirEntry[str], path: str, parents: frozenset[str]) -> None:
        shown = os.readlink(entry.path)
        target = os.path.realpath(entry.path)
        if os.path.commonpath([self.root, target]) != self.root:
            raise BundleError(f"a link may not point out of the bundle: -> {shown}", path)
        try:
            st = os.stat(target)
        except FileNotFoundError:
            raise BundleError(f"a link points to nothing: -> {shown}", path) from None
        if stat.S_ISDIR(st.st_mode):
            if target in parents:
                raise BundleError(f"a link makes a loop: -> {shown}", path)
            if entry.name not in SKIPPED_DIRS:
                self.directory(target, path + "/", parents | {target})
        elif stat.S_ISREG(st.st_mode):
            if entry.name not in SKIPPED_FILES and target != self.skip:
                self._file(path, target, st.st_size)
        else:
            raise BundleError("a socket, FIFO or device cannot be part of a bundle", path)

    def _file(self, path: str, source: str, size: int) -> None:
        limits = self.limits
        clean = clean_path(path, max_bytes=limits.max_path_bytes)
        if size > limits.max_file_bytes:
            raise BundleError(
                f"the file is {format_mib(size)}, more than the limit of "
                f"{format_mib(limits.max_file_bytes)} per file",
                clean,
            )
        self.total += size
        if self.total > limits.max_total_bytes:
            limit = format_mib(limits.max_total_bytes)
            raise BundleError(f"the bundle grows past the limit of {limit} here", clean)
        if len(self.files) >= limits.max_files:
            raise BundleError(f"the bundle has more than {limits.max_files} files", clean)
        self.files.append((clean, source, size))


def pack_directory(root: Path, out: Path, limits: BundleLimits) -> PackResult:
    """Write a tar of the site in ``root`` at ``out``; ``BundleError`` names a file refused."""
    real_root = os.path.realpath(root)
    if not os.path.isdir(real_root):
        raise BundleError(f"{root} is not a directory")
    real_out = os.path.realpath(out)
    walk = _Walk(real_root, limits, real_out)
    walk.directory(real_root, "", frozenset({real_root}))
    if not walk.files:
        raise BundleError(f"{root} holds no files to upload")
    walk.files.sort()
    with out.open("wb") as f:
        tar = TarWriter(f)
        for path, source, size in walk.files:
            with open(source, "rb") as data:
                tar.add_file(path, data, size)
        tar.close()
    return PackResult(files=len(walk.files), bytes=walk.total)
