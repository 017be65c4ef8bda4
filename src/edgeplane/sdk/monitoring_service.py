"""``MonitoringService``: a project's series, alerts, alert rules, channels and silences."""

from __future__ import annotations

from typing import Any

from edgeplane.model.alerting import AlertRule, Channel, ChannelTest, Silence
from edgeplane.sdk.service import ProjectService
from edgeplane.services.alerts import Alert

ALERTS = "/api/v1/alerts"
METRICS = "/api/v1/metrics"


class MonitoringService(ProjectService):
    """Monitoring of a project, embedded or against a control plane (``EDGEPLANE_URL``).

    ``await MonitoringService("shop").metrics("requests", since="24h", group_by="region")``
    """

    async def _query(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        params = {k: v for k, v in params.items() if v is not None}
        params["project"] = self.project_id
        return await self.client.request(method, path, json=body, params=params)

    # Series -----------------------------------------------------------------------------------

    async def series(self) -> list[dict[str, Any]]:
        """Every series, its unit, what it is given per and its selectors."""
        return list(await self._query("GET", f"{METRICS}/series"))

    async def metrics(self, series: str, **query: Any) -> dict[str, Any]:
        """Points of ``series`` per object: ``domain=``, ``region=``, ``node=``, ``server=``,
        ``pool=``, ``function=``, ``since=`` ("1h"), ``start=``/``end=``, ``step=`` (s),
        ``group_by=``."""
        return dict(await self._query("GET", METRICS, series=series, **query))

    # Alerts -----------------------------------------------------------------------------------

    async def alerts(self, *, state: str | None = None, rule: str | None = None,
                     kind: str | None = None, limit: int = 100) -> list[Alert]:  # fmt: skip
        docs = await self._query("GET", ALERTS, state=state, rule=rule, kind=kind, limit=limit)
        return [Alert.model_validate(d) for d in docs]

    async def acknowledge(self, alert_id: str) -> Alert:
        return Alert.model_validate(await self._query("POST", f"{ALERTS}/{alert_id}/acknowledge"))

    async def rules(self) -> list[AlertRule]:
        return [AlertRule.model_validate(d) for d in await self._query("GET", f"{ALERTS}/rules")]

    async def create_rule(self, rule_id: str, series: str, comparison: str, threshold: float,
                          **options: Any) -> AlertRule:  # fmt: skip
        """``options``: name, selector, window_s, for_s, severity, channels, description."""
        body = {"id": rule_id, "name": options.pop("name", rule_id), "series": series,
                "comparison": comparison, "threshold": threshold, **options}  # fmt: skip
        return AlertRule.model_validate(await self._query("POST", f"{ALERTS}/rules", body))

    async def update_rule(self, rule_id: str, **changes: Any) -> AlertRule:
        doc = await self._query("PATCH", f"{ALERTS}/rules/{rule_id}", changes)
        return AlertRule.model_validate(doc)

    async def delete_rule(self, rule_id: str) -> None:
        await self._query("DELETE", f"{ALERTS}/rules/{rule_id}")

    async def channels(self) -> list[Channel]:
        return [Channel.model_validate(d) for d in await self._query("GET", f"{ALERTS}/channels")]

    async def create_channel(self, channel_id: str, config: dict[str, Any],
                             name: str | None = None) -> Channel:  # fmt: skip
        """``config``: {"kind": "webhook", "url": ..., "secret": ...}, {"kind": "email",
        "smtp_host": ..., "from_address": ..., "to": [...]} or {"kind": "slack", "url": ...}."""
        body = {"id": channel_id, "name": name or channel_id, "config": config}
        return Channel.model_validate(await self._query("POST", f"{ALERTS}/channels", body))

    async def test_channel(self, channel_id: str) -> ChannelTest:
        doc = await self._query("POST", f"{ALERTS}/channels/{channel_id}/test")
        return ChannelTest.model_validate(doc)

    async def silence(
        self,
        *,
        duration_s: int,
        rule: str | None = None,
        obj: str | None = None,
        comment: str = "",
    ) -> Silence:
        body = {"duration_s": duration_s, "rule": rule, "object": obj, "comment": comment}
        body = {k: v for k, v in body.items() if v is not None}
        return Silence.model_validate(await self._query("POST", f"{ALERTS}/silences", body))
