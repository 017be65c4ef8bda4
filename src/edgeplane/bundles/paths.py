"""The one rule for a path inside a bundle, applied wherever a path comes in.

``clean_path`` turns a member name of an upload (or of a node archive, or a file found by
``pack_directory``) into the normalised relative POSIX path it is stored and served under, or
refuses it. Refused: absolute paths, any ``..`` segment (even one that would stay inside: a
name has one spelling), backslashes, NUL and other control characters, bytes that are not
UTF-8, a path longer than the limit or with a segment longer than a file system allows, and the
top-level ``.edgeplane/`` (reserved for Edgeplane's own files beside a site). ``.`` segments and
repeated slashes are dropped. A trailing ``/`` marks a directory: the result keeps it, so that a
caller can skip directories with ``path.endswith("/")`` (the bundle root itself is ``"./"``).
"""

from __future__ import annotations

import re
import unicodedata

from edgeplane.bundles.errors import BundleError
from edgeplane.bundles.limits import BundleLimits

RESERVED = ".edgeplane"
MAX_SEGMENT_BYTES = 255  # NAME_MAX of the file systems an edge node unpacks onto
ROOT = "./"


_ASCII_BAD = re.compile(r"[\x00-\x1f\x7f\\]")


def _refuse_character(char: str, name: str) -> None:
    if char == "\\":
        raise BundleError("a path may not contain a backslash (use / between folders)", name)
    if 0xD800 <= ord(char) <= 0xDFFF:
        raise BundleError("a path must be UTF-8", name)
    if unicodedata.category(char) == "Cc":
        raise BundleError("a path may not contain control characters", name)


def _check_characters(name: str) -> None:
    if name.isascii():  # the common case, at the speed of a regex
        bad = _ASCII_BAD.search(name)
        if bad:
            _refuse_character(bad.group(), name)
        return
    for char in name:
        _refuse_character(char, name)


def clean_path(name: str, *, max_bytes: int = BundleLimits.max_path_bytes) -> str:
    if name == "":
        raise BundleError("a file name may not be empty")
    _check_characters(name)
    if name.startswith("/"):
        raise BundleError("a path must be relative to the bundle, not absolute", name)
    is_dir = name.endswith("/")
    segments: list[str] = []
    depth = 0
    has_parent_ref = False
    for segment in name.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            depth -= 1
            if depth < 0:
                raise BundleError("a path may not leave the bundle", name)
            has_parent_ref = True
            continue
        depth += 1
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise BundleError(
                f"a file or folder name may not be longer than {MAX_SEGMENT_BYTES} bytes", name
            )
        segments.append(segment)
    if has_parent_ref:
        raise BundleError("a path may not contain a '..' segment", name)
    if not segments:
        if is_dir:
            return ROOT
        raise BundleError("a file name may not be empty", name)
    if segments[0] == RESERVED:
        raise BundleError(f"the top-level name {RESERVED}/ is reserved for Edgeplane", name)
    path = "/".join(segments)
    if len(path.encode("utf-8")) > max_bytes:
        raise BundleError(f"a path may not be longer than {max_bytes} bytes", name)
    return path + "/" if is_dir else path
