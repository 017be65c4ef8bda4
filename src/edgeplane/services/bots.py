"""A project's bot protection: its settings (inside the CDN config's security) and what the edge
counted (the ``bots`` of the nodes' per-minute traffic, ``node/agent/bots.py``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from edgeplane.errors import NotFound
from edgeplane.model.bots import BOT_ACTIONS, BOT_CLASSES, BotCount, BotSettings, BotSummary
from edgeplane.model.cdn import EdgeSecurity
from edgeplane.model.enums import Role
from edgeplane.services import analytics
from edgeplane.services.cdn import audit_doc, save_security
from edgeplane.services.common import validate
from edgeplane.store.db import Tx
from edgeplane.store.tables import CDNConfigRow, EdgeAnalyticsRow


def _settings(row: CDNConfigRow | None) -> BotSettings:
    if row is None:
        return BotSettings()
    return EdgeSecurity.model_validate(row.security or {}).bots


def get_settings(tx: Tx) -> BotSettings:
    tx.actor.require(tx.project, Role.VIEWER)
    return _settings(tx.session.get(CDNConfigRow, tx.project))


def set_settings(tx: Tx, data: BotSettings | dict[str, Any]) -> BotSettings:
    """Replace the project's bot settings (the rest of its CDN config stays); the project
    needs a CDN config (404 otherwise)."""
    tx.actor.require(tx.project, Role.EDITOR)
    settings = data if isinstance(data, BotSettings) else validate(BotSettings, data)
    row = tx.session.get(CDNConfigRow, tx.project)
    if row is None:
        raise NotFound(f"project {tx.project!r} has no CDN config: configure the CDN first")
    security = EdgeSecurity.model_validate(row.security or {})
    save_security(tx, row, security.model_copy(update={"bots": settings}), audit_doc(row))
    return settings


def summary(
    tx: Tx,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    timeframe: str | timedelta | None = None,
) -> BotSummary:
    """The project's bot settings and the requests of bots over ``[start, end)`` by class and
    action, from every node's per-minute traffic."""
    tx.actor.require(tx.project, Role.VIEWER)
    start, end = analytics.window(start, end, timeframe)
    settings = _settings(tx.session.get(CDNConfigRow, tx.project))
    requests = 0
    counts: dict[tuple[str, str], int] = {}
    for total, bots in tx.session.execute(
        select(EdgeAnalyticsRow.requests, EdgeAnalyticsRow.bots).where(
            EdgeAnalyticsRow.project_id == tx.project,
            EdgeAnalyticsRow.minute >= start,
            EdgeAnalyticsRow.minute < end,
        )
    ):
        requests += int(total or 0)
        for key, n in (bots or {}).items():
            klass, _, action = str(key).partition(":")
            if klass in BOT_CLASSES and action in BOT_ACTIONS and isinstance(n, int):
                counts[(klass, action)] = counts.get((klass, action), 0) + n
    listed = [
        BotCount(bot_class=k, action=a, requests=n)
        for (k, a), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return BotSummary(
        project=tx.project,
        enabled=settings.enabled,
        settings=settings,
        start=start,
        end=end,
        requests=requests,
        bot_requests=sum(counts.values()),
        challenged=sum(n for (_, a), n in counts.items() if a == "challenge"),
        blocked=sum(n for (_, a), n in counts.items() if a == "block"),
        counts=listed,
    )
