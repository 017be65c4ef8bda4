"""What was measured for a project over a billing period: the inputs of ``cost_report``.

Plain frozen dataclasses, filled by the caller (from the analytics, the load balancers, the
deployments and the certificates of a project); nothing here reads a database.

Byte counts are what the edge nodes served to clients. A ``TrafficUsage`` row holds one
domain's bytes through the edge nodes of one region: ``cdn_bytes`` the CDN responses (proxied
or from cache), ``edge_bytes`` the responses from an edge deployment's static bundle, billed
as edge deployment traffic and not as CDN. Several rows for the same domain and region add up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class TrafficUsage:
    """Bytes served over a span for ``domain`` by the edge nodes of ``region``."""

    domain: str
    region: str
    cdn_bytes: int = 0  # CDN responses: proxied to the origin or served from cache
    edge_bytes: int = 0  # responses from an edge deployment's static bundle

    def __post_init__(self) -> None:
        if self.cdn_bytes < 0 or self.edge_bytes < 0:
            raise ValueError(f"negative byte count for {self.domain} in {self.region}")


@dataclass(frozen=True)
class LoadBalancerUsage:
    """A load balancer. ``tier`` None: billed at the smallest tier that fits ``backends``;
    an explicit tier is billed as chosen (never below the tier its backends need)."""

    id: str
    name: str
    backends: int
    tier: str | None
    since: datetime  # creation time


@dataclass(frozen=True)
class DeploymentUsage:
    """An edge deployment and the regions it is served in."""

    id: str
    regions: tuple[str, ...]
    since: datetime  # creation time


@dataclass(frozen=True)
class CertificateUsage:
    """A certificate; only EV ones are billed."""

    id: str
    domain: str
    ev: bool
    since: datetime  # creation (or upload) time


@dataclass(frozen=True)
class PurgeUsage:
    """Purge-all requests over the last ``days`` days, and the bytes the edge fetched again
    from the origin in the hour after each of them (summed over them)."""

    purge_all_count: int
    days: float
    refetched_bytes: int


@dataclass(frozen=True)
class ProjectUsage:
    """A project's usage in the billing period ``[period_start, period_end)`` as of ``now``.

    ``traffic`` covers ``[period_start, now)``; ``traffic_recent`` the last ``recent_days``
    days before ``now`` (7 by default), for the forecast and the recommendations.
    """

    project: str
    period_start: datetime
    now: datetime
    period_end: datetime
    traffic: list[TrafficUsage] = field(default_factory=list)
    traffic_recent: list[TrafficUsage] = field(default_factory=list)
    recent_days: float = 7.0
    load_balancers: list[LoadBalancerUsage] = field(default_factory=list)
    deployments: list[DeploymentUsage] = field(default_factory=list)
    certificates: list[CertificateUsage] = field(default_factory=list)
    purges: PurgeUsage | None = None

    def __post_init__(self) -> None:
        if self.period_end <= self.period_start:
            raise ValueError("period_end must be after period_start")
        if self.recent_days < 0:
            raise ValueError("recent_days must not be negative")
