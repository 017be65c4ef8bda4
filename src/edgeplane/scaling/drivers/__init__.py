"""The provider drivers of scaling groups (``base.Driver``): ``local`` (origin processes on the
control plane's machine, ``local.LocalDriver``) and ``cloud`` (machines of a cloud through
Apache Libcloud, ``cloud.CloudDriver``).

:func:`driver_for` gives one shared driver object per kind (the local one per root folder):
the local driver keeps the processes it started, the cloud driver its connections, so every
caller must use the same object. Both keep their state under ``root``
(``$EDGEPLANE_HOME/scaling``): the local driver its instances' folders, the cloud driver the
groups' templates in ``root/.cloud`` (a name no group's folder can have: ``group_path``
escapes dots).
"""

from __future__ import annotations

import threading
from pathlib import Path

from edgeplane.scaling.drivers.base import Driver, DriverError, Instance, InstanceSpec
from edgeplane.scaling.drivers.cloud import CloudDriver
from edgeplane.scaling.drivers.local import LocalDriver

__all__ = [
    "KINDS", "Driver", "DriverError", "Instance", "InstanceSpec", "driver_for", "stop_local",
]  # fmt: skip

KINDS = ("local", "cloud")

_lock = threading.Lock()
_local: dict[Path, LocalDriver] = {}
_cloud: dict[Path, CloudDriver] = {}


def driver_for(kind: str, *, root: Path) -> Driver:
    """The shared driver of ``kind`` over ``root`` (``$EDGEPLANE_HOME/scaling``)."""
    key = Path(root).resolve()
    with _lock:
        if kind == "local":
            if key not in _local:
                _local[key] = LocalDriver(key)
            return _local[key]
        if kind == "cloud":
            if key not in _cloud:
                _cloud[key] = CloudDriver(state_dir=key / ".cloud")
            return _cloud[key]
    raise DriverError(f"unknown driver {kind!r}: one of {', '.join(KINDS)}")


def stop_local() -> None:
    """Stop every process the local drivers of this process started (``edgeplane up`` stops
    every process it started; the controller launches them again at its next start)."""
    with _lock:
        drivers = list(_local.values())
    for driver in drivers:
        driver.stop_all()
