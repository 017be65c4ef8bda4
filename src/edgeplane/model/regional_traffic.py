"""A project's traffic per edge region with its client countries (the global map's data)."""

from __future__ import annotations

from datetime import datetime

from edgeplane.model.common import Output
from edgeplane.model.edge_deployments import RegionMetrics


class CountryCentroid(Output):
    code: str  # ISO 3166 alpha-2
    latitude: float
    longitude: float


class RegionalTraffic(Output):
    start: datetime
    end: datetime
    regions: list[RegionMetrics]  # the regions with traffic, by code
    countries: list[CountryCentroid]  # the centroids of the countries named (not ZZ)
