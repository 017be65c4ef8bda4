"""Global operations: load balancers and disaster-recovery configs."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from edgeplane.model.common import ID_PATTERN, Input, Name, ObjectId, Output
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

    @field_validator("timeout_s")
    @classmethod
    def _timeout_below_interval(cls, value: float, info: ValidationInfo) -> float:
        # A field validator (not a model one) so that the error names health_check.timeout_s;
        # interval_s is declared first, so it is in info.data when it was valid itself.
        interval = info.data.get("interval_s")
        if interval is not None and value >= interval:
            raise ValueError(f"timeout_s must be shorter than interval_s ({interval:g})")
        return value


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


def _endpoint(value: str) -> str:
    classify_endpoint(value)
    return value.strip()


# Checked item by item, so that an error names its item (endpoints.1), not the whole list.
Endpoint = Annotated[str, AfterValidator(_endpoint)]


class LoadBalancerCreate(Input):
    id: ObjectId | None = None
    name: Name | None = None
    algorithm: LBAlgorithm = LBAlgorithm.ROUND_ROBIN
    region: RegionCode | None = None
    endpoints: list[Endpoint] = Field(
        default_factory=list,
        max_length=1000,
        description="inventory server ids, host:port or http(s) URLs; each listed once",
    )
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
    def _listed_once(cls, values: list[str]) -> list[str]:
        seen: set[str] = set()
        for i, value in enumerate(values):
            if value in seen:
                # A ValidationError with its own location names the repeated item.
                raise ValidationError.from_exception_data(
                    "endpoints",
                    [
                        InitErrorDetails(
                            type=PydanticCustomError(
                                "duplicate_endpoint",
                                "{endpoint} is listed twice",
                                {"endpoint": repr(value)},
                            ),
                            loc=(i,),
                            input=value,
                        )
                    ],
                )
            seen.add(value)
        return values


class LoadBalancer(Output):
    id: str
    project: str
    name: str
    algorithm: LBAlgorithm
    region: RegionCode | None
    endpoints: list[str]
    health_check: HealthCheck
    environment: Environment
    created_at: datetime
    updated_at: datetime

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


class DRConfig(Output):
    id: str
    project: str
    name: str
    primary_dc: str
    backup_dc: str
    rpo: int
    rto: int
    environment: Environment
    warnings: list[str] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime
