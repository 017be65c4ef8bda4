"""``SecurityService``: a project's security scores, compliance policy and report, and the
edge nodes' exposed surface."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pydantic import TypeAdapter

from edgeplane.model.security_score import (
    CompliancePolicy,
    ComplianceReport,
    DomainScore,
    NodeSurface,
    Requirement,
    ScoreSummary,
)
from edgeplane.sdk.client import body_of
from edgeplane.sdk.service import ProjectService

BASE = "/api/v1/security"


class SecurityService(ProjectService):
    """Security of a project, embedded or against a control plane (``EDGEPLANE_URL``).

    ``await SecurityService("shop").score("shop.example.com")``
    """

    async def scores(self) -> list[ScoreSummary]:
        """Each domain's newest score and grade."""
        doc = await self._call("GET", f"{BASE}/scores")
        return TypeAdapter(list[ScoreSummary]).validate_python(doc)

    async def score(self, domain: str, *, limit: int = 100) -> DomainScore:
        """A domain's newest checks and its history (newest first)."""
        doc = await self._call("GET", f"{BASE}/scores/{quote(domain, safe='')}", limit=limit)
        return DomainScore.model_validate(doc)

    async def evaluate(self, domain: str) -> DomainScore:
        """Probe the domain on every live edge node now and score it."""
        doc = await self._call("POST", f"{BASE}/scores/{quote(domain, safe='')}/evaluate")
        return DomainScore.model_validate(doc)

    async def compliance_policy(self) -> CompliancePolicy:
        return CompliancePolicy.model_validate(await self._call("GET", f"{BASE}/compliance"))

    async def set_compliance_policy(
        self, requirements: list[Requirement | dict[str, Any] | str]
    ) -> CompliancePolicy:
        """Replace the policy: requirement ids (``"dnssec_on"``), ``{"id": "hsts_min_age",
        "value": 31536000}`` or ``Requirement`` values; ``[]`` for none."""
        body = {
            "requirements": [{"id": r} if isinstance(r, str) else body_of(r) for r in requirements]
        }
        doc = await self._call("PUT", f"{BASE}/compliance", None, body)
        return CompliancePolicy.model_validate(doc)

    async def compliance_report(self) -> ComplianceReport:
        """Each domain against each requirement, with the evidence and since when."""
        doc = await self._call("GET", f"{BASE}/compliance/report")
        return ComplianceReport.model_validate(doc)

    async def node_surfaces(self) -> list[NodeSurface]:
        """Every edge node's newest surface scan (what answers on its address)."""
        doc = await self._call("GET", f"{BASE}/nodes")
        return TypeAdapter(list[NodeSurface]).validate_python(doc)

    async def scan_nodes(self) -> list[NodeSurface]:
        """Scan every live edge node's address now (an admin of the default project)."""
        doc = await self._call("POST", f"{BASE}/nodes/scan")
        return TypeAdapter(list[NodeSurface]).validate_python(doc)
