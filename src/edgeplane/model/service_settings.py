"""The settings each type of service accepts, validated on their own model per type."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError

from edgeplane.errors import InvalidInput
from edgeplane.model.common import Bool, Capacity, Float, Input, Int, Text
from edgeplane.model.validation import invalid_from_pydantic


class CDNSettings(Input):
    provider: Literal["edgeplane", "cloudflare", "fastly", "cloudfront"] = "edgeplane"
    zone: Text | None = Field(None, min_length=1, max_length=100)
    caching: Literal["bypass", "conservative", "standard", "aggressive"] = "standard"
    default_ttl: Int = Field(3600, ge=0, le=31_536_000)


class WebSettings(Input):
    port: Int = Field(80, ge=1, le=65535)
    tls: Bool = False
    root: Text | None = Field(None, max_length=1024)


class APISettings(Input):
    port: Int = Field(8000, ge=1, le=65535)
    protocol: Literal["http", "grpc", "websocket"] = "http"
    base_path: str = Field("/", pattern=r"^/[^\x00-\x1f\x7f-\x9f]*$")


class DatabaseSettings(Input):
    engine: Literal["postgresql", "mysql", "mongodb", "redis", "sqlite"]
    port: Int | None = Field(None, ge=1, le=65535)
    role: Literal["primary", "replica"] = "primary"
    replicas: Int = Field(0, ge=0, le=64)


class CacheSettings(Input):
    engine: Literal["redis", "memcached", "nginx"] = "redis"
    memory_mb: Int = Field(1024, ge=16, le=10_000_000)
    eviction: Literal["lru", "lfu", "ttl", "none"] = "lru"


class DNSSettings(Input):
    port: Int = Field(53, ge=1, le=65535)
    dnssec: Bool = False


class StorageSettings(Input):
    kind: Literal["block", "object", "file"] = "object"
    size_gb: Float = Field(100, gt=0)
    replication: Int = Field(1, ge=1, le=10)


class ComputeSettings(Input):
    runtime: Literal["python", "node", "wasm", "container"] = "container"
    memory_mb: Int = Field(512, ge=64, le=1_000_000)
    timeout_s: Int = Field(30, ge=1, le=3600)


class LoadBalancerSettings(Input):
    algorithm: Literal["round_robin", "least_conn", "ip_hash", "weighted", "dynamic"] = (
        "round_robin"
    )
    port: Int = Field(80, ge=1, le=65535)


class MonitoringSettings(Input):
    interval_s: Int = Field(60, ge=1, le=86400)
    retention_days: Int = Field(30, ge=1, le=3650)


# type -> (settings model, resources reserved by default)
SERVICE_TYPES: dict[str, tuple[type[Input], Capacity]] = {
    "cdn": (CDNSettings, Capacity(cpu=2, memory=4, storage=50)),
    "web": (WebSettings, Capacity(cpu=1, memory=2, storage=10)),
    "api": (APISettings, Capacity(cpu=2, memory=4, storage=10)),
    "database": (DatabaseSettings, Capacity(cpu=4, memory=16, storage=200)),
    "cache": (CacheSettings, Capacity(cpu=1, memory=4, storage=0)),
    "dns": (DNSSettings, Capacity(cpu=0.5, memory=1, storage=1)),
    "storage": (StorageSettings, Capacity(cpu=0.5, memory=1, storage=100)),
    "compute": (ComputeSettings, Capacity(cpu=2, memory=4, storage=20)),
    "edge_function": (ComputeSettings, Capacity(cpu=1, memory=1, storage=1)),
    "load_balancer": (LoadBalancerSettings, Capacity(cpu=1, memory=2, storage=1)),
    "monitoring": (MonitoringSettings, Capacity(cpu=0.5, memory=1, storage=20)),
}


def validate_settings(service_type: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The settings with defaults filled in, or InvalidInput naming ``settings.<field>``."""
    entry = SERVICE_TYPES.get(service_type)
    if entry is None:
        known = ", ".join(sorted(SERVICE_TYPES))
        raise InvalidInput.at("type", f"unknown service type {service_type!r}; one of {known}")
    model, _ = entry
    try:
        return model.model_validate(settings).model_dump(mode="json")
    except ValidationError as exc:
        raise invalid_from_pydantic(exc, prefix="settings") from None


def default_resources(service_type: str) -> Capacity:
    return SERVICE_TYPES[service_type][1]
