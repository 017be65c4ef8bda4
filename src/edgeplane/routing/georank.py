"""A GeoIP database of *rankings*: each client network's nearest regions, nearest first.

PowerDNS's geoip backend answers a name from a list of templated names, the first that has
records (``%ci.<set>``, ``%re.<set>``, …, ``all.<set>``); the placeholders are fields of the
client's record in a MaxMind DB. This module builds, from a City (or Country) database, a
database with the same search tree whose records hold the client's ranking of the regions in
those fields: slot 1 (the nearest region) in ``city.names.en`` (``%ci``), slot 2 in
``subdivisions[0].iso_code`` (``%re``), slot 3 in ``country.iso_code`` (``%co``), slot 4 in
``continent.code`` (``%cn``) and slot 5 in ``autonomous_system_organization`` (``%na``), each
``r-<region code>``; unused slots hold ``x``. A name's service then lists the slots and the
records exist for its candidate regions only, so the first slot with records is the nearest
candidate: the decision of ``edgeplane.routing.decide.rank_sites``, made in C++.

The client's point is the one ``route_request`` uses (``location_from_record``: the record's
coordinates, else its country's representative point, else its continent's), and each record
also carries it as ``location`` so that LUA's ``latlon()`` (the fallback) agrees. Networks
without any location get the ``x`` slots: every candidate (``all``).

Built by rewriting the data section only: the tree's distinct data records (458,435 in
GeoLite2-City 2018) are decoded once each (shared values once in all), ranked, encoded as
one small record per distinct (point, ranking), and the tree's records remapped with numpy.
:func:`rank_database` keeps the result on disk keyed by the source file's hash and the
region table; it is rebuilt only when either changes, in a process of its own
(``python -m edgeplane.routing.georank``): a build decodes the whole source (a peak of about
400 MiB for GeoLite2-City, and ~70 MiB its caller's heap would keep for good).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeplane.routing import mmdb
from edgeplane.routing.decide import Site, rank_sites
from edgeplane.routing.geoip import ClientLocation

SLOTS = 5
PLACEHOLDERS = ("%ci", "%re", "%co", "%cn", "%na")  # slot i is read by PLACEHOLDERS[i]
NO_REGION = "x"
BUILDER_VERSION = 1
DATABASE_TYPE = "Edgeplane-Region-Ranking"
ACCURACY_KM = 1000  # of a record's location: the region is what it locates


@dataclass(frozen=True)
class RegionPoint:
    code: str
    latitude: float
    longitude: float


def slot_value(code: str) -> str:
    """What a slot holds for region ``code`` (and the label of its records)."""
    return f"r-{code}"


@dataclass(frozen=True)
class RankDatabase:
    path: Path
    rankings: frozenset[tuple[str, ...]]  # every distinct top-SLOTS ranking (region codes)
    build_s: float | None  # None: read from the cache


def _record(ranking: Sequence[str], point: tuple[float, float] | None) -> dict[str, Any]:
    values = [slot_value(c) for c in ranking[:SLOTS]]
    values += [NO_REGION] * (SLOTS - len(values))
    record: dict[str, Any] = {
        "city": {"names": {"en": values[0]}},
        "subdivisions": [{"iso_code": values[1]}],
        "country": {"iso_code": values[2]},
        "continent": {"code": values[3]},
        "autonomous_system_organization": values[4],
    }
    if point is not None:
        record["location"] = {
            "latitude": point[0],
            "longitude": point[1],
            "accuracy_radius": ACCURACY_KM,
        }
    return record


class _Records:
    """``mmdb.encode(_record(ranking, point))``, from the ranking's pairs encoded once and
    the point's two doubles (133,375 records: 18 s through ``encode``, 0.3 s this way)."""

    def __init__(self) -> None:
        self._rankings: dict[tuple[str, ...], bytes] = {}
        self._location = mmdb.encode("location") + mmdb.map_header(3) + mmdb.encode("latitude")
        self._longitude = mmdb.encode("longitude")
        self._accuracy = mmdb.encode("accuracy_radius") + mmdb.encode(ACCURACY_KM)

    def __call__(self, ranking: tuple[str, ...], point: tuple[float, float] | None) -> bytes:
        pairs = self._rankings.get(ranking)
        if pairs is None:
            pairs = self._rankings[ranking] = mmdb.encode(_record(ranking, None))[1:]
        if point is None:
            return mmdb.map_header(5) + pairs
        return b"".join((
            mmdb.map_header(6),
            pairs,
            self._location,
            mmdb.double(point[0]),
            self._longitude,
            mmdb.double(point[1]),
            self._accuracy,
        ))  # fmt: skip


