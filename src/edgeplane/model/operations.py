"""Global operations: load balancers and disaster-recovery configs."""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from edgeplane.model.common import ID_PATTERN, Input, Name, ObjectId, Stamped
from edgeplane.model.enums import LB_ALGORITHM_ALIASES, Environment, LBAlgorithm, RegionCode

_STATUS_RANGE = re.compile(r"^([1-5]\d\d)(?:-([1-5]\d\d))?$")
_HOSTPORT = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(?P<port>\d{1,5})$")


class HealthCheck(Input):
    protocol: Literal["http", "https", "tcp"] = "http"
    path: str = Field("/", pattern=r"^/[^\s]*$", max_length=1024)
    interval_s: float = Field(5.0, ge=1, le=300, description="seconds between checks")
    timeout_s: float = Field(2.0, gt=0, le=60)
    healthy_threshold: int = Field(2, ge=1, le=10, description="successes to mark up (rise)")
    unhealthy_threshold: int = Field(3, ge=1, le=10, description="failures to mark down (fall)")
    expected_status: str = Field("200-399", description="a status or a range, e.g. 200-299")

    @field_validator("expected_status")
    @classmethod
    def _status(cls, value: str) -> str:
        m = _STATUS_RANGE.match(value.strip())
        if not m or (m.group(2) and int(m.group(2)) < int(m.group(1))):
            raise ValueError("must be a status such as 200 or a range such as 200-399")
        return value.strip()

    @model_validator(mode="after")
    def _timeout_below_interval(self) -> HealthCheck:
        if self.timeout_s >= self.interval_s:
            raise ValueError("timeout_s must be shorter than interval_s")
        return self


def classify_endpoint(value: str) -> Literal["server", "address"]:
    """An endpoint is an inventory server id, ``host:port`` or an http(s) URL."""
    text = value.strip()
    if text.startswith(("http://", "https://")):
        parts = urlsplit(text)
        if not parts.hostname:
            raise ValueError(f"{value!r} is not a valid URL")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValueError(f"{value!r} has an invalid port") from None
        return "address"
    m = _HOSTPORT.match(text)
    if m:
        if not 1 <= int(m.group("port")) <= 65535:
            raise ValueError(f"{value!r}: port must be 1-65535")
        host = m.group("host").strip("[]")
        if ":" in host:
            ipaddress.IPv6Address(host)
        return "address"
    if re.match(ID_PATTERN, text):
        return "server"
    raise ValueError(f"{value!r} is neither a server id, host:port nor an http(s) URL")


class LoadBalancerCreate(Input):
    id: ObjectId | None = None
    name: Name | None = None
    algorithm: LBAlgorithm = LBAlgorithm.ROUND_ROBIN
    region: RegionCode | None = None
    endpoints: list[str] = Field(default_factory=list, max_length=1000)
    health_check: HealthCheck = Field(default_factory=HealthCheck)
    environment: Environment = Environment.PROD

    @model_validator(mode="before")
    @classmethod
    def _type_alias(cls, data: Any) -> Any:
        # The operations guide calls the algorithm "type".
        if isinstance(data, dict) and "type" in data:
            data = dict(data)
            if "algorithm" in data:
                raise ValueError("give either algorithm or type, not both")
            data["algorithm"] = data.pop("type")
        if isinstance(data, dict) and isinstance(data.get("algorithm"), str):
            alias = LB_ALGORITHM_ALIASES.get(data["algorithm"].strip().lower())
            if alias is not None:
                data = {**data, "algorithm": alias}
        return data

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, values: list[str]) -> list[str]:
        seen: set[str] = set()
        out = []
        for i, value in enumerate(values):
            try:
                classify_endpoint(value)
            except ValueError as exc:
                raise ValueError(f"endpoints[{i}]: {exc}") from None
            if value.strip() in seen:
                raise ValueError(f"endpoints[{i}]: {value!r} is listed twice")
            seen.add(value.strip())
            out.append(value.strip())
        return out


class LoadBalancer(Stamped):
    id: str
    project: str
    name: str
    algorithm: LBAlgorithm
    region: RegionCode | None
    endpoints: list[str]
    health_check: HealthCheck
    environment: Environment

    @property
    def type(self) -> LBAlgorithm:
        return self.algorithm


class DRConfigCreate(Input):
    id: ObjectId | None = None
    name: Name
    primary_dc: ObjectId
    backup_dc: ObjectId
    rpo: int = Field(ge=1, le=10080, description="recovery point objective, minutes")
    rto: int = Field(ge=1, le=10080, description="recovery time objective, minutes")
    environment: Environment = Environment.PROD


class DRConfig(Stamped):
    id: str
    project: str
    name: str
    primary_dc: str
    backup_dc: str
    rpo: int
    rto: int
    environment: Environment
    warnings: list[str] = Field(default_factory=list)
