"""Great-circle distances between points given in decimal degrees."""

from __future__ import annotations

import math

EARTH_MEAN_RADIUS_KM = 6371.0088
"""IUGG mean Earth radius, in kilometres."""


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres between two (latitude, longitude) points.

    Uses the haversine formula on a sphere of the mean Earth radius (error below 0.5%
    against the ellipsoid), which is plenty for picking the nearest edge location.
    """
    phi1 = math.radians(lat1)
    phi2 = math.radians(lat2)
    sin_dphi = math.sin((phi2 - phi1) / 2.0)
    sin_dlam = math.sin(math.radians(lon2 - lon1) / 2.0)
    a = sin_dphi * sin_dphi + math.cos(phi1) * math.cos(phi2) * sin_dlam * sin_dlam
    # Rounding can push ``a`` a hair outside [0, 1] for (near-)antipodal points.
    a = min(1.0, max(0.0, a))
    return 2.0 * EARTH_MEAN_RADIUS_KM * math.asin(math.sqrt(a))
