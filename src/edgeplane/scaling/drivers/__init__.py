"""Provider drivers (replaced by the drivers branch)."""

from __future__ import annotations

from pathlib import Path

from edgeplane.scaling.drivers.base import Driver

KINDS = ("local", "cloud")


def driver_for(kind: str, *, root: Path) -> Driver:
    raise NotImplementedError(kind)
