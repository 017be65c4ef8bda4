"""Edge deployments: a project's static bundle served by the edge nodes of chosen regions.

A **bundle** is uploaded once (content-addressed: its id is the sha256 of the archive the
nodes fetch). A **deployment** is a version: a bundle, the regions chosen by a strategy, and
how the edge serves it (single-page-app fallback, paths that always go to the origin, a check
path). Versions are immutable; changing the config or reactivating an earlier version makes a
new version.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator

from edgeplane.model.common import Bool, Float, Input, Int, Output, Text
from edgeplane.model.enums import RegionCode, RegionType
from edgeplane.model.regions import RegionRef

Strategy = Literal["all", "closest", "cheapest"]
Status = Literal["canary", "rolling", "active", "superseded", "failed", "cancelled"]
LIVE_STATUSES = ("canary", "rolling", "active")

_PREFIX = re.compile(r"^/[A-Za-z0-9._~!$&'()+,;=:@%/-]*$")


def _origin_path(value: str) -> str:
    if not _PREFIX.match(value):
        raise ValueError("must be a path prefix starting with / (/api/), without spaces, ? or #")
    if len(value) > 512:
        raise ValueError("at most 512 characters")
    return value


class ServeOptions(Input):
    """How the edge serves a bundle."""

    spa: Bool = Field(
        False,
        description="single-page app: a path with no file extension that the bundle does not "
        "hold is answered with /index.html (the bundle must have one)",
    )
    origin_paths: list[Text] = Field(
        default_factory=list,
        max_length=50,
        description="path prefixes always sent to the project's origin, never the bundle",
    )
    check_path: Text | None = Field(
        None,
        description="a path every node requests after activating the bundle; an answer of "
        "400 or more fails the check (and rolls the version back)",
    )

    @field_validator("origin_paths")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        return sorted({_origin_path(v) for v in value})

    @field_validator("check_path")
    @classmethod
    def _check(cls, value: str | None) -> str | None:
        return None if value is None else _origin_path(value)


class DeployRequest(Input):
    bundle: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="the uploaded bundle's id; none: the project's current bundle",
    )
    regions: list[RegionRef] | None = Field(
        None,
        max_length=200,
        description="candidate locations (us-east); a region code (eu) or type (europe) "
        "stands for each of its locations with a live edge node; none: every location with one",
    )
    strategy: Strategy = "all"
    locations: list[Text | dict[Text, Any]] = Field(
        default_factory=list,
        max_length=1000,
        description="where the users are (closest / cheapest): ISO country codes (DE, DE@3), "
        "'lat,lon[@weight]' or objects; none: the project's traffic",
    )
    latency_target_ms: Float | None = Field(None, gt=0, le=10_000)
    max_regions: Int | None = Field(None, ge=1, le=1000)
    spa: Bool | None = None
    origin_paths: list[Text] | None = None
    check_path: Text | None = None


class ConfigUpdate(Input):
    """``update_edge_config``: a new version of the deployment with these changed (a field
    left out keeps its value; ``check_path: ""`` removes the check path)."""

    spa: Bool | None = None
    origin_paths: list[Text] | None = None
    check_path: Text | None = None
    regions: list[RegionRef] | None = Field(
        None,
        max_length=200,
        description="locations; a region code or type stands for each of its locations with a "
        "live edge node",
    )


class Bundle(Output):
    id: str
    project_id: str
    size: int
    source_bytes: int
    files: int
    compressed_files: int = 0
    created_at: datetime
    created_by: str


class RegionProgress(Output):
    region: str  # a location
    region_code: RegionCode | None = None  # its parents
    region_type: RegionType | None = None
    nodes: int  # live nodes of the region
    active: int  # nodes serving this version
    failed: int
    pending: int
    state: Literal["pending", "canary", "rolling", "active", "failed", "offline", "done"]


class EdgeDeployment(Output):
    id: str
    project_id: str
    version: int
    bundle: str
    strategy: Strategy
    regions: list[str]
    status: Status
    options: ServeOptions
    placement: dict[str, Any] = Field(default_factory=dict)
    cost_per_month: float = 0.0
    canary_node: str | None = None
    error: str | None = None
    reactivates: str | None = None
    created_at: datetime
    created_by: str
    activated_at: datetime | None = None
    finished_at: datetime | None = None
    progress: list[RegionProgress] = Field(default_factory=list)


class Deployed(Output):
    deployment: EdgeDeployment
    regions_deployed: list[str]


class LocationNode(Output):
    id: str
    name: str
    address: str | None
    live: bool
    applied_revision: int | None
    in_sync: bool
    requests_per_min: float = 0.0


class EdgeLocation(Output):
    region: str  # a location
    region_code: RegionCode | None = None  # its parents
    region_type: RegionType | None = None
    name: str
    latitude: float
    longitude: float
    status: Literal["up", "degraded", "down", "empty"]
    nodes: list[LocationNode]
    load: float  # requests per minute over the last 5 minutes, all nodes
    revisions: list[int]  # the distinct revisions the nodes applied
    deployments: list[str] = Field(default_factory=list)  # versions served here (ids)


class RegionMetrics(Output):
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
    hit_ratio: float | None
    p50_ms: float | None
    p95_ms: float | None
    countries: dict[str, int] = Field(default_factory=dict)


class EdgeMetrics(Output):
    deployment_id: str
    start: datetime
    end: datetime
    regions: list[RegionMetrics]
