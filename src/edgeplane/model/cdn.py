"""A project's CDN: origins, ordered cache rules, security at the edge, purges, analytics.

The stored JSON of ``cdn_configs`` is ``model_dump(mode="json")`` of these input models:
``origins`` a list of ``Origin``, ``cache_rules`` a list of ``CacheRule`` (with ids),
``security`` an ``EdgeSecurity``.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator

from edgeplane.model.bots import BotSettings
from edgeplane.model.client_limits import ClientLimits
from edgeplane.model.common import Bool, Float, Input, Int, ObjectId, Output, Text, patch_model
from edgeplane.model.headers_policy import HeadersPolicy
from edgeplane.model.origin_tls import OriginTls, origin_tls_needs_https
from edgeplane.model.waf import WafSettings

# /exact/path | /prefix/* | /a/b/* (at most two segments) | /* | *.ext
_EXACT = re.compile(r"^/[^\s*?#]*$")
_PREFIX = re.compile(r"^/(?:[^\s*?#/]+/){0,2}\*$")
_EXT = re.compile(r"^\*\.[A-Za-z0-9]{1,16}$")
# The same rules as one pattern for the JSON schema (control characters excluded, as Text
# refuses them): tests/unit/test_schema_patterns.py holds them in step.
_PATH_CHAR = r"[^\s*?#\x00-\x1f\x7f-\x9f]"
CACHE_PATTERN = (
    rf"^(?:/{_PATH_CHAR}*|/(?:[^\s*?#/\x00-\x1f\x7f-\x9f]+/){{0,2}}\*|\*\.[A-Za-z0-9]{{1,16}})$"
)
# What a purge takes (edgeplane.services.purges.check_path): /exact/path or /prefix/*.
PURGE_PATH_PATTERN = rf"^(?:/{_PATH_CHAR}*|/(?:{_PATH_CHAR}*/)?\*)$"
PURGE_PATH_MAX = 2048
HEADER_PATTERN = r"^[A-Za-z0-9-]{1,64}$"
COOKIE_OR_PARAM_PATTERN = r"^[A-Za-z0-9_.\-\[\]]{1,64}$"
_HEADER = re.compile(HEADER_PATTERN)
_COOKIE_OR_PARAM = re.compile(COOKIE_OR_PARAM_PATTERN)
# Names as the schema states them (the validators below say what is wrong).
_HeaderName = Annotated[Text, Field(json_schema_extra={"pattern": HEADER_PATTERN})]
_CookieOrParam = Annotated[Text, Field(json_schema_extra={"pattern": COOKIE_OR_PARAM_PATTERN})]


def check_pattern(value: str) -> str:
    if _PREFIX.fullmatch(value) or _EXT.fullmatch(value) or _EXACT.fullmatch(value):
        return value
    raise ValueError(
        "must be an exact path (/robots.txt), a prefix of at most two segments "
        "(/static/*, /static/img/*, /* for everything) or an extension (*.css)"
    )


def pattern_kind(pattern: str) -> Literal["exact", "prefix", "ext"]:
    if pattern.startswith("*."):
        return "ext"
    return "prefix" if pattern.endswith("*") else "exact"


class CacheKey(Input):
    """What besides the project and the path makes two requests the same cached object."""

    host: Bool = Field(True, description="the host name (off: one object for all domains)")
    query: (
        Literal["all", "none"]
        | Annotated[list[_CookieOrParam], Field(json_schema_extra={"minItems": 1, "maxItems": 16})]
    ) = Field(
        "all", description="all: the whole query string; none: ignored; a list: those parameters"
    )
    headers: list[_HeaderName] = Field(default_factory=list, max_length=8)
    cookies: list[_CookieOrParam] = Field(default_factory=list, max_length=8)

    @field_validator("query")
    @classmethod
    def _params(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list):
            if not 1 <= len(value) <= 16:
                raise ValueError("list between 1 and 16 query parameters, or all / none")
            for name in value:
                if not _COOKIE_OR_PARAM.fullmatch(name):
                    raise ValueError(f"{name!r} is not a valid query parameter name")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _HEADER.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid header name")
        return [v.lower() for v in value]

    @field_validator("cookies")
    @classmethod
    def _cookies(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _COOKIE_OR_PARAM.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid cookie name")
        return value


class CacheRuleCreate(Input):
    id: ObjectId | None = None
    pattern: Annotated[Text, AfterValidator(check_pattern)] = Field(
        description="/exact/path, /prefix/* (at most two segments), /* or *.ext",
        json_schema_extra={"pattern": CACHE_PATTERN},
    )
    ttl: Int = Field(3600, ge=0, le=31_536_000, description="seconds an object stays fresh")
    bypass: Bool = Field(False, description="never cache what matches")
    cache_key: CacheKey = Field(default_factory=CacheKey)
    origin_cache_control: Literal["honour", "override"] = Field(
        "override",
        description="honour: the origin's Cache-Control / Expires win and ttl applies when it "
        "says nothing; override: ttl applies whatever the origin says",
    )
    stale_if_error: Bool = Field(
        True,
        description="serve stale content while the origin fails, where the origin allows it "
        "(not with must-revalidate, proxy-revalidate, s-maxage or no-cache); the origin's own "
        "stale-if-error is honoured either way",
    )
    stale_while_revalidate: Bool = Field(
        False,
        description="serve stale content at once while refreshing it in the background, where "
        "the origin allows it; the origin's own stale-while-revalidate is honoured either way",
    )


class CacheRulePatch(patch_model(CacheRuleCreate)):  # type: ignore[misc]
    """``PATCH``: a JSON merge patch of CacheRule, the fields to change."""


class CacheRule(Output):
    id: str
    pattern: str
    ttl: int
    bypass: bool
    cache_key: CacheKey
    origin_cache_control: Literal["honour", "override"]
    stale_if_error: bool
    stale_while_revalidate: bool


class Origin(Input):
    """Where the edge sends what it does not serve from cache: a URL or a load balancer."""

    url: Text | None = Field(None, description="http(s)://host[:port]")
    load_balancer: ObjectId | None = Field(None, description="a load balancer of the project")
    weight: Int = Field(1, ge=1, le=1000, description="among URL origins")
    backup: Bool = Field(False, description="a URL origin used only when the others are down")
    tls: OriginTls | None = Field(
        None,
        description="an https URL origin's client certificate and verification (private "
        "origins); the same on every URL origin (a load balancer has its own)",
    )

    @model_validator(mode="after")
    def _one(self) -> Origin:
        if (self.url is None) == (self.load_balancer is None):
            raise ValueError("give either url or load_balancer")
        if self.tls is not None and self.tls.active:
            origin_tls_needs_https(self.url, self.load_balancer)
        return self

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        m = re.match(r"^(https?)://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?/?$", value)
        if not m:
            raise ValueError("must be http(s)://host[:port] with no path")
        if m.group(3) and not 1 <= int(m.group(3)) <= 65535:
            raise ValueError("port must be 1-65535")
        return value.rstrip("/")


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or CIDR block") from None


Cidr = Annotated[str, AfterValidator(_cidr)]


class RateLimit(Input):
    rate: Int = Field(ge=1, le=1_000_000, description="requests per second per client address")
    burst: Int = Field(0, ge=0, le=1_000_000, description="requests above the rate let through")


class EdgeSecurity(Input):
    force_https: Bool = Field(True, description="redirect HTTP to HTTPS (308)")
    hsts_max_age: Int = Field(0, ge=0, le=63_072_000, description="0: no HSTS header")
    hsts_include_subdomains: Bool = False
    rate_limit: RateLimit | None = None
    ip_allow: list[Cidr] = Field(default_factory=list, max_length=1000)
    ip_deny: list[Cidr] = Field(default_factory=list, max_length=1000)
    # L7 DDoS protection (edgeplane.model.client_limits)
    limits: ClientLimits = Field(default_factory=ClientLimits)
    under_attack: Bool = Field(False, description="tighten every client limit at once")
    bots: BotSettings = Field(
        default_factory=BotSettings,
        description="bot protection: known-bad and automated clients, behaviour, good bots",
    )
    waf: WafSettings = Field(default_factory=WafSettings, description="see model.waf")
    headers: HeadersPolicy = Field(
        default_factory=HeadersPolicy, description="security headers: set, keep or remove"
    )


class CDNConfigCreate(Input):
    """The body of ``POST /api/v1/infrastructure/cdn``: replaces the project's CDN config."""

    origins: list[Origin] = Field(default_factory=list, max_length=100)
    cache_rules: list[CacheRuleCreate] = Field(default_factory=list, max_length=100)
    security: EdgeSecurity = Field(default_factory=EdgeSecurity)


