"""Security scores of domains, compliance policies and their reports, and the edge nodes'
exposed surface (``GET /api/v1/security/...``).

A score is out of 100 points shared by weighted checks (``edgeplane.posture.score``); a
compliance policy is a list of requirements from ``REQUIREMENTS`` (``edgeplane.posture.policy``
evaluates them); a node scan lists what answers on the node's address.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from edgeplane.model.common import Input, Int, Output, Text

Result = Literal["pass", "partial", "fail", "unknown", "n/a"]
Grade = Literal["A+", "A", "B", "C", "D", "F"]


class Check(Output):
    """One check of a domain's score: ``points`` of its ``weight`` earned (0 when
    ``unknown`` or ``n/a``, whose weight is left out of the score)."""

    id: str
    name: str
    result: Result
    weight: float
    points: float
    advice: str = ""  # what to do (empty on a pass)
    evidence: dict[str, Any] = Field(default_factory=dict)  # what was seen
    node: str | None = None  # the edge node whose view decided the result (the worst)


class ScoreCard(Output):
    domain: str
    score: float  # 0-100
    grade: Grade
    capped: str | None = None  # why the grade is lower than the score alone gives
    checks: list[Check]
    nodes: list[str]  # the edge nodes probed
    evaluated_at: datetime


class ScoreSummary(Output):
    """A domain's newest score (``GET /api/v1/security/scores``)."""

    domain: str
    score: float
    grade: Grade
    previous_score: float | None  # the evaluation before, if any
    best_score: float | None  # the best of the baseline window (what a drop is measured from)
    failing: list[str]  # ids of the checks that did not pass
    evaluated_at: datetime


class ScorePoint(Output):
    at: datetime
    score: float
    grade: Grade
    failing: list[str] = Field(default_factory=list)


class DomainScore(ScoreCard):
    """A domain's newest score with its checks and its history, newest first."""

    previous_score: float | None = None
    best_score: float | None = None
    history: list[ScorePoint] = Field(default_factory=list)


# Compliance --------------------------------------------------------------------------------

RequirementId = Literal[
    "https_only",
    "hsts_min_age",
    "hsts_include_subdomains",
    "tls_min_version",
    "strong_ciphers",
    "certificate_valid",
    "no_expiring_certs",
    "ocsp_stapling",
    "caa_present",
    "dnssec_on",
    "security_headers",
    "waf_blocking",
    "min_score",
]

# id -> (what it asks, the value it takes: None (none), "int" with its bounds and default,
# or a tuple of allowed strings with the default first)
REQUIREMENTS: dict[str, tuple[str, Any]] = {
    "https_only": ("HTTP answers with a redirect to HTTPS; HTTPS is served", None),
    "hsts_min_age": (
        "Strict-Transport-Security with max-age of at least VALUE seconds",
        ("int", 0, 63_072_000, 15_768_000),
    ),
    "hsts_include_subdomains": ("Strict-Transport-Security with includeSubDomains", None),
    "tls_min_version": ("no TLS version below VALUE is offered", ("1.2", "1.3")),
    "strong_ciphers": ("only the ciphers and curves of Mozilla's intermediate profile", None),
    "certificate_valid": ("a trusted certificate whose names cover the domain", None),
    "no_expiring_certs": (
        "the certificate served has at least VALUE days left",
        ("int", 1, 365, 30),
    ),
    "ocsp_stapling": ("an OCSP response is stapled (where the CA offers OCSP)", None),
    "caa_present": ("CAA records name the CAs that may issue", None),
    "dnssec_on": ("the zone is signed (DNSKEY with its RRSIG)", None),
    "security_headers": (
        "X-Content-Type-Options, X-Frame-Options (or CSP frame-ancestors), Referrer-Policy",
        None,
    ),
    "waf_blocking": ("the project's WAF is in blocking mode", None),
    "min_score": ("a security score of at least VALUE", ("int", 0, 100, 80)),
}


def requirement_default(requirement: str) -> int | str | None:
    spec = REQUIREMENTS[requirement][1]
    if spec is None:
        return None
    if spec[0] == "int":
        return int(spec[3])
    return str(spec[0])


class Requirement(Input):
    """One requirement of a policy: an id of the catalogue and, for those that take one,
    its value (left out: the catalogue's default)."""

    id: RequirementId
    value: Int | Text | None = Field(
        None, description="hsts_min_age: seconds; tls_min_version: 1.2 or 1.3; "
        "min_score: 0-100; no_expiring_certs: days; the others take none"
    )  # fmt: skip

    @model_validator(mode="after")
    def _value(self) -> Requirement:
        spec = REQUIREMENTS[self.id][1]
        if spec is None:
            if self.value is not None:
                raise ValueError(f"{self.id} takes no value")
            return self
        if self.value is None:
            self.value = requirement_default(self.id)
            return self
        if spec[0] == "int":
            low, high = spec[1], spec[2]
            if isinstance(self.value, str) or not low <= self.value <= high:
                raise ValueError(f"the value of {self.id} must be a number from {low} to {high}")
        elif self.value not in spec:
            raise ValueError(f"the value of {self.id} must be one of {', '.join(spec)}")
        return self


class CompliancePolicyIn(Input):
    """The body of ``PUT /api/v1/security/compliance``: the project's whole policy."""

    requirements: list[Requirement] = Field(default_factory=list, max_length=len(REQUIREMENTS))

    @field_validator("requirements")
    @classmethod
    def _unique(cls, value: list[Requirement]) -> list[Requirement]:
        seen: set[str] = set()
        for requirement in value:
            if requirement.id in seen:
                raise ValueError(f"requirement {requirement.id} is listed twice")
            seen.add(requirement.id)
        return value


class RequirementInfo(Output):
    id: str
    description: str
    value: int | str | None  # the default value (None: takes none)
    values: list[str] | None = None  # the values it takes, when a choice


class CompliancePolicy(Output):
    project: str
    requirements: list[Requirement]
    updated_at: datetime | None  # None: never set (an empty policy)
    catalogue: list[RequirementInfo]


class RequirementResult(Output):
    id: str
    value: int | str | None
    status: Literal["pass", "fail", "unknown"]
    evidence: str  # what was seen, in words
    details: dict[str, Any] = Field(default_factory=dict)
    since: datetime | None = None  # when the status last changed
    checked_at: datetime | None = None


class DomainCompliance(Output):
    domain: str
    compliant: bool  # every requirement passes
    failing: list[str]
    requirements: list[RequirementResult]


class ComplianceReport(Output):
    project: str
    requirements: list[Requirement]
    compliant: bool  # every domain is
    failing: int  # requirements failing, summed over domains
    evaluated_at: datetime | None
    domains: list[DomainCompliance]


# Edge node surface -------------------------------------------------------------------------

Verdict = Literal["expected", "missing", "internal", "exposed", "unexpected"]


class PortFinding(Output):
    port: int
    open: bool
    role: str  # http, https, dns, metrics, dns_api, ... or "unknown"
    verdict: Verdict
    severity: Literal["ok", "info", "warning", "critical"]
    detail: str


class NodeSurface(Output):
    node: str  # the node's id
    name: str
    address: str | None
    scanned_at: datetime | None
    ports_scanned: int
    open_ports: list[int]
    unexpected: int  # exposed + unexpected open ports (what the alert counts)
    findings: list[PortFinding]
    error: str | None = None
