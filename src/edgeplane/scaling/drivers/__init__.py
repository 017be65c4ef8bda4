"""The provider drivers of scaling groups (``base.Driver``): ``local`` (origin processes on the
control plane's machine, ``local.LocalDriver``) and ``cloud`` (machines of a cloud through
Apache Libcloud, ``cloud.CloudDriver``).

:func:`driver_for` gives one shared driver object per kind (the local one per root folder):
the local driver keeps the processes it started, the cloud driver its connections, so every
caller must use the same object.
"""

from __future__ import annotations

import threading
from pathlib import Path

from edgeplane.scaling.drivers.base import Driver, DriverError, Instance, InstanceSpec
from edgeplane.scaling.drivers.cloud import CloudDriver
from edgeplane.scaling.drivers.local import LocalDriver

__all__ = ["KINDS", "Driver", "DriverError", "Instance", "InstanceSpec", "driver_for"]

KINDS = ("local", "cloud")

_lock = threading.Lock()
_local: dict[Path, LocalDriver] = {}
_cloud: CloudDriver | None = None


def driver_for(kind: str, *, root: Path) -> Driver:
    """The shared driver of ``kind``; ``root`` is the local driver's folder
    (``$EDGEPLANE_HOME/scaling``), unused by the cloud driver."""
    global _cloud
    with _lock:
        if kind == "local":
            key = Path(root).resolve()
            if key not in _local:
                _local[key] = LocalDriver(key)
            return _local[key]
        if kind == "cloud":
            if _cloud is None:
                _cloud = CloudDriver()
            return _cloud
    raise DriverError(f"unknown driver {kind!r}: one of {', '.join(KINDS)}")
