"""Alert rules, silences and notification channels: what the API takes and answers."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator

from edgeplane.model.common import Bool, Float, Input, Int, Name, Output, Slug, Text
from edgeplane.notify.channels import ChannelConfig

# The series of ``edgeplane.services.series`` (which checks that its catalog is this list).
SERIES_NAMES: tuple[str, ...] = (
    "backup_age_hours", "backup_verification_failed", "dr_drill_failed", "dr_failed_over",
    "compliance_failed", "exposed_ports", "security_score", "security_score_drop",
    "backend_requests", "bandwidth_bytes", "blocked_requests", "certificate_days_left",
    "client_limits_refused", "config_drift_objects", "connection_limited", "cpu_percent",
    "denied", "dns_up", "domain_up", "error_rate",
    "errors_4xx", "errors_5xx", "hit_ratio",
    "memory_available_percent", "memory_percent", "network_latency_ms", "origin_up",
    "rate_limited", "requests", "requests_per_second", "response_time_p50_ms",
    "response_time_p95_ms", "response_time_p99_ms", "slow_clients_cut", "storage_percent",
    "tls_days_left", "too_large_refused", "upstream_time_p95_ms", "uptime_percent",
    "function_invocations", "function_errors", "function_error_rate",
    "function_duration_p50_ms", "function_duration_p95_ms", "function_duration_p99_ms",
)  # fmt: skip


def _series(value: str) -> str:
    if value not in SERIES_NAMES:
        raise ValueError(f"unknown series {value!r}; known: {', '.join(SERIES_NAMES)}")
    return value


# The schema says the names (an enum); the validator says which are known in its message.
SeriesName = Annotated[
    str,
    AfterValidator(_series),
    Field(
        description="a series of GET /api/v1/metrics/series, e.g. cpu_percent",
        json_schema_extra={"enum": list(SERIES_NAMES)},
    ),
]
Comparison = Literal[">", ">=", "<", "<=", "==", "!="]
Severity = Literal["info", "warning", "critical"]
DAY_S = 86400


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


class AlertRuleCreate(Input):
    """``series comparison threshold``, evaluated over ``window_s`` for each object the
    selector picks, firing once it has held for ``for_s``."""

    id: Slug
    name: Name
    series: SeriesName
    selector: dict[Text, Text] = Field(
        default_factory=dict,
        description='which objects, e.g. {"domain": "shop.example.com"}; {}: all of them',
    )
    comparison: Comparison
    threshold: Float
    window_s: Int = Field(300, ge=60, le=30 * DAY_S, description="the window the value covers")
    for_s: Int = Field(0, ge=0, le=7 * DAY_S, description="how long it must hold to fire")
    severity: Severity = "warning"
    enabled: Bool = True
    channels: list[Slug] = Field(
        default_factory=list, max_length=50, description="channel ids; empty: every channel"
    )
    description: Text = Field("", max_length=2000)

    _threshold = field_validator("threshold")(_finite)


class AlertRuleUpdate(Input):
    name: Name | None = None
    series: SeriesName | None = None
    selector: dict[Text, Text] | None = None
    comparison: Comparison | None = None
    threshold: Float | None = None
    window_s: Int | None = Field(None, ge=60, le=30 * DAY_S)
    for_s: Int | None = Field(None, ge=0, le=7 * DAY_S)
    severity: Severity | None = None
    enabled: Bool | None = None
    channels: list[Slug] | None = Field(None, max_length=50)
    description: Text | None = Field(None, max_length=2000)

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, value: float | None) -> float | None:
        return None if value is None else _finite(value)


class AlertRule(Output):
    id: str
    project: str
    name: str
    series: str
    selector: dict[str, str]
    comparison: str
    threshold: float
    window_s: int
    for_s: int
    severity: str
    enabled: bool
    channels: list[str]
    description: str
    builtin: bool = Field(
        description="shipped with the platform: it can be changed or disabled, not deleted"
    )
    firing: int = Field(0, description="objects for which it fires now")
    pending: int = Field(0, description="objects for which it holds, not yet for for_s")
    created_at: datetime
    updated_at: datetime


class SilenceCreate(Input):
    """No notification for the matching alerts in ``[starts_at, ends_at)``; give ``ends_at``
    or ``duration_s``."""

    id: Slug | None = None
    rule: Slug | None = Field(None, description="a rule id; none: any rule")
    object: Text | None = Field(
        None, max_length=255, description="an object (a domain, a pool), '*' wildcards allowed"
    )
    severity: Severity | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    duration_s: Int | None = Field(None, gt=0, le=365 * DAY_S)
    comment: Text = Field("", max_length=2000)


class Silence(Output):
    id: str
    project: str
    rule: str | None
    object: str | None
    severity: str | None
    starts_at: datetime
    ends_at: datetime
    comment: str
    created_by: str
    created_at: datetime
    active: bool


class ChannelCreate(Input):
    id: Slug
    name: Name
    config: ChannelConfig
    enabled: Bool = True


class ChannelUpdate(Input):
    """A new ``config`` replaces the old one whole (its secrets too: give them again)."""

    name: Name | None = None
    config: ChannelConfig | None = None
    enabled: Bool | None = None


class Channel(Output):
    id: str
    project: str
    name: str
    kind: str
    config: dict[str, Any] = Field(description='secrets shown as "set"')
    enabled: bool
    created_at: datetime
    updated_at: datetime


class DeliveryAttempt(Output):
    at: datetime
    ok: bool
    error: str | None = None
    status: int | None = None
    ms: float | None = None


class NotificationView(Output):
    id: int
    alert_id: str
    channel: str
    event: str
    status: str = Field(description="pending, delivered, failed (gave up) or silenced")
    attempts: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None
    log: list[DeliveryAttempt]
    created_at: datetime


class ChannelTest(Output):
    ok: bool
    error: str | None
    status: int | None
    ms: float
