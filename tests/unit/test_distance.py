"""Tests for edgeplane.routing.distance."""

from __future__ import annotations

import math

import pytest

from edgeplane.routing.distance import haversine_km

LONDON = (51.5074, -0.1278)
PARIS = (48.8566, 2.3522)


def test_london_paris() -> None:
    assert haversine_km(*LONDON, *PARIS) == pytest.approx(344, abs=2)


def test_symmetric() -> None:
    assert haversine_km(*LONDON, *PARIS) == haversine_km(*PARIS, *LONDON)


def test_same_point_is_zero() -> None:
    assert haversine_km(*LONDON, *LONDON) == 0.0
    assert haversine_km(0.0, 0.0, 0.0, 0.0) == 0.0


def test_antipodes_half_circumference() -> None:
    assert haversine_km(0.0, 0.0, 0.0, 180.0) == pytest.approx(20015, abs=1)
    assert haversine_km(90.0, 0.0, -90.0, 0.0) == pytest.approx(20015, abs=1)
    # A generic antipodal pair, where rounding can push the haversine term above 1.
    d = haversine_km(37.751, -97.822, -37.751, 82.178)
    assert not math.isnan(d)
    assert d == pytest.approx(20015, abs=1)


def test_across_antimeridian() -> None:
    # 179.5 E to 179.5 W on the equator is one degree (~111 km), not 359.
    assert haversine_km(0.0, 179.5, 0.0, -179.5) == pytest.approx(111.2, abs=0.2)


def test_known_long_haul() -> None:
    # Sydney to New York, ~15990 km on the sphere.
    assert haversine_km(-33.8688, 151.2093, 40.7128, -74.0060) == pytest.approx(15990, rel=0.01)
