"""The ranking database builder on a small synthetic City database (written here, bit by bit)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import maxminddb
import numpy as np
import pytest

from edgeplane.routing import geopoints, mmdb
from edgeplane.routing.decide import Site, rank_sites
from edgeplane.routing.geoip import GeoLocator, country_centroids
from edgeplane.routing.georank import (
    NO_REGION,
    RegionPoint,
    _record,
    _Records,
    build,
    rank_database,
)

REGIONS = [
    RegionPoint("eu-central", 50.11, 8.68),
    RegionPoint("us-east", 39.0, -77.5),
    RegionPoint("ap-northeast", 35.68, 139.69),
]
LONDON = {"location": {"latitude": 51.5, "longitude": -0.12, "accuracy_radius": 20},
          "country": {"iso_code": "GB"}, "continent": {"code": "EU"}}  # fmt: skip
JAPAN_ONLY = {"country": {"iso_code": "JP"}, "continent": {"code": "AS"}}  # no coordinates
BRAZIL_REGISTERED = {"registered_country": {"iso_code": "BR"}}
NETWORKS: list[tuple[str, dict[str, Any]]] = [
    ("81.2.69.0/24", LONDON),
    ("81.2.70.0/23", LONDON),  # the same record shared by two networks
    ("1.2.3.0/24", JAPAN_ONLY),
    ("200.1.0.0/16", BRAZIL_REGISTERED),
    ("9.9.9.0/24", {}),  # nothing to place it with
]


def synthetic_city_db(networks: list[tuple[str, dict[str, Any]]]) -> bytes:
    """An IPv4 City database (24-bit records) holding ``networks``."""
    data = bytearray()
    offsets: dict[bytes, int] = {}
    nodes: list[list[int | None]] = [[None, None]]
    leaves: list[tuple[int, int, str]] = []  # (node, side, encoded record key)
    for cidr, record in networks:
        encoded = mmdb.encode(record)
        if encoded not in offsets:
            offsets[encoded] = len(data)
            data += encoded
        net = ipaddress.ip_network(cidr)
        bits = format(int(net.network_address), "032b")[: net.prefixlen]
        node = 0
        for bit in bits[:-1]:
            side = int(bit)
            child = nodes[node][side]
            if child is None:
                child = len(nodes)
                nodes.append([None, None])
                nodes[node][side] = child
            node = child
        leaves.append((node, int(bits[-1]), encoded.hex()))
    count = len(nodes)
    left = np.full(count, count, dtype=np.uint32)
    right = np.full(count, count, dtype=np.uint32)
    for i, (lo, hi) in enumerate(nodes):
        if lo is not None:
            left[i] = lo
        if hi is not None:
            right[i] = hi
    for node, side, key in leaves:
        (left if side == 0 else right)[node] = count + 16 + offsets[bytes.fromhex(key)]
    metadata = {
        "node_count": count,
        "record_size": 24,
        "ip_version": 4,
        "database_type": "GeoLite2-City",
        "languages": ["en"],
        "binary_format_major_version": 2,
        "binary_format_minor_version": 0,
        "build_epoch": 1_700_000_000,
        "description": {"en": "synthetic"},
    }
    shape = mmdb.Database(metadata, count, 24, left, right, b"", 0)
    return mmdb.write(shape, left, right, bytes(data))


def test_each_network_holds_its_ranking_and_point(tmp_path: Path) -> None:
    source = tmp_path / "city.mmdb"
    source.write_bytes(synthetic_city_db(NETWORKS))
    out, rankings = build(source.read_bytes(), REGIONS)
    (tmp_path / "ranks.mmdb").write_bytes(out)
    ranks = maxminddb.open_database(str(tmp_path / "ranks.mmdb"))
    located = GeoLocator(source)  # what route_request uses
    sites = [Site(r.code, r.code, r.latitude, r.longitude) for r in REGIONS]
    for ip in ("81.2.69.1", "81.2.71.200", "1.2.3.4", "200.1.2.3"):
        record = ranks.get(ip)
        assert isinstance(record, dict), ip
        slots = [
            record["city"]["names"]["en"],
            record["subdivisions"][0]["iso_code"],
            record["country"]["iso_code"],
        ]
        expected = [f"r-{r.site.code}" for r in rank_sites(located.locate(ip), sites)]
        assert slots == expected, ip
        assert record["continent"]["code"] == record["autonomous_system_organization"] == "x"
        client = located.locate(ip)
        assert (record["location"]["latitude"], record["location"]["longitude"]) == (
            client.latitude,
            client.longitude,
        )
    # A country without coordinates is placed at the country's point: Japan is nearest
    # ap-northeast (it used to get every node); a registered country alone works too.
    japan = ranks.get("1.2.3.4")
    assert isinstance(japan, dict) and japan["city"]["names"]["en"] == "r-ap-northeast"
    place = japan["location"]
    assert (place["latitude"], place["longitude"]) == country_centroids()["JP"]
    brazil = ranks.get("200.1.2.3")
    assert isinstance(brazil, dict) and brazil["city"]["names"]["en"] == "r-us-east"
    # Nothing to place it with: no slot names a region, no location.
    nothing = ranks.get("9.9.9.9")
    assert isinstance(nothing, dict) and "location" not in nothing
    assert nothing["city"]["names"]["en"] == NO_REGION
    # The same networks (prefix lengths) as the source: answers are scoped alike.
    assert ranks.get_with_prefix_len("81.2.69.1")[1] == 24
    assert ranks.get_with_prefix_len("200.1.2.3")[1] == 16
    assert ranks.get("8.8.8.8") is None
    assert ("eu-central", "us-east", "ap-northeast") in rankings


def test_the_build_is_cached_by_database_and_region_table(tmp_path: Path) -> None:
    source = tmp_path / "city.mmdb"
    source.write_bytes(synthetic_city_db(NETWORKS))
    first = rank_database(source, REGIONS, tmp_path / "cache")
    assert first.build_s is not None
    again = rank_database(source, REGIONS, tmp_path / "cache")
    assert again.build_s is None and again.path == first.path
    assert again.rankings == first.rankings
    moved = [RegionPoint("eu-central", 40.4, -3.7), *REGIONS[1:]]
    other = rank_database(source, moved, tmp_path / "cache")
    assert other.build_s is not None and other.path != first.path
    assert not first.path.exists()  # the old build is gone
    # The source's decoded points stay, read by the next build instead of decoding again.
    (kept,) = (tmp_path / "cache").glob("points-*.npz")
    points = geopoints.load(kept)
    assert points is not None
    assert len(points.pointers) == 4 and len(points.latitude) == 3  # London shared; one -1
    assert sorted(points.index.tolist()).count(-1) == 1
    fresh, _ = build(source.read_bytes(), moved)  # decoding the source itself
    assert other.path.read_bytes() == fresh


def test_points_kept_damaged_or_of_another_format_are_decoded_again(tmp_path: Path) -> None:
    source = tmp_path / "city.mmdb"
    source.write_bytes(synthetic_city_db(NETWORKS))
    kept = tmp_path / "points.npz"
    expected, _ = build(source.read_bytes(), REGIONS)
    kept.write_bytes(b"not numpy")
    assert build(source.read_bytes(), REGIONS, kept)[0] == expected
    assert geopoints.load(kept) is not None  # saved again, whole
    stale = geopoints.load(kept)
    assert stale is not None
    with kept.open("wb") as f:
        np.savez(f, format=np.array(geopoints.FORMAT + 1), pointers=stale.pointers)
    assert geopoints.load(kept) is None
    assert build(source.read_bytes(), REGIONS, kept)[0] == expected


def test_records_are_encoded_as_the_general_encoder_would() -> None:
    records = _Records()
    for ranking in [(), ("eu-central",), tuple(f"r{i}" for i in range(7))]:
        for point in [None, (51.5, -0.12), (-33.9, 151.2), (0.0, 0.0)]:
            assert records(ranking, point) == mmdb.encode(_record(ranking, point))


def test_a_build_that_fails_says_which_source(tmp_path: Path) -> None:
    """The build runs in a process of its own; when it fails, the caller gets why."""
    bad = tmp_path / "not.mmdb"
    bad.write_bytes(b"this is not a MaxMind database")
    with pytest.raises(RuntimeError, match=r"not\.mmdb"):
        rank_database(bad, REGIONS, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("ranks-*.mmdb"))
