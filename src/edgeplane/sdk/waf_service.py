"""``WafService``: a project's WAF (ModSecurity + OWASP CRS at the edge): settings, matches,
exclusions (the false-positive workflow of ``edgeplane.services.waf``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import TypeAdapter

from edgeplane.model.waf import WafExclusion, WafMatchPage, WafSettings, WafStatus
from edgeplane.sdk.service import ProjectService

BASE = "/api/v1/infrastructure/cdn/waf"


class WafService(ProjectService):
    """The WAF of a project, embedded or against a control plane (``EDGEPLANE_URL``)."""

    async def get_status(self, project_id: str | None = None) -> WafStatus:
        return WafStatus.model_validate(await self._call("GET", BASE, project_id))

    async def configure(
        self,
        *,
        mode: str | None = None,
        paranoia_level: int | None = None,
        anomaly_threshold: int | None = None,
        project_id: str | None = None,
    ) -> WafSettings:
        """Change the mode (off, detect, block), paranoia level or anomaly threshold."""
        body = {
            k: v
            for k, v in {
                "mode": mode,
                "paranoia_level": paranoia_level,
                "anomaly_threshold": anomaly_threshold,
            }.items()
            if v is not None
        }
        return WafSettings.model_validate(await self._call("PATCH", BASE, project_id, body))

    async def list_matches(
        self,
        *,
        request_id: str | None = None,
        rule: int | None = None,
        host: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
        before: int | None = None,
        project_id: str | None = None,
    ) -> WafMatchPage:
        """Requests that matched rules, newest first (``before``: ``next_before``)."""
        params: dict[str, Any] = {"limit": limit}
        for key, value in (
            ("request_id", request_id),
            ("rule", rule),
            ("host", host),
            ("since", since.isoformat() if since is not None else None),
            ("before", before),
        ):
            if value is not None:
                params[key] = value
        doc = await self._call("GET", f"{BASE}/matches", project_id, **params)
        return WafMatchPage.model_validate(doc)

    async def list_exclusions(self, project_id: str | None = None) -> list[WafExclusion]:
        doc = await self._call("GET", f"{BASE}/exclusions", project_id)
        return TypeAdapter(list[WafExclusion]).validate_python(doc)

    async def add_exclusion(
        self,
        rules: list[str | int] | str | int,
        path: str | None = None,
        *,
        note: str | None = None,
        project_id: str | None = None,
    ) -> WafExclusion:
        """Switch ``rules`` (ids or ranges ``first-last``) off, under ``path`` when given."""
        listed = rules if isinstance(rules, list) else [rules]
        body: dict[str, Any] = {"rules": [str(r) for r in listed]}
        if path is not None:
            body["path"] = path
        if note is not None:
            body["note"] = note
        doc = await self._call("POST", f"{BASE}/exclusions", project_id, body)
        return WafExclusion.model_validate(doc)

    async def delete_exclusion(self, exclusion_id: str, project_id: str | None = None) -> None:
        await self._call("DELETE", f"{BASE}/exclusions/{quote(exclusion_id, safe='')}", project_id)
