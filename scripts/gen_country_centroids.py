#!/usr/bin/env python3
"""Generate ``src/edgeplane/routing/data/country_centroids.json``.

The table maps ISO 3166-1 alpha-2 country codes to a representative point, used by
``edgeplane.routing.geoip`` when a database record names a country but carries no
coordinates (e.g. GeoLite2-Country or DB-IP country databases).

The points are derived from a GeoLite2-City database (by default the copy shipped by the
``maxminddb-geolite2`` package) by walking every network in it:

* MaxMind gives networks it can only place at country level the country's
  representative point with a large ``accuracy_radius`` and no city.  For each country,
  the most common coordinate among records with a country, no city and an
  ``accuracy_radius >= 500`` is used (records without subdivisions are preferred, so a
  state-level point cannot win over the country-level one).
* Countries without such records get the mean of their distinct city coordinates
  (averaged as unit vectors so that countries spanning the antimeridian come out right).

Usage::

    python scripts/gen_country_centroids.py [--db PATH] [--output PATH]

Walking the whole database takes about a minute.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import maxminddb

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "src" / "edgeplane" / "routing" / "data" / "country_centroids.json"
COUNTRY_LEVEL_MIN_RADIUS_KM = 500
PRECISION = 4


@dataclass
class CountryStats:
    """Everything collected about one country while walking the database."""

    name: str | None = None
    # (lat, lon) -> number of networks, for country-level records (no city, radius >= 500)
    country_points: Counter[tuple[float, float]] = field(default_factory=Counter)
    # same, restricted to records that also have no subdivision
    country_points_no_subdivision: Counter[tuple[float, float]] = field(default_factory=Counter)
    # city geoname_id (or name if no id) -> (lat, lon); one point per distinct city
    cities: dict[object, tuple[float, float]] = field(default_factory=dict)


def default_database() -> Path:
    """Path of the GeoLite2-City.mmdb shipped by the ``maxminddb-geolite2`` package."""
    return Path(str(importlib.resources.files("_maxminddb_geolite2") / "GeoLite2-City.mmdb"))


def _as_mapping(value: object) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def _coord(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def collect(
    records: Iterable[tuple[object, object]], progress: bool = False
) -> dict[str, CountryStats]:
    """Aggregate per-country statistics from ``(network, record)`` pairs."""
    stats: dict[str, CountryStats] = {}
    started = time.monotonic()
    for count, (_network, raw) in enumerate(records, 1):
        if progress and count % 500_000 == 0:
            elapsed = time.monotonic() - started
            print(f"  {count:,} networks, {elapsed:.0f}s", file=sys.stderr)
        record = _as_mapping(raw)
        if record is None:
            continue
        country = _as_mapping(record.get("country"))
        if country is None:
            continue
        iso = country.get("iso_code")
        if not isinstance(iso, str) or len(iso) != 2:
            continue
        iso = iso.upper()
        entry = stats.setdefault(iso, CountryStats())
        if entry.name is None:
            names = _as_mapping(country.get("names"))
            name = names.get("en") if names is not None else None
            if isinstance(name, str):
                entry.name = name

        location = _as_mapping(record.get("location"))
        if location is None:
            continue
        lat = _coord(location.get("latitude"))
        lon = _coord(location.get("longitude"))
        if lat is None or lon is None:
            continue
        city = _as_mapping(record.get("city"))
        if city is None:
            radius = location.get("accuracy_radius")
            if isinstance(radius, int) and radius >= COUNTRY_LEVEL_MIN_RADIUS_KM:
                entry.country_points[(lat, lon)] += 1
                if not record.get("subdivisions"):
                    entry.country_points_no_subdivision[(lat, lon)] += 1
        else:
            city_names = _as_mapping(city.get("names"))
            key: object = city.get("geoname_id") or (
                city_names.get("en") if city_names is not None else None
            )
            if key is None:
                key = (lat, lon)
            entry.cities.setdefault(key, (lat, lon))
    return stats


def _most_common(points: Counter[tuple[float, float]]) -> tuple[float, float]:
    # Deterministic tie-break: highest count, then smallest coordinate.
    return min(points.items(), key=lambda item: (-item[1], item[0]))[0]


def _spherical_mean(points: Iterable[tuple[float, float]]) -> tuple[float, float]:
    x = y = z = 0.0
    for lat, lon in points:
        phi, lam = math.radians(lat), math.radians(lon)
        x += math.cos(phi) * math.cos(lam)
        y += math.cos(phi) * math.sin(lam)
        z += math.sin(phi)
    hyp = math.hypot(x, y)
    return math.degrees(math.atan2(z, hyp)), math.degrees(math.atan2(y, x))


def centroid(entry: CountryStats) -> tuple[tuple[float, float], str] | None:
    """Return ``((lat, lon), method)`` for a country, or None if it has no coordinates."""
    if entry.country_points_no_subdivision:
        return _most_common(entry.country_points_no_subdivision), "country-point"
    if entry.country_points:
        return _most_common(entry.country_points), "country-point"
    if entry.cities:
        return _spherical_mean(entry.cities.values()), "city-mean"
    return None


def build_table(
    stats: Mapping[str, CountryStats],
) -> tuple[dict[str, dict[str, Any]], Counter[str]]:
    """Build the JSON table (sorted by ISO code) and a count of the methods used."""
    table: dict[str, dict[str, Any]] = {}
    methods: Counter[str] = Counter()
    for iso in sorted(stats):
        entry = stats[iso]
        result = centroid(entry)
        if result is None:
            methods["no-coordinates"] += 1
            continue
        (lat, lon), method = result
        methods[method] += 1
        table[iso] = {
            "latitude": round(lat, PRECISION),
            "longitude": round(lon, PRECISION),
            "name": entry.name or iso,
        }
    return table, methods


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--db", type=Path, default=None, help="GeoLite2-City .mmdb to read")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file to write")
    args = parser.parse_args(argv)
    db_path: Path = args.db or default_database()
    output: Path = args.output

    print(f"reading {db_path}", file=sys.stderr)
    started = time.monotonic()
    with maxminddb.open_database(str(db_path), maxminddb.MODE_AUTO) as reader:
        meta = reader.metadata()
        print(f"  {meta.database_type} build_epoch={meta.build_epoch}", file=sys.stderr)
        stats = collect(reader, progress=True)
    table, methods = build_table(stats)

    output.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(table, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    output.write_text(text, encoding="utf-8")
    elapsed = time.monotonic() - started
    summary = ", ".join(f"{method}: {n}" for method, n in sorted(methods.items()))
    print(
        f"wrote {len(table)} countries to {output} ({summary}) in {elapsed:.0f}s", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
