"""Certificates as users see them: never the private key."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from edgeplane.model.common import Output


class Certificate(Output):
    id: str
    project: str
    domain: str
    issuer: str  # internal / lets_encrypt / custom
    names: list[str]
    status: str  # active / expired / revoked
    not_before: datetime
    not_after: datetime
    auto_renew: bool
    fingerprint: str  # SHA-256 of the DER certificate, hex


class CertificateStatus(Output):
    """``GET /api/v1/infrastructure/ssl/{domain}``: what the edge serves for the domain."""

    domain: str
    status: Literal["active", "expired", "none"]
    certificate: Certificate | None  # the newest valid one (else the newest one)
    expires_at: datetime | None
    certificates: list[Certificate]  # every certificate of the domain, newest first
