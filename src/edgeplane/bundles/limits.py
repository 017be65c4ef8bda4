"""How big a bundle may be: total bytes, bytes per file, number of files, bytes per path."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

MiB = 1024 * 1024


def format_mib(n: int) -> str:
    """``n`` bytes in MiB for a message: ``25 MiB``, ``1.5 MiB``, ``0.95 MiB``."""
    return f"{n / MiB:.2f}".rstrip("0").rstrip(".") + " MiB"


@dataclass(frozen=True)
class BundleLimits:
    max_total_bytes: int = 512 * MiB
    max_file_bytes: int = 25 * MiB
    max_files: int = 20_000
    max_path_bytes: int = 1024


_ENV = {
    "EDGEPLANE_BUNDLE_MAX_BYTES": "max_total_bytes",
    "EDGEPLANE_BUNDLE_MAX_FILE_BYTES": "max_file_bytes",
    "EDGEPLANE_BUNDLE_MAX_FILES": "max_files",
}


def from_env(environ: Mapping[str, str] = os.environ) -> BundleLimits:
    """The default limits, with those the environment sets (a positive integer each)."""
    changes: dict[str, int] = {}
    for variable, field in _ENV.items():
        text = environ.get(variable, "").strip()
        if not text:
            continue
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{variable} must be an integer, not {text!r}") from None
        if value <= 0:
            raise ValueError(f"{variable} must be a positive integer, not {text!r}")
        changes[field] = value
    return replace(BundleLimits(), **changes)
