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
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from edgeplane.model.common import (
    ID_PATTERN,
    Bool,
    Float,
    Input,
    Int,
    Name,
    ObjectId,
    Output,
    Text,
    patch_model,
)
from edgeplane.model.enums import LB_ALGORITHM_ALIASES, Environment, LBAlgorithm, RegionCode
from edgeplane.model.origin_tls import OriginTls, located
from edgeplane.model.regions import RegionRef

_STATUS_RANGE = re.compile(r"^([1-5]\d\d)(?:-([1-5]\d\d))?$")
_HOSTPORT = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(?P<port>\d{1,5})$")


class HealthCheck(Input):
    protocol: Literal["http", "https", "tcp"] = "http"
    path: str = Field("/", pattern=r"^/[^\s\x00-\x1f\x7f-\x9f]*$", max_length=1024)
    interval_s: Float = Field(5.0, ge=1, le=300, description="seconds between checks")
    timeout_s: Float = Field(2.0, gt=0, le=60, description="default 2, or half a shorter interval")
    healthy_threshold: Int = Field(2, ge=1, le=10, description="successes to mark up (rise)")
    unhealthy_threshold: Int = Field(3, ge=1, le=10, description="failures to mark down (fall)")
    expected_status: Text = Field("200-399", description="a status or a range, e.g. 200-299")

    @model_validator(mode="before")
    @classmethod
    def _default_timeout(cls, data: Any) -> Any:
        # The default timeout (2 s) would not be shorter than an interval of 2 s or less, and a
        # default is not validated: such an interval gets half of itself as its timeout.
        interval = data.get("interval_s") if isinstance(data, dict) else None
        if (
            isinstance(interval, int | float)
            and not isinstance(interval, bool)
            and 0 < interval <= 2.0
            and "timeout_s" not in data
        ):
            return {**data, "timeout_s": interval / 2}
        return data

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


BackendAdminState = Literal["active", "draining", "disabled"]


def backend_key(address: str, port: int | None) -> str:
    """How a backend is named in health reports and URLs: the address as given, plus
    ``:port`` for a server id with an explicit port."""
    return f"{address}:{port}" if port is not None else address


class Backend(Input):
    """A backend of a load balancer: an inventory server, ``host:port`` or an http(s) URL."""

    address: Endpoint = Field(description="inventory server id, host:port or http(s) URL")
    port: Int | None = Field(None, ge=1, le=65535, description="only for a server id (default 80)")
    weight: Int = Field(100, ge=1, le=1000, description="share of traffic among its peers")
    backup: Bool = Field(False, description="takes traffic only while every primary is down")
    state: BackendAdminState = Field(
        "active",
        description="active; draining: no new requests, in-flight ones finish; disabled: off",
    )
    wait_for_check: Bool = Field(
        False,
        description="takes traffic only once a health check passed on each edge node; by "
        "default a new backend is trusted until a check fails",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"address": data} if isinstance(data, str) else data

    @field_validator("port")
    @classmethod
    def _port_for_servers(cls, value: int | None, info: ValidationInfo) -> int | None:
        address = info.data.get("address")
        if value is not None and address is not None and classify_endpoint(address) != "server":
            raise ValueError("a port is only for a server id; give it in the address instead")
        return value

    @property
    def key(self) -> str:
        return backend_key(self.address, self.port)


class _BackendFields(Input):
    port: Int | None = Field(None, ge=1, le=65535)
    weight: Int = Field(100, ge=1, le=1000)
    backup: Bool = False
    state: BackendAdminState = "active"
    wait_for_check: Bool = False


class BackendUpdate(patch_model(_BackendFields)):  # type: ignore[misc]
    """The fields of a backend that change in place (the address names it): each may be left
    out; ``port: null`` removes the port, the others take no null."""


