"""Certificates as users see them: never the private key."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from edgeplane.model.common import Bool, Input, MultilineText, Output, Text


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


class Renewal(Output):
    due_at: datetime | None  # when the served certificate is renewed
    attempts: int = 0  # failed attempts since the last success
    last_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    suggested_by_ca: datetime | None = None  # ACME renewal information, when the CA has it


class OcspStaple(Output):
    """The OCSP response the edge staples for the served certificate (``ocsp_url`` None: its
    CA offers no OCSP, nothing to staple)."""

    ocsp_url: str | None
    stapled: bool  # a checked, fresh response travels to the edge
    status: str | None = None  # good
    this_update: datetime | None = None
    next_update: datetime | None = None
    fetched_at: datetime | None = None
    next_fetch_at: datetime | None = None
    attempts: int = 0  # failed fetches since the last success
    last_error: str | None = None


class CertificateStatus(Output):
    """``GET /api/v1/infrastructure/ssl/{domain}``: what the edge serves for the domain."""

    domain: str
    status: Literal["active", "expired", "none"]
    certificate: Certificate | None  # the newest valid one (else the newest one)
    expires_at: datetime | None
    certificates: list[Certificate]  # every certificate of the domain, newest first
    renewal: Renewal | None = None  # of the served certificate (None: not renewed here)
    ocsp: OcspStaple | None = None  # of the served certificate (None: not fetched yet)


CertType = Literal["lets_encrypt", "custom", "internal"]


class CertificateRequest(Input):
    """``POST /api/v1/infrastructure/ssl/{domain}``."""

    type: CertType = "lets_encrypt"
    auto_renew: Bool = True
    challenge: Literal["http-01", "dns-01"] | None = Field(
        None, description="ACME challenge (default http-01; dns-01 for wildcards)"
    )
    include_www: Bool = Field(True, description="also cover www.<domain>")
    wildcard: Bool = Field(False, description="also cover *.<domain> (DNS-01)")
    key_type: Literal["ec256", "rsa2048"] = "ec256"
    cert_data: MultilineText | None = Field(
        None, description="type custom: the PEM chain, leaf first"
    )
    key_data: MultilineText | None = Field(None, description="type custom: the PEM private key")


class CertificateUpload(Input):
    """``POST /api/v1/infrastructure/ssl/{domain}/upload``."""

    cert_data: MultilineText
    key_data: MultilineText


class CertificateRevoke(Input):
    certificate_id: Text | None = Field(None, description="default: the newest valid one")


class CertificateIssued(Output):
    """The answer of ``POST /ssl/{domain}`` (and of renew and upload)."""

    certificate: Certificate
    expires_at: datetime


class CertificateSummary(Output):
    """A row of ``GET /api/v1/infrastructure/ssl``: one of the project's domains and what the
    edge serves for it (``status`` none: no certificate yet)."""

    domain: str
    domain_status: str  # active (verified) / pending
    status: Literal["active", "expired", "none"]
    certificate: Certificate | None  # the newest valid one (else the newest one)
    expires_at: datetime | None
    versions: int  # certificates kept for the domain
    renewal: Renewal | None = None


class CertificateList(Output):
    certificates: list[CertificateSummary]
    next_cursor: str | None = None


class ChainCertificate(Output):
    """One certificate of a chain as stored (leaf first, then its issuers)."""

    subject: str  # RFC 4514
    issuer: str
    serial: str  # hex
    not_before: datetime
    not_after: datetime
    key_type: str  # RSA / EC P-256 / ...
    key_size: int
    signature_algorithm: str | None
    fingerprint: str  # SHA-256 of the DER certificate, hex
    is_ca: bool


class CertificateDetails(Output):
    """``GET /api/v1/infrastructure/ssl/{domain}/certificates/{id}``: one kept version."""

    certificate: Certificate
    served: bool  # the edge serves this version now
    key_type: str
    key_size: int
    serial: str
    chain: list[ChainCertificate]
    chain_pem: str  # public: the certificates, never the key


class CertificateSettings(Input):
    """``PATCH /api/v1/infrastructure/ssl/{domain}``: of the served certificate (and the
    versions its renewals issue)."""

    auto_renew: Bool
