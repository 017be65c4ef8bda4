"""A project at a glance: ``GET /api/v1/overview``."""

from __future__ import annotations

from datetime import datetime

from edgeplane.model.common import Output


class DomainsSummary(Output):
    total: int
    by_status: dict[str, int]


class ExpiringCertificate(Output):
    domain: str
    not_after: datetime  # of the domain's active certificate that lasts longest
    days_left: float


class CertificatesSummary(Output):
    active: int  # domains with an active certificate
    expiring_soon: int
    soon_days: int
    expiring: list[ExpiringCertificate]  # the soonest first, ten at most


class BackendDown(Output):
    load_balancer: str
    backend: str
    reason: str


class BackendsSummary(Output):
    total: int
    down: int  # no live edge node sees it up, and at least one sees it down
    down_list: list[BackendDown]  # ten at most


class Overview(Output):
    project: str
    domains: DomainsSummary
    certificates: CertificatesSummary
    backends: BackendsSummary
