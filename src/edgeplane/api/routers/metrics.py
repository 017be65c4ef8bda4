"""The product's series: ``GET /api/v1/metrics`` (points over time) and the catalog."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from edgeplane.api.deps import Ctx
from edgeplane.errors import InvalidInput
from edgeplane.model.alerting import SERIES_NAMES
from edgeplane.model.common import Output
from edgeplane.model.enums import Role
from edgeplane.model.regional_traffic import RegionalTraffic
from edgeplane.services import regional_traffic, series
from edgeplane.store.tables import utcnow

router = APIRouter(prefix="/api/v1/metrics", tags=["metrics"])
SINCE = {"15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800, "30d": 2592000}
Since = Annotated[
    str | None,
    Query(
        description="15m, 1h, 6h, 24h, 7d or 30d (default 1h)",
        json_schema_extra={"enum": list(SINCE)},
    ),
]


def _since_s(since: str | None) -> int:
    """The seconds of a ``since`` (1h when None); 422 naming ``since`` for another text."""
    if since is not None and since not in SINCE:
        raise InvalidInput.at("since", f"must be one of {', '.join(SINCE)}")
    return SINCE[since or "1h"]


class Point(Output):
    at: datetime
    value: float


class SeriesPoints(Output):
    object: str
    points: list[Point]


class MetricsAnswer(Output):
    series: str
    unit: str
    group_by: str
    start: datetime
    end: datetime
    step: int
    results: list[SeriesPoints]


@router.get("/series")
def catalog() -> list[dict[str, Any]]:
    """Every series: its unit, the objects it is given per and the selectors it takes."""
    return [s.to_dict() for s in series.CATALOG.values()]


@router.get("/regions", response_model=RegionalTraffic)
def regions(
    ctx: Ctx,
    since: Since = None,
) -> RegionalTraffic:
    """The project's traffic per edge region over the last ``since``: requests, bytes, errors,
    hit ratio, p50 / p95 latency and the top client countries, with the countries' centroids
    (what the dashboard's map draws: latency per region, flows from countries to regions)."""
    span_s = _since_s(since)
    end = utcnow()
    with ctx.read() as tx:
        return regional_traffic.regional(tx, end - timedelta(seconds=span_s), end)


@router.get("", response_model=MetricsAnswer)
def query(
    ctx: Ctx,
    name: Annotated[
        str,
        Query(
            alias="series",
            description="e.g. requests, cpu_percent",
            json_schema_extra={"enum": list(SERIES_NAMES)},
        ),
    ],
    domain: str | None = None,
    region: str | None = None,
    node: str | None = None,
    server: str | None = None,
    location: str | None = None,
    pool: str | None = None,
    function: Annotated[str | None, Query(description="an edge function's name")] = None,
    since: Since = None,
    start: datetime | None = None,
    end: datetime | None = None,
    step: Annotated[int | None, Query(description="seconds (>= 60)", ge=60)] = None,
    group_by: str | None = None,
) -> MetricsAnswer:
    """Points of one series per object over ``[start, end)`` (or the last ``since``), one per
    ``step``; steps with nothing measured are left out."""
    info = series.info(name)
    selector = {
        k: v
        for k, v in {
            "domain": domain,
            "region": region,
            "node": node,
            "server": server,
            "location": location,
            "pool": pool,
            "function": function,
        }.items()
        if v is not None
    }
    series.check_selector(info, selector, "selector")
    group = series.check_group(info, group_by)
    span_s = _since_s(since)
    end = end or utcnow()
    if start is None:
        start = end - timedelta(seconds=span_s)
    elif since is not None:
        raise InvalidInput.at("since", "give since or start, not both")
    span = (end - start).total_seconds()
    step = step or max(60, int(span // 300 // 60 * 60) or 60)
    # Points on whole steps (a minute, an hour), as the minutes and hours are stored.
    start = datetime.fromtimestamp(start.timestamp() // step * step, start.tzinfo)
    with ctx.read() as tx:
        tx.actor.require(tx.project, Role.VIEWER)
        got = series.query(tx, tx.project, name, selector, start, end, step, group)
    return MetricsAnswer(
        series=name,
        unit=info.unit,
        group_by=group,
        start=start,
        end=end,
        step=step,
        results=[
            SeriesPoints(object=key, points=[Point(at=at, value=v) for at, v in points])
            for key, points in sorted(got.items())
        ],
    )
