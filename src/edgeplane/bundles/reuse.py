"""Precompressed variants taken from an earlier node archive instead of compressed again.

A new deploy mostly changes a few files: their gzip and brotli variants are the only ones to
compute. ``Earlier.open`` reads a node archive built before (kept by the control plane, see
``edgeplane.services.bundles``) once: it checks that its sha256 is its name (a damaged copy is
not used) and notes where each member's data lies. ``variants`` then answers, for a file of the
new bundle, whether the earlier archive holds the same file (same path, same sha256) with the
same variants wanted (its type, its size, no ``x.gz`` / ``x.br`` of its own beside it): then
its variants, or its lack of them, are what compressing it again would give, and the new
archive copies their bytes from the earlier one. Compression is deterministic; the manifest
carries each variant's sha256 as before, and nodes check every byte against it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeplane.bundles.build import FILES, MANIFEST, BuiltBundle, wanted
from edgeplane.bundles.errors import BundleError
from edgeplane.bundles.tarread import TarReader

CHUNK = 1024 * 1024
# Part of the name of the folder earlier archives are kept in: bump it when the variants'
# settings change (levels, thresholds), so that none built with the old ones is reused.
RECIPE = 1


@dataclass(frozen=True)
class Variant:
    sha256: str
    size: int
    offset: int  # of its data in the earlier archive


@dataclass(frozen=True)
class Entry:
    sha256: str
    size: int
    wants: tuple[bool, bool]  # gzip, br: what the build wanted for it
    gzip: Variant | None
    br: Variant | None


class Earlier:
    """An earlier node archive whose variants a new build may copy."""

    def __init__(self, archive: Path, entries: dict[str, Entry]) -> None:
        self.archive = archive
        self.entries = entries

    @classmethod
    def open(cls, archive: Path) -> Earlier | None:
        """The archive (``<sha256>.tar``) and its entries, or None when it cannot be used."""
        try:
            manifest, offsets = _read(archive)
            return cls(archive, _entries(manifest, offsets))
        except (OSError, ValueError, KeyError, TypeError, BundleError):
            return None

    @classmethod
    def built(cls, archive: Path, built: BuiltBundle) -> Earlier:
        """The archive ``build_bundle`` just wrote, without reading it again."""
        return cls(archive, _entries(built.manifest, built.offsets))

    def variants(
        self, path: str, sha256: str, wants: tuple[bool, bool]
    ) -> tuple[Variant | None, Variant | None] | None:
        """The earlier variants of this exact file, or None when it must be compressed."""
        entry = self.entries.get(path)
        if entry is None or entry.sha256 != sha256 or entry.wants != wants:
            return None
        return entry.gzip, entry.br


def _read(archive: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """The manifest of the archive and where each member's data starts, once its sha256 is
    found to be its name."""
    name = archive.name.removesuffix(".tar")
    with archive.open("rb", buffering=CHUNK) as f:
        tar = TarReader(f)
        first = tar.next()
        if first is None or first.name != MANIFEST:
            raise BundleError("not a node archive")
        manifest: dict[str, Any] = json.loads(tar.read(first.size))
        offsets: dict[str, int] = {}
        while (member := tar.next()) is not None:
            offsets[member.name] = tar.size
            while tar.read(CHUNK):
                pass
        tar.drain()
    if tar.digest.hexdigest() != name:
        raise BundleError("the earlier archive is not what its name says")
    return manifest, offsets


def _entries(manifest: dict[str, Any], offsets: dict[str, int]) -> dict[str, Entry]:
    files: dict[str, Any] = manifest["files"]
    present = frozenset(files)
    entries: dict[str, Entry] = {}
    for path, meta in files.items():
        variants: list[Variant | None] = []
        for suffix, key in ((".gz", "gzip"), (".br", "br")):
            doc = meta.get(key)
            variants.append(
                None
                if doc is None
                else Variant(doc["sha256"], doc["size"], offsets[FILES + path + suffix])
            )
        entries[path] = Entry(
            sha256=meta["sha256"],
            size=meta["size"],
            wants=wanted(path, meta["size"], present),
            gzip=variants[0],
            br=variants[1],
        )
    return entries