def build(
    source: bytes, regions: Sequence[RegionPoint], points_file: Path | None = None
) -> tuple[bytes, frozenset[tuple[str, ...]]]:
    """The ranking database of ``source`` (a .mmdb) for ``regions``; and its rankings.
    ``points_file``: where the source's decoded points are kept (``geopoints.cached``)."""
    import numpy as np  # here, not at the top: the agent imports this module (see mmdb)

    from edgeplane.routing import geopoints

    db = mmdb.read(source)
    points = geopoints.decode(db) if points_file is None else geopoints.cached(db, points_file)
    sites = [Site(r.code, r.code, r.latitude, r.longitude) for r in regions]
    encode = _Records()
    data = bytearray(encode((), None))  # the record of every network without a point
    rankings: set[tuple[str, ...]] = set() if (points.index >= 0).all() else {()}
    offsets = np.zeros(max(len(points.latitude), 1), dtype=np.uint32)  # (indexed below)
    placed_at = zip(points.latitude.tolist(), points.longitude.tolist(), strict=True)
    for i, point in enumerate(placed_at):
        ranking = tuple(r.site.code for r in rank_sites(_placed(point), sites)) if sites else ()
        rankings.add(ranking[:SLOTS])
        offsets[i] = len(data)
        data += encode(ranking, point)
    at = np.where(points.index >= 0, offsets[np.maximum(points.index, 0)], 0)
    remapped = (db.node_count + mmdb.DATA_SEPARATOR + at).astype(np.uint32)

    def remap(records: mmdb.Records) -> mmdb.Records:
        out = records.copy()
        is_data = records > db.node_count
        out[is_data] = remapped[np.searchsorted(points.pointers, records[is_data])]
        return out

    out = mmdb.write(
        db,
        remap(db.left),
        remap(db.right),
        bytes(data),
        database_type=DATABASE_TYPE,
        description={"en": "nearest regions per network, built by Edgeplane"},
        languages=["en"],
    )
    return out, frozenset(rankings)


def _placed(point: tuple[float, float]) -> ClientLocation:
    """A client at ``point``, for ``rank_sites``."""
    return ClientLocation(
        ip="",
        latitude=point[0],
        longitude=point[1],
        country=None,
        continent=None,
        city=None,
        accuracy_km=None,
        source="city",
    )


def table_key(source_hash: str, regions: Iterable[RegionPoint]) -> str:
    table = sorted((r.code, float(r.latitude), float(r.longitude)) for r in regions)
    raw = json.dumps([BUILDER_VERSION, SLOTS, source_hash, table]).encode()
    return hashlib.sha256(raw).hexdigest()[:20]


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


Start = Callable[[list[str]], "subprocess.Popen[bytes]"]


def _start(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def rank_database(
    source: Path, regions: Sequence[RegionPoint], cache_dir: Path, start: Start = _start
) -> RankDatabase:
    """The ranking database of ``source`` for ``regions`` in ``cache_dir``, built if missing,
    by a process that ``start`` starts (stdout discarded, stderr piped: an edge node's agent
    passes one that dies with it).

    Other builds in ``cache_dir`` are removed once the new one is in place; the source's
    decoded points (``geopoints``) stay beside it, so that the next region table is ranked
    without decoding the source again (about 30 s of GeoLite2-City, against a few seconds)."""
    source_hash = file_hash(source)
    key = table_key(source_hash, regions)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the nodes of a machine build it once
        path = cache_dir / f"ranks-{key}.mmdb"
        points = cache_dir / f"points-{source_hash[:20]}.npz"
        return _cached_or_built(source, regions, cache_dir, path, points, start)


def _cached_or_built(
    source: Path,
    regions: Sequence[RegionPoint],
    cache_dir: Path,
    path: Path,
    points: Path,
    start: Start,
) -> RankDatabase:
    sidecar = path.with_suffix(".json")
    if path.is_file() and sidecar.is_file():
        try:
            rankings = frozenset(tuple(r) for r in json.loads(sidecar.read_text()))
            return RankDatabase(path, rankings, None)
        except (OSError, ValueError):
            pass
    started = time.monotonic()
    table = json.dumps([[r.code, r.latitude, r.longitude] for r in regions])
    module = "edgeplane.routing.georank"
    child = start([sys.executable, "-m", module, str(source), str(path), table, str(points)])
    _, err = child.communicate()
    if child.returncode != 0:
        tail = (err or b"").decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"building the ranking database of {source} failed: {tail[0]}")
    rankings = frozenset(tuple(r) for r in json.loads(sidecar.read_text()))
    for old in [*cache_dir.glob("ranks-*"), *cache_dir.glob("points-*")]:
        if old.stem not in (path.stem, points.stem):
            old.unlink(missing_ok=True)
    return RankDatabase(path, rankings, round(time.monotonic() - started, 2))


def write_build(
    source: Path, path: Path, regions: Sequence[RegionPoint], points: Path | None = None
) -> None:
    """Build the ranking database of ``source`` into ``path`` and its rankings into the JSON
    file beside it (each replaced atomically, the database last); ``points``: where the
    source's decoded points are kept."""
    out, rankings = build(source.read_bytes(), regions, points)
    for target, content in (
        (path.with_suffix(".json"), json.dumps(sorted(rankings)).encode()),
        (path, out),
    ):
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(content)
        os.replace(tmp, target)


def empty_database() -> bytes:
    """A ranking database without any network (every lookup finds nothing)."""
    metadata: dict[str, Any] = {
        "node_count": 1,
        "record_size": 24,
        "ip_version": 6,
        "database_type": DATABASE_TYPE,
        "languages": ["en"],
        "binary_format_major_version": 2,
        "binary_format_minor_version": 0,
        "build_epoch": 1,  # libmaxminddb refuses a zero (an empty uint64)
        "description": {"en": "empty: no ranking built yet"},
    }
    # One node whose two 24-bit records both point at node_count (1): "no data".
    return mmdb.assemble((1).to_bytes(3, "big") * 2, b"", metadata)


if __name__ == "__main__":  # python -m edgeplane.routing.georank SOURCE OUT TABLE [POINTS]
    source_arg, out_arg, table_arg = sys.argv[1:4]  # TABLE: '[[code, latitude, longitude]]'
    table = [RegionPoint(str(c), float(lat), float(lon)) for c, lat, lon in json.loads(table_arg)]
    kept = Path(sys.argv[4]) if len(sys.argv) > 4 else None
    write_build(Path(source_arg), Path(out_arg), table, kept)