def _duplicate(loc: tuple[int | str, ...], what: str, value: str) -> ValidationError:
    # A ValidationError with its own location names the repeated item.
    return ValidationError.from_exception_data(
        "duplicate",
        [
            InitErrorDetails(
                type=PydanticCustomError(
                    "duplicate_endpoint",
                    "{endpoint} is listed twice" + what,
                    {"endpoint": repr(value)},
                ),
                loc=loc,
                input=value,
            )
        ],
    )


class LoadBalancerCreate(Input):
    id: ObjectId | None = None
    name: Name | None = None
    algorithm: LBAlgorithm = LBAlgorithm.ROUND_ROBIN
    region: RegionRef | None = Field(
        None,
        description="the load balancer's region code (na, sa, eu, apac, mea); a location "
        "stands for its region code; a region type is refused unless it has only one code",
        examples=["na"],
    )
    endpoints: list[Endpoint] = Field(
        default_factory=list,
        max_length=1000,
        description="shorthand: inventory server ids, host:port or http(s) URLs, each an "
        "active backend of weight 100; each listed once",
    )
    backends: list[Backend] = Field(
        default_factory=list,
        max_length=1000,
        description="backends with weight, backup flag and state; merged with endpoints",
    )
    health_check: HealthCheck = Field(default_factory=HealthCheck)
    connect_timeout_s: Float = Field(
        2.0, ge=0.1, le=60, description="seconds to connect to a backend before trying the next"
    )
    read_timeout_s: Float = Field(
        30.0, ge=0.5, le=3600, description="seconds between two reads from a backend"
    )
    retries: Int = Field(
        1, ge=0, le=5, description="tries on the next backend for idempotent requests"
    )
    tier: Name | None = Field(
        None,
        description="the billing tier, a tier of the cost model (basic, standard, premium); "
        "null: the smallest tier that holds the backends",
        examples=["standard"],
    )
    environment: Environment = Environment.PROD
    tls: OriginTls | None = Field(
        None,
        description="client certificate and verification of https backends (private "
        "origins): edgeplane.model.origin_tls",
    )
    # How many of ``backends`` came from ``endpoints`` (they come first): errors name them.
    _from_endpoints: int = PrivateAttr(0)

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
                raise _duplicate((i,), "", value)
            seen.add(value)
        return values

    @field_validator("backends")
    @classmethod
    def _backends_once(cls, values: list[Backend]) -> list[Backend]:
        seen: set[str] = set()
        for i, backend in enumerate(values):
            if backend.key in seen:
                raise _duplicate((i, "address"), "", backend.key)
            seen.add(backend.key)
        return values

    @model_validator(mode="after")
    def _merge_endpoints(self) -> LoadBalancerCreate:
        """Endpoints become active backends of weight 100, before the backends given."""
        keys = {b.key for b in self.backends}
        for i, endpoint in enumerate(self.endpoints):
            if endpoint in keys:
                raise _duplicate(("endpoints", i), " (in endpoints and in backends)", endpoint)
        merged = [*(Backend(address=e) for e in self.endpoints), *self.backends]
        self._from_endpoints = len(self.endpoints)
        self.backends = merged
        self.endpoints = [b.address for b in merged]
        return self

    @model_validator(mode="after")
    def _tls_needs_https(self) -> LoadBalancerCreate:
        """TLS settings apply to a pool whose backends are all https URLs (nginx speaks TLS
        to a pool, or not)."""
        if self.tls is not None and self.tls.active:
            for i, backend in enumerate(self.backends):
                if not backend.address.strip().startswith("https://"):
                    raise located(
                        "tls",
                        f"TLS settings need every backend to be an https:// URL "
                        f"({self.backend_field(i)} is {backend.address!r})",
                    )
        return self

    def backend_field(self, index: int) -> str:
        """The input field that gave ``backends[index]``."""
        if index < self._from_endpoints:
            return f"endpoints.{index}"
        return f"backends.{index - self._from_endpoints}.address"

    def options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "connect_timeout_s": self.connect_timeout_s,
            "read_timeout_s": self.read_timeout_s,
            "retries": self.retries,
        }
        if self.tier is not None:
            options["tier"] = self.tier
        if self.tls is not None:
            options["tls"] = self.tls.model_dump(mode="json")
        return options


