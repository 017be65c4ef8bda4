"""A project's bot protection: its settings and what the edge counted."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from edgeplane.api.deps import Ctx
from edgeplane.model.bots import BotSettings, BotSummary
from edgeplane.model.common import DateTime
from edgeplane.services import analytics, bots

router = APIRouter(prefix="/api/v1/infrastructure/cdn/bots", tags=["cdn"])


@router.get("", response_model=BotSummary)
def get_bot_summary(
    ctx: Ctx,
    start: Annotated[DateTime | None, Query(description="ISO 8601 with a time zone")] = None,
    end: Annotated[DateTime | None, Query(description="ISO 8601 (default: now)")] = None,
    timeframe: Annotated[
        str | None,
        Query(
            description="1h, 6h, 24h, 7d or 30d, ending now (default 1h)",
            json_schema_extra={"enum": list(analytics.TIMEFRAMES)},
        ),
    ] = None,
) -> BotSummary:
    """The project's bot settings and the requests of bots the edge nodes counted over
    ``[start, end)``, by class (bad, impostor, automated, behaviour, good) and action (detect,
    challenge, pass, block)."""
    with ctx.read() as tx:
        return bots.summary(tx, start=start, end=end, timeframe=timeframe)


@router.get("/settings", response_model=BotSettings)
def get_bot_settings(ctx: Ctx) -> BotSettings:
    with ctx.read() as tx:
        return bots.get_settings(tx)


@router.put("/settings", response_model=BotSettings)
def put_bot_settings(ctx: Ctx, body: BotSettings) -> BotSettings:
    """Replace the project's bot settings (``security.bots`` of its CDN config, which must
    exist); the edge nodes get them with the next snapshot."""
    with ctx.write() as tx:
        return bots.set_settings(tx, body)