class CDNDeployment(Output):
    project: str
    origins: list[Origin]
    cache_rules: list[CacheRule]
    security: EdgeSecurity
    domains: list[str]  # what the edge serves for the project
    revision: int | None  # the revision that holds this config
    created_at: datetime
    updated_at: datetime


class PurgeRequest(Input):
    """Paths, or everything (``purge_all``): at least one of them."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["paths"], "properties": {"paths": {"minItems": 1}}},
                {"required": ["purge_all"], "properties": {"purge_all": {"const": True}}},
            ]
        }
    )

    paths: list[
        Annotated[
            Text,
            Field(json_schema_extra={"pattern": PURGE_PATH_PATTERN, "maxLength": PURGE_PATH_MAX}),
        ]
    ] = Field(default_factory=list, max_length=1000, description="/exact/path or /prefix/*")
    purge_all: Bool = False
    wait: Bool = Field(False, description="wait until every online edge node has purged")
    timeout_s: Float = Field(10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _something(self) -> PurgeRequest:
        if not self.paths and not self.purge_all:
            raise ValueError("give paths or purge_all")
        return self


class NodePurge(Output):
    node: str
    completed_at: datetime | None
    purged_count: int | None
    latency_ms: float | None  # from the purge call to the node's completion
    error: str | None = None


class PurgeResult(Output):
    id: str
    purged_count: int  # objects removed over all nodes that have completed
    complete: bool  # every online node has completed
    nodes: list[NodePurge]
    created_at: datetime


class LatencySummary(Output):
    p50: float | None
    p95: float | None
    p99: float | None


class TrafficTotals(Output):
    requests: int
    hits: int
    misses: int
    hit_ratio: float | None  # hits / (hits + misses)
    bytes_out: int
    statuses: dict[str, int]
    cache: dict[str, int]
    upstream_ms: LatencySummary


class DomainTraffic(TrafficTotals):
    domain: str


class CDNAnalytics(TrafficTotals):
    project: str
    start: datetime
    end: datetime
    domains: list[DomainTraffic]
