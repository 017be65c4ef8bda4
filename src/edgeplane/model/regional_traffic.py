"""A project's traffic per edge region with its client countries (the global map's data)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from edgeplane.model.common import Output
from edgeplane.model.enums import RegionCode, RegionType


class RegionTrafficSummary(Output):
    region: str  # a location
    region_code: RegionCode | None = None  # its parents
    region_type: RegionType | None = None
    requests: int
    bytes_out: int
    errors_4xx: int
    errors_5xx: int
    hits: int
    misses: int
    static: int
    hit_ratio: float | None  # served at the edge / requests
    p50_ms: float | None  # whole-request time
    p95_ms: float | None
    countries: dict[str, int] = Field(
        default_factory=dict, description="the top client countries (ISO code; ZZ: unknown)"
    )


class CountryCentroid(Output):
    code: str  # ISO 3166 alpha-2
    latitude: float
    longitude: float


class RegionalTraffic(Output):
    start: datetime
    end: datetime
    regions: list[RegionTrafficSummary]  # the regions with traffic, by code
    countries: list[CountryCentroid]  # the centroids of the countries named (not ZZ)
