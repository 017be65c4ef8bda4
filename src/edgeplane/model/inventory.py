"""Regions, data centers, servers, the services they run and their metrics."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Any

from pydantic import Field, JsonValue, field_validator

from edgeplane.model.common import (
    Capacity,
    Float,
    Input,
    Int,
    Name,
    ObjectId,
    Output,
    RegionCodeStr,
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
from edgeplane.model.service_settings import SERVICE_TYPES

_SERVICE_TYPES: list[JsonValue] = [name for name in sorted(SERVICE_TYPES)]

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*"
    r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$"
)


def area_of(latitude: float, longitude: float) -> RegionType:
    """The broad area a point lies in (used when a region is created without one)."""
    if longitude <= -30:
        return RegionType.AMERICAS
    if latitude >= 35 and longitude < 60:
        return RegionType.EUROPE
    if longitude < 60:
        return RegionType.MIDDLE_EAST_AFRICA
    return RegionType.ASIA_PACIFIC


class RegionCreate(Input):
    code: RegionCodeStr
    name: Name
    latitude: Float = Field(ge=-90, le=90)
    longitude: Float = Field(ge=-180, le=180)
    area: RegionType | None = Field(
        None, description="broad area; inferred from the coordinates when omitted"
    )


class RegionPatch(patch_model(RegionCreate)):  # type: ignore[misc]
    """``PATCH``: a JSON merge patch of Region, the fields to change."""


class Region(Output):
    code: str
    name: str
    latitude: float
    longitude: float
    area: RegionType
    created_at: datetime
    updated_at: datetime


class DataCenterCreate(Input):
    id: ObjectId | None = None
    name: Name
    region: RegionCode
    location: RegionCodeStr
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
    region: RegionType
    location: RegionCodeStr
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