class LoadBalancerPatch(patch_model(LoadBalancerCreate)):  # type: ignore[misc]
    """``PATCH``: a JSON merge patch of LoadBalancer, the fields to change."""

    @model_validator(mode="before")
    @classmethod
    def _type_alias(cls, data: Any) -> Any:
        # ``type`` and the algorithms' other names, as LoadBalancerCreate takes them.
        return LoadBalancerCreate._type_alias(data)  # type: ignore[operator]


class LoadBalancer(Output):
    id: str
    project: str
    name: str
    algorithm: LBAlgorithm
    region: RegionCode | None
    endpoints: list[str]  # the backends' addresses
    backends: list[Backend] = Field(default_factory=list)
    health_check: HealthCheck
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 30.0
    retries: int = 1
    tier: str | None = None  # the billing tier chosen; None: the smallest that fits
    environment: Environment
    tls: OriginTls | None = None  # TLS to the backends (edgeplane.model.origin_tls)
    domains: list[str] = Field(
        default_factory=list,
        description="the project's active domains the edge serves through this load balancer: "
        "it is the CDN config's origin, or the project has no CDN config and this is its only "
        "load balancer (empty otherwise)",
    )
    created_at: datetime
    updated_at: datetime

    @property
    def type(self) -> LBAlgorithm:
        return self.algorithm


class NodeBackendHealth(Output):
    """What one edge node's active checks last saw of a backend."""

    node: str  # the edge node's name
    node_id: str
    state: Literal["up", "down", "unknown"]
    reason: str
    checked_at: datetime | None
    changed_at: datetime | None
    latency_ms: float | None


class BackendHealth(Output):
    """A backend's admin state and what every edge node sees of it."""

    backend: str  # the key: address, plus :port for a server id with an explicit port
    address: str
    port: int | None
    weight: int
    backup: bool
    admin_state: BackendAdminState
    # out of rotation on a node until a check passed there (its state says "down",
    # "awaiting its first health check", meanwhile)
    wait_for_check: bool = False
    state: Literal["up", "down", "unknown"]  # up if any node says up, down if all say down
    nodes: list[NodeBackendHealth]


DRMode = Literal["automatic", "confirmed"]
MINUTES = "minutes; fractions are allowed (0.05 = 3 s); at most 10080 (a week)"


class DRConfigCreate(Input):
    id: ObjectId | None = None
    name: Name
    primary_dc: ObjectId
    backup_dc: ObjectId
    rpo: Float = Field(gt=0, le=10080, description=f"recovery point objective, {MINUTES}")
    rto: Float = Field(gt=0, le=10080, description=f"recovery time objective, {MINUTES}")
    environment: Environment = Environment.PROD
    failover_mode: DRMode = Field(
        "automatic",
        description="automatic: traffic moves to the backup data center as soon as the "
        "primary is found down; confirmed: the failover waits for an operator "
        "(POST .../failover)",
    )
    failback_mode: DRMode = Field(
        "automatic",
        description="automatic: traffic returns once the primary has been healthy for a "
        "while; confirmed: the failback waits for an operator (POST .../failback)",
    )
    drill_every_days: Int | None = Field(
        30,
        ge=1,
        le=366,
        description="days between scheduled drills (spec 004: monthly); null: none",
    )


class DRConfigPatch(patch_model(DRConfigCreate)):  # type: ignore[misc]
    """``PATCH``: a JSON merge patch of DRConfig, the fields to change."""


class DRConfig(Output):
    id: str
    project: str
    name: str
    primary_dc: str
    backup_dc: str
    rpo: float  # minutes
    rto: float  # minutes
    environment: Environment
    failover_mode: DRMode = "automatic"
    failback_mode: DRMode = "automatic"
    drill_every_days: int | None = 30
    warnings: list[str] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime
