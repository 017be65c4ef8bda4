"""Where each data record of a GeoIP City database places its clients, decoded once per database.

Decoding the records is most of a ranking build (``routing.georank``): about 30 s of
GeoLite2-City's 458,435 records here, against a few seconds to rank the 133,375 distinct
points they hold and write the result. It depends on the database alone, so a build keeps it
on disk beside the ranking databases, keyed by the database's hash, and a new region table
(a region added, a node of a new region started) reads it back instead of decoding again.

numpy is imported by the functions, not at the top: the edge agent imports ``georank``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeplane.routing import mmdb
from edgeplane.routing.geoip import location_from_record

if TYPE_CHECKING:
    import numpy as np

FORMAT = 1  # of the file: a change makes old files unread (rebuilt)
# What ``location_from_record`` reads of a record to place it.
LOCATING_KEYS = frozenset({"location", "country", "registered_country", "continent"})


@dataclass(frozen=True)
class Points:
    """The tree's distinct data pointers (sorted) and, per pointer, the index of its point
    in ``latitude`` / ``longitude`` (the distinct points), or -1 when it has none."""

    pointers: np.ndarray
    index: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray


def decode(db: mmdb.Database) -> Points:
    """Every data record of ``db`` placed as ``route_request`` places a client (its
    coordinates, else its country's point, else its continent's)."""
    import numpy as np

    values = np.concatenate([db.left, db.right])
    pointers = np.unique(values[values > db.node_count])
    decoder = mmdb.Decoder(db.buffer, db.data_start)
    seen: dict[tuple[float, float], int] = {}
    index = np.empty(len(pointers), dtype=np.int32)
    for i, pointer in enumerate(pointers.tolist()):
        client = location_from_record(
            "", decoder.decode_map(db.data_offset(pointer), LOCATING_KEYS)
        )
        if client.latitude is None or client.longitude is None:
            index[i] = -1
            continue
        index[i] = seen.setdefault((client.latitude, client.longitude), len(seen))
    latitude = np.fromiter((p[0] for p in seen), dtype=np.float64, count=len(seen))
    longitude = np.fromiter((p[1] for p in seen), dtype=np.float64, count=len(seen))
    return Points(pointers.astype(np.uint32), index, latitude, longitude)


def save(points: Points, path: Path) -> None:
    """``points`` into ``path`` (replaced atomically)."""
    import numpy as np

    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        np.savez(f, format=np.array(FORMAT), **_arrays(points))
    os.replace(tmp, path)


def load(path: Path) -> Points | None:
    """The points saved in ``path``; None when it is missing, damaged or of another format."""
    import numpy as np

    try:
        with np.load(path) as f:
            if int(f["format"]) != FORMAT:
                return None
            return Points(f["pointers"], f["index"], f["latitude"], f["longitude"])
    except (OSError, ValueError, KeyError):
        return None


def cached(db: mmdb.Database, path: Path) -> Points:
    """The points of ``db``: read from ``path``, else decoded and saved there (before the
    caller goes on, so that a build stopped later still leaves them for the next)."""
    points = load(path)
    if points is None:
        points = decode(db)
        save(points, path)
    return points


def _arrays(points: Points) -> dict[str, Any]:
    return {
        "pointers": points.pointers,
        "index": points.index,
        "latitude": points.latitude,
        "longitude": points.longitude,
    }
