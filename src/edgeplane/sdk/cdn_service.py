"""``CDNService``: a project's CDN config, cache rules, purges and analytics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from pydantic import TypeAdapter

from edgeplane.model.bots import BotSettings, BotSummary
from edgeplane.model.cdn import (
    CacheKey,
    CacheRule,
    CDNAnalytics,
    CDNConfigCreate,
    CDNDeployment,
    PurgeResult,
)
from edgeplane.model.edge_security import CDNSecurity, UnderAttack
from edgeplane.model.origin_client import OriginClientCertificate
from edgeplane.sdk.client import body_of
from edgeplane.sdk.service import ProjectService

BASE = "/api/v1/infrastructure/cdn"
ORIGIN_CLIENT = "/api/v1/infrastructure/ca/origin-client"
# "1h" / "24h" / "7d" / "30d", a timedelta ending now, or (start, end).
TimeFrame = str | timedelta | tuple[datetime, datetime]


class CDNService(ProjectService):
    """The CDN of a project, embedded or against a control plane (``EDGEPLANE_URL``).

    Methods that take ``project_id`` act in that project; the others in ``project_id`` given
    here (default ``default``).
    """

    async def configure_cdn(
        self, project_id: str, config: CDNConfigCreate | dict[str, Any]
    ) -> CDNDeployment:
        """Replace the project's CDN config: origins, cache rules and security."""
        doc = await self._call("POST", BASE, project_id, body_of(config))
        return CDNDeployment.model_validate(doc["cdn_deployment"])

    async def origin_client_certificate(
        self, project_id: str | None = None
    ) -> OriginClientCertificate:
        """The client certificate the edge presents to the project's private origins (no key)
        and the internal root CA they trust (issued on first use)."""
        doc = await self._call("GET", ORIGIN_CLIENT, project_id)
        return OriginClientCertificate.model_validate(doc)

    async def renew_origin_client_certificate(
        self, project_id: str | None = None
    ) -> OriginClientCertificate:
        """A new client certificate (and key) for the project, presented from the next
        snapshot on."""
        doc = await self._call("POST", f"{ORIGIN_CLIENT}/renew", project_id)
        return OriginClientCertificate.model_validate(doc)

    async def get_cdn(self, project_id: str | None = None) -> CDNDeployment:
        return CDNDeployment.model_validate(await self._call("GET", BASE, project_id))

    async def delete_cdn(self, project_id: str | None = None) -> None:
        await self._call("DELETE", BASE, project_id)

    async def get_security(self, project_id: str | None = None) -> CDNSecurity:
        """The project's security at the edge (HTTPS, HSTS, IP lists, rate and client limits,
        the under-attack switch)."""
        return CDNSecurity.model_validate(await self._call("GET", f"{BASE}/security", project_id))

    async def update_security(
        self, changes: dict[str, Any], project_id: str | None = None
    ) -> CDNSecurity:
        """A JSON merge patch of the project's security, e.g.
        ``{"limits": {"max_connections": 20}}`` (``None`` clears a setting)."""
        doc = await self._call("PATCH", f"{BASE}/security", project_id, changes)
        return CDNSecurity.model_validate(doc)

    async def get_under_attack(self, project_id: str | None = None) -> UnderAttack:
        return UnderAttack.model_validate(
            await self._call("GET", f"{BASE}/under-attack", project_id)
        )

    async def set_under_attack(self, enabled: bool, project_id: str | None = None) -> UnderAttack:
        """Tighten every client limit of the project at once, or go back to its own."""
        doc = await self._call("POST", f"{BASE}/under-attack", project_id, {"enabled": enabled})
        return UnderAttack.model_validate(doc)

    async def create_cache_rule(
        self,
        pattern: str,
        ttl: int,
        cache_key: CacheKey | dict[str, Any] | None = None,
        *,
        position: int | None = None,
        project_id: str | None = None,
        **options: Any,
    ) -> CacheRule:
        """Add a rule (last, or at ``position``); options: bypass, origin_cache_control,
        stale_if_error, stale_while_revalidate, id."""
        body: dict[str, Any] = {"pattern": pattern, "ttl": ttl, **options}
        if cache_key is not None:
            body["cache_key"] = body_of(cache_key)
        doc = await self._call("POST", f"{BASE}/rules", project_id, body, position=position)
        return CacheRule.model_validate(doc)

    async def list_cache_rules(self, project_id: str | None = None) -> list[CacheRule]:
        doc = await self._call("GET", f"{BASE}/rules", project_id)
        return TypeAdapter(list[CacheRule]).validate_python(doc)

    async def update_cache_rule(
        self,
        rule_id: str,
        *,
        position: int | None = None,
        project_id: str | None = None,
        **changes: Any,
    ) -> CacheRule:
        path = f"{BASE}/rules/{quote(rule_id, safe='')}"
        doc = await self._call("PATCH", path, project_id, changes, position=position)
        return CacheRule.model_validate(doc)

    async def delete_cache_rule(self, rule_id: str, project_id: str | None = None) -> None:
        await self._call("DELETE", f"{BASE}/rules/{quote(rule_id, safe='')}", project_id)

    async def purge_cache(
        self,
        project_id: str,
        paths: list[str] | None = None,
        purge_all: bool = False,
        wait: bool = True,
        timeout_s: float = 10.0,
    ) -> PurgeResult:
        """Purge exact paths and prefixes (``/static/*``); no paths purges everything.

        With ``wait`` it returns when every online edge node has purged (or at the timeout:
        see ``complete``)."""
        body = {
            "paths": list(paths or []),
            "purge_all": purge_all or not paths,
            "wait": wait,
            "timeout_s": timeout_s,
        }
        doc = await self._call("POST", f"{BASE}/purge", project_id, body)
        return PurgeResult.model_validate(doc)

    async def get_purge(self, purge_id: str, project_id: str | None = None) -> PurgeResult:
        doc = await self._call("GET", f"{BASE}/purges/{quote(purge_id, safe='')}", project_id)
        return PurgeResult.model_validate(doc)

    async def get_cdn_analytics(self, project_id: str, timeframe: TimeFrame = "1h") -> CDNAnalytics:
        """Traffic, hit ratio, bytes, statuses and upstream percentiles over a timeframe."""
        params: dict[str, Any]
        if isinstance(timeframe, str):
            params = {"timeframe": timeframe}
        elif isinstance(timeframe, timedelta):
            end = datetime.now(UTC)
            params = {"start": end - timeframe, "end": end}
        else:
            start, end = timeframe
            params = {"start": start, "end": end}
        doc = await self._call("GET", f"{BASE}/analytics", project_id, **params)
        return CDNAnalytics.model_validate(doc)

    async def get_bot_summary(
        self, project_id: str | None = None, timeframe: TimeFrame = "1h"
    ) -> BotSummary:
        """The bot settings and the requests of bots the edge counted, by class and action."""
        doc = await self._call("GET", f"{BASE}/bots", project_id, **_window(timeframe))
        return BotSummary.model_validate(doc)

    async def get_bot_settings(self, project_id: str | None = None) -> BotSettings:
        return BotSettings.model_validate(
            await self._call("GET", f"{BASE}/bots/settings", project_id)
        )

    async def set_bot_settings(
        self, settings: BotSettings | dict[str, Any], project_id: str | None = None
    ) -> BotSettings:
        """Replace the project's bot settings (its CDN config must exist)."""
        doc = await self._call("PUT", f"{BASE}/bots/settings", project_id, body_of(settings))
        return BotSettings.model_validate(doc)


def _window(timeframe: TimeFrame) -> dict[str, Any]:
    if isinstance(timeframe, str):
        return {"timeframe": timeframe}
    if isinstance(timeframe, timedelta):
        end = datetime.now(UTC)
        return {"start": end - timeframe, "end": end}
    start, end = timeframe
    return {"start": start, "end": end}
