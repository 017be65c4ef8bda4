"""Regions, data centers, servers, the services they run and their metrics."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Any

from pydantic import Field, JsonValue, ValidationInfo, field_validator, model_validator

from edgeplane.model.common import (
    Capacity,
    Float,
    Input,
    Int,
    Name,
    ObjectId,
    Output,
    Slug,
    Text,
    patch_model,
)
from edgeplane.model.enums import (
    DataCenterTier,
    Environment,
    RegionCode,
    RegionType,
    ServerStatus,
    ServerType,
    ServiceStatus,
)
from edgeplane.model.regions import LOCATION_PATTERN, RegionRef, broad
from edgeplane.model.service_settings import SERVICE_TYPES

_SERVICE_TYPES: list[JsonValue] = [name for name in sorted(SERVICE_TYPES)]

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*"
    r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$"
)


_CONSISTENCY = (
    "A location implies its region code and region type: where both a region and a location "
    "are given, a location that does not lie in the region is refused (naming `location`)."
)


class RegionCreate(Input):
    """A location (the ``regions`` table): its code, name and coordinates, and the region
    code and region type it belongs to (inferred from the coordinates when omitted)."""

    code: str = Field(
        pattern=LOCATION_PATTERN,
        description="the location's code, e.g. eu-south; not a region code or region type",
        examples=["eu-south"],
    )
    name: Name
    latitude: Float = Field(ge=-90, le=90)
    longitude: Float = Field(ge=-180, le=180)
    region_code: RegionCode | None = Field(
        None, description="spec 001's region code; inferred from the coordinates when omitted"
    )
    region_type: RegionType | None = Field(
        None,
        description="spec 000's region type; the region code's when omitted, else inferred "
        "from the coordinates",
    )
    area: RegionType | None = Field(None, description="older name of region_type")

    @field_validator("code")
    @classmethod
    def _not_broad(cls, value: str) -> str:
        kind = broad(value)
        if kind is not None:
            what = "region code" if isinstance(kind, RegionCode) else "region type"
            raise ValueError(
                f"{value!r} is a {what}; a location needs a code of its own, e.g. {value}-south"
            )
        return value

    @field_validator("region_type")
    @classmethod
    def _type_has_code(cls, value: RegionType | None, info: ValidationInfo) -> RegionType | None:
        code = info.data.get("region_code")
        if value is not None and isinstance(code, RegionCode) and code.area is not value:
            raise ValueError(
                f"region code {code.value} lies in {code.area.value}, not in {value.value}"
            )
        return value

    @field_validator("area")
    @classmethod
    def _area_is_type(cls, value: RegionType | None, info: ValidationInfo) -> RegionType | None:
        kind, code = info.data.get("region_type"), info.data.get("region_code")
        if value is not None and kind is not None and kind is not value:
            raise ValueError("the older name of region_type: give one of them")
        if value is not None and isinstance(code, RegionCode) and code.area is not value:
            raise ValueError(
                f"region code {code.value} lies in {code.area.value}, not in {value.value}"
            )
        return value

    @model_validator(mode="after")
    def _area_as_type(self) -> RegionCreate:
        if self.area is not None:
            self.region_type, self.area = self.area, None
        return self


class RegionPatch(patch_model(RegionCreate)):  # type: ignore[misc]
    """``PATCH``: a JSON merge patch of Region, the fields to change."""


class Region(Output):
    """A location with its parents: its region code (spec 001) and region type (spec 000)."""

    code: str
    name: str
    latitude: float
    longitude: float
    region_code: RegionCode
    region_type: RegionType
    area: RegionType = Field(description="older name of region_type")
    created_at: datetime
    updated_at: datetime


class DataCenterCreate(Input):
    id: ObjectId | None = None
    name: Name
    region: RegionRef | None = Field(
        None,
        description="the data center's region code (na, sa, eu, apac, mea); a location or a "
        "region type is accepted too. Derived from `location` when omitted. " + _CONSISTENCY,
        examples=["na"],
    )
    location: RegionRef | None = Field(
        None,
        description="the location (e.g. us-east); when omitted, `region` must name one. A "
        "region code or type is refused with the locations it could be. " + _CONSISTENCY,
        examples=["us-east"],
    )
    tier: DataCenterTier
    capacity: Capacity
    environment: Environment = Environment.PROD

    @field_validator("tier", mode="before")
    @classmethod
    def _tier(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be 1, 2, 3 or 4")
        if isinstance(value, int | str) and DataCenterTier._missing_(str(value)) is None:
            raise ValueError(f"must be 1, 2, 3 or 4, not {value!r}")
        return value


class DataCenterPatch(patch_model(DataCenterCreate)):  # type: ignore[misc]
    """``PATCH``: a JSON merge patch of DataCenter, the fields to change."""


class DataCenter(Output):
    id: str
    project: str
    name: str
    region: RegionCode
    location: str
    region_code: RegionCode | None = Field(None, description="the location's region code")
    region_type: RegionType | None = Field(None, description="the location's region type")
    tier: DataCenterTier
    capacity: Capacity
    allocated: Capacity
    environment: Environment
    created_at: datetime
    updated_at: datetime


def _check_address(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    try:
        return ipaddress.ip_address(value).compressed
    except ValueError:
        pass
    if not _HOSTNAME.match(value):
        raise ValueError("must be an IP address or a host name")
    return value.lower()


class ServerCreate(Input):
    id: ObjectId | None = None
    name: Name
    type: ServerType
    region: RegionRef | None = Field(
        None,
        description="the server's region type (americas, europe, asia_pacific, "
        "middle_east_africa); a region code or a location is accepted too. Derived from "
        "`location` (or the data center) when omitted. " + _CONSISTENCY,
        examples=["americas"],
    )
    location: RegionRef | None = Field(
        None,
        description="the location (e.g. us-east); when omitted, the data center's, or the one "
        "`region` names. A region code or type is refused with the locations it could be. "
        + _CONSISTENCY,
        examples=["us-east"],
    )
    capacity: Capacity
    profile: Slug = "standard"
    status: ServerStatus = ServerStatus.ACTIVE
    data_center_id: ObjectId | None = None
    address: Text | None = Field(None, description="IP address or host name of the server")
    environment: Environment = Environment.PROD
    labels: dict[Text, Text] = Field(default_factory=dict, max_length=64)

    _addr = field_validator("address")(classmethod(lambda cls, v: _check_address(v)))


class ServerPatch(patch_model(ServerCreate)):  # type: ignore[misc]
    """``PATCH``: a JSON merge patch of Server, the fields to change."""


class MetricsSample(Input):
    """One observation of a server; utilisations in percent."""

    cpu_percent: Float = Field(ge=0, le=100)
    memory_percent: Float = Field(ge=0, le=100)
    storage_percent: Float = Field(0.0, ge=0, le=100)
    network_in_mbps: Float = Field(0.0, ge=0)
    network_out_mbps: Float = Field(0.0, ge=0)
    connections: Int = Field(0, ge=0)
    requests_per_second: Float = Field(0.0, ge=0)
    latency_ms: Float = Field(0.0, ge=0)
    at: datetime | None = Field(None, description="when it was measured; now when omitted")


class Metrics(Output):
    cpu_percent: float
    memory_percent: float
    storage_percent: float
    network_in_mbps: float
    network_out_mbps: float
    connections: int
    requests_per_second: float
    latency_ms: float
    at: datetime


class Server(Output):
    id: str
    project: str
    name: str
    type: ServerType
    region: RegionType
    location: str
    region_code: RegionCode | None = Field(None, description="the location's region code")
    region_type: RegionType | None = Field(None, description="the location's region type")
    capacity: Capacity
    allocated: Capacity
    profile: str
    status: ServerStatus
    data_center_id: str | None
    address: str | None
    environment: Environment
    labels: dict[str, str]
    metrics: Metrics | None = None
    created_at: datetime
    updated_at: datetime


class ServiceCreate(Input):
    id: ObjectId | None = None
    server_id: ObjectId
    type: Slug = Field(
        description="cdn, web, api, database, cache, dns, storage, compute, "
        "edge_function, load_balancer, monitoring",
        json_schema_extra={"enum": _SERVICE_TYPES},  # checked with the settings
    )
    settings: dict[Text, Any] = Field(default_factory=dict)
    resources: Capacity | None = Field(
        None, description="what the service reserves on its server; a default per type"
    )
    status: ServiceStatus = ServiceStatus.ACTIVE


class ServicePatch(patch_model(ServiceCreate)):  # type: ignore[misc]
    """``PATCH``: a JSON merge patch of Service, the fields to change."""


class Service(Output):
    id: str
    project: str
    server_id: str
    type: str
    settings: dict[str, Any]
    resources: Capacity
    status: ServiceStatus
    created_at: datetime
    updated_at: datetime
