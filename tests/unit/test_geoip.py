"""Tests for edgeplane.routing.geoip, against the GeoLite2-City database shipped by the
``maxminddb-geolite2`` package (no mocks)."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeplane.routing.distance import haversine_km
from edgeplane.routing.geoip import (
    CONTINENT_CENTROIDS,
    ClientLocation,
    GeoDatabaseError,
    GeoLocator,
    country_centroids,
    location_from_record,
)

LONDON = (51.5074, -0.1278)


@pytest.fixture(scope="module")
def geo() -> Iterator[GeoLocator]:
    locator = GeoLocator()
    yield locator
    locator.close()


def _coords(loc: ClientLocation) -> tuple[float, float]:
    assert loc.latitude is not None
    assert loc.longitude is not None
    return loc.latitude, loc.longitude


def test_database_description(geo: GeoLocator) -> None:
    desc = geo.database_description
    assert desc.startswith("GeoLite2-City 2018-07-03 (")
    assert desc.endswith("GeoLite2-City.mmdb)")


def test_london_ipv4(geo: GeoLocator) -> None:
    loc = geo.locate("81.2.69.142")
    assert loc.ip == "81.2.69.142"
    assert loc.country == "GB"
    assert loc.continent == "EU"
    assert loc.source == "city"
    assert loc.city is not None
    assert loc.accuracy_km is not None and loc.accuracy_km > 0
    assert haversine_km(*_coords(loc), *LONDON) < 50


def test_ipv4_mapped_ipv6_is_treated_as_ipv4(geo: GeoLocator) -> None:
    loc = geo.locate("::ffff:81.2.69.142")
    assert loc.ip == "81.2.69.142"
    assert loc.country == "GB"
    assert loc == geo.locate("81.2.69.142")


def test_ipv6_netherlands(geo: GeoLocator) -> None:
    loc = geo.locate("2a02:2770::21a:4aff:fe1b:4d21")
    assert loc.country == "NL"
    assert loc.continent == "EU"
    assert loc.source == "city"
    lat, lon = _coords(loc)
    assert 50.5 < lat < 53.7 and 3.2 < lon < 7.3


def test_ipv6_is_normalised(geo: GeoLocator) -> None:
    loc = geo.locate("2A02:2770:0000:0000:021A:4AFF:FE1B:4D21")
    assert loc.ip == "2a02:2770::21a:4aff:fe1b:4d21"
    assert loc.country == "NL"


def test_cloudflare_australia(geo: GeoLocator) -> None:
    loc = geo.locate("1.1.1.1")
    assert loc.country == "AU"
    assert loc.continent == "OC"


def test_google_dns_country_level_point(geo: GeoLocator) -> None:
    # 8.8.8.8 has no city, but the record carries MaxMind's US country-level point.
    loc = geo.locate("8.8.8.8")
    assert loc.country == "US"
    assert loc.continent == "NA"
    assert loc.source == "city"
    assert loc.city is None
    assert _coords(loc) == pytest.approx((37.751, -97.822), abs=0.01)
    assert loc.accuracy_km == 1000


def test_accepts_address_objects(geo: GeoLocator) -> None:
    assert geo.locate(ipaddress.ip_address("81.2.69.142")).country == "GB"
    assert geo.locate(ipaddress.IPv6Address("2a02:2770::21a:4aff:fe1b:4d21")).country == "NL"
    assert geo.locate(ipaddress.IPv6Address("::ffff:81.2.69.142")).ip == "81.2.69.142"


@pytest.mark.parametrize(
    "ip",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.1.1",
        "172.16.5.4",
        "169.254.1.1",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.251",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fd00::1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:10.0.0.1",
    ],
)
def test_non_public_addresses_are_private(geo: GeoLocator, ip: str) -> None:
    loc = geo.locate(ip)
    assert loc.source == "private"
    assert (loc.latitude, loc.longitude, loc.country, loc.continent) == (None, None, None, None)
    assert loc.city is None and loc.accuracy_km is None


@pytest.mark.parametrize("bad", ["not-an-ip", "1.2.3.999", "", "1.2.3", "::g", "81.2.69.142/32"])
def test_invalid_addresses_raise_value_error(geo: GeoLocator, bad: str) -> None:
    with pytest.raises(ValueError, match="not an IP address"):
        geo.locate(bad)


def test_cache_returns_same_object(geo: GeoLocator) -> None:
    first = geo.locate("1.1.1.1")
    assert geo.locate("1.1.1.1") is first
    assert geo.locate(ipaddress.ip_address("1.1.1.1")) is first


def test_concurrent_lookups_agree() -> None:
    locator = GeoLocator()
    ips = ["81.2.69.142", "1.1.1.1", "8.8.8.8", "2a02:2770::21a:4aff:fe1b:4d21", "10.0.0.1"]
    expected = {ip: locator.locate(ip) for ip in ips}
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(200):
                for ip in ips:
                    assert locator.locate(ip) == expected[ip]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    locator.close()
    assert errors == []


def test_locate_after_close_raises() -> None:
    locator = GeoLocator()
    locator.close()
    with pytest.raises(GeoDatabaseError, match="closed"):
        locator.locate("8.8.8.8")


def test_missing_database_raises(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "GeoLite2-City.mmdb"
    with pytest.raises(GeoDatabaseError) as info:
        GeoLocator(missing)
    assert str(missing) in str(info.value)


def test_invalid_database_raises(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.mmdb"
    bogus.write_bytes(b"this is not a maxmind database" * 100)
    with pytest.raises(GeoDatabaseError) as info:
        GeoLocator(str(bogus))
    assert str(bogus) in str(info.value)


def test_directory_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(GeoDatabaseError, match=str(tmp_path)):
        GeoLocator(tmp_path)


# --- location_from_record: the record -> ClientLocation conversion and its fallbacks ---

COUNTRY_ONLY_RECORD = {
    "continent": {"code": "EU", "names": {"en": "Europe"}},
    "country": {"iso_code": "DE", "names": {"en": "Germany"}},
    "registered_country": {"iso_code": "DE", "names": {"en": "Germany"}},
}


def test_record_with_location_uses_record_coordinates() -> None:
    record = {
        **COUNTRY_ONLY_RECORD,
        "city": {"names": {"en": "Berlin", "de": "Berlin"}},
        "location": {"latitude": 52.52, "longitude": 13.405, "accuracy_radius": 20},
    }
    loc = location_from_record("192.0.2.1", record)
    assert loc == ClientLocation("192.0.2.1", 52.52, 13.405, "DE", "EU", "Berlin", 20, "city")


def test_country_fallback() -> None:
    loc = location_from_record("203.0.113.9", COUNTRY_ONLY_RECORD)
    assert loc.source == "country"
    assert (loc.country, loc.continent, loc.city, loc.accuracy_km) == ("DE", "EU", None, None)
    assert _coords(loc) == pytest.approx((51.3, 9.5), abs=0.1)
    assert _coords(loc) == country_centroids()["DE"]


def test_country_fallback_uses_registered_country() -> None:
    record = {"registered_country": {"iso_code": "jp"}}
    loc = location_from_record("203.0.113.9", record)
    assert loc.source == "country"
    assert loc.country == "JP"
    assert _coords(loc) == pytest.approx((35.7, 139.7), abs=0.1)


def test_country_wins_over_registered_country() -> None:
    record = {"country": {"iso_code": "FR"}, "registered_country": {"iso_code": "US"}}
    assert location_from_record("203.0.113.9", record).country == "FR"


def test_continent_fallback() -> None:
    # A country code missing from the centroid table, and an invalid one.
    for country in ({"iso_code": "ZZ"}, {"iso_code": "not-a-code"}):
        record = {"continent": {"code": "AS"}, "country": country}
        loc = location_from_record("203.0.113.9", record)
        assert loc.source == "continent"
        assert loc.continent == "AS"
        assert _coords(loc) == CONTINENT_CENTROIDS["AS"]


def test_unknown() -> None:
    assert location_from_record("203.0.113.9", None) == ClientLocation(
        "203.0.113.9", None, None, None, None, None, None, "unknown"
    )
    loc = location_from_record("203.0.113.9", {"traits": {"is_anycast": True}})
    assert loc.source == "unknown"
    assert loc.latitude is None and loc.longitude is None


def test_bad_coordinates_are_ignored() -> None:
    record = {**COUNTRY_ONLY_RECORD, "location": {"latitude": 123.0, "longitude": "x"}}
    assert location_from_record("203.0.113.9", record).source == "country"


def test_continent_centroids_cover_all_codes() -> None:
    assert set(CONTINENT_CENTROIDS) == {"NA", "SA", "EU", "AS", "AF", "OC", "AN"}
    for lat, lon in CONTINENT_CENTROIDS.values():
        assert -90 <= lat <= 90 and -180 <= lon <= 180


def test_country_centroid_table() -> None:
    table = country_centroids()
    assert len(table) > 240
    assert table["US"] == pytest.approx((37.75, -97.82), abs=0.05)
    assert table["DE"] == pytest.approx((51.3, 9.5), abs=0.1)
    assert table["JP"] == pytest.approx((35.7, 139.7), abs=0.1)
    assert table["AU"] == pytest.approx((-33.5, 143.2), abs=0.5)
    assert table["GB"] == pytest.approx(LONDON, abs=0.5)
    for code, (lat, lon) in table.items():
        assert len(code) == 2 and code.isupper()
        assert -90 <= lat <= 90 and -180 <= lon <= 180
