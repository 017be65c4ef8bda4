"""CDN analytics: the edge nodes' per-minute traffic of a project, added up over a timeframe.

Each edge node reports, per domain and minute, its requests, hits and misses, bytes out,
status classes, cache statuses, histograms of upstream and of whole-request times (counts per
bucket of ``UPSTREAM_MS_BUCKETS``, plus one bucket above the last bound), the responses served
from a static bundle and the requests per client country. Hits are the responses served at the
edge without the origin: from cache, and from a static bundle (those also count in ``static``,
and their cache status is ``STATIC``). Over ``[start, end)`` the rows of every node are summed,
per domain and in total; ``hit_ratio`` is hits / (hits + misses): a bundle's responses count as
hits that never miss.

``regional`` sums a project's rows per region of the node that reported them (for edge
deployments: ``hit_ratio`` there is hits / requests, the share served at the edge), and
``countries`` its requests per client country.

Percentiles come from the merged histogram, interpolated linearly inside the bucket that holds
the rank (the first bucket starts at 0 ms). A percentile that falls in the open bucket above
the last bound is reported as that bound (a lower bound of the true value). With no upstream
time recorded (only hits) the percentiles are None.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from edgeplane.errors import InvalidInput
from edgeplane.model.cdn import CDNAnalytics, DomainTraffic, LatencySummary
from edgeplane.model.enums import Role
from edgeplane.protocol.messages import UPSTREAM_MS_BUCKETS
from edgeplane.store.db import Tx
from edgeplane.store.tables import EdgeAnalyticsRow, EdgeNodeRow, utcnow

TIMEFRAMES = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
MAX_SPAN = timedelta(days=366)
TOP_COUNTRIES = 10
_BUCKETS = len(UPSTREAM_MS_BUCKETS) + 1


def percentile(histogram: list[int], q: float) -> float | None:
    """The ``q`` quantile (0-1) of a histogram over ``UPSTREAM_MS_BUCKETS``, in ms."""
    total = sum(histogram)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(histogram):
        if count <= 0:
            continue
        if seen + count >= rank:
            if i >= len(UPSTREAM_MS_BUCKETS):
                return float(UPSTREAM_MS_BUCKETS[-1])
            low = 0.0 if i == 0 else float(UPSTREAM_MS_BUCKETS[i - 1])
            high = float(UPSTREAM_MS_BUCKETS[i])
            fraction = (rank - seen) / count
            return round(low + (high - low) * fraction, 3)
        seen += count
    return float(UPSTREAM_MS_BUCKETS[-1])


@dataclass
class _Sum:
    requests: int = 0
    hits: int = 0
    misses: int = 0
    static: int = 0
    bytes_out: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    cache: dict[str, int] = field(default_factory=dict)
    upstream: list[int] = field(default_factory=lambda: [0] * _BUCKETS)

    def add(self, row: EdgeAnalyticsRow) -> None:
        self.requests += row.requests
        self.hits += row.hits
        self.misses += row.misses
        self.static += row.static or 0
        self.bytes_out += row.bytes_out
        add_counts(self.statuses, row.statuses)
        add_counts(self.cache, row.cache)
        add_histogram(self.upstream, row.upstream_ms)

    def fields(self) -> dict[str, Any]:
        looked_up = self.hits + self.misses
        return {
            "requests": self.requests,
            "hits": self.hits,
            "misses": self.misses,
            "static": self.static,
            "hit_ratio": round(self.hits / looked_up, 6) if looked_up else None,
            "bytes_out": self.bytes_out,
            "statuses": dict(sorted(self.statuses.items())),
            "cache": dict(sorted(self.cache.items())),
            "upstream_ms": LatencySummary(
                p50=percentile(self.upstream, 0.50),
                p95=percentile(self.upstream, 0.95),
                p99=percentile(self.upstream, 0.99),
            ),
        }


def add_counts(into: dict[str, int], counts: dict[str, Any] | None) -> None:
    for key, value in (counts or {}).items():
        if isinstance(value, int) and value > 0:
            into[key] = into.get(key, 0) + value


def add_histogram(into: list[int], counts: list[Any] | None) -> None:
    for i, count in enumerate((counts or [])[:_BUCKETS]):
        if isinstance(count, int) and count > 0:
            into[i] += count


def _top(counts: dict[str, int], n: int) -> dict[str, int]:
    """The ``n`` largest counts, largest first (ties by key)."""
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n])


@dataclass(frozen=True)
class RegionTraffic:
    """The traffic the edge nodes of one region served over a timeframe."""

    requests: int
    bytes_out: int
    errors_5xx: int
    errors_4xx: int
    hits: int  # served at the edge without the origin: from cache or from a static bundle
    misses: int
    static: int  # served from a static bundle
    hit_ratio: float | None  # hits / requests (None without requests)
    p50_ms: float | None  # whole-request time, from the request_ms histograms
    p95_ms: float | None
    countries: dict[str, int]  # the top TOP_COUNTRIES client countries by requests

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "bytes_out": self.bytes_out,
            "errors_5xx": self.errors_5xx,
            "errors_4xx": self.errors_4xx,
            "hits": self.hits,
            "misses": self.misses,
            "static": self.static,
            "hit_ratio": self.hit_ratio,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "countries": dict(self.countries),
        }


@dataclass
class _RegionSum:
    requests: int = 0
    bytes_out: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0
    static: int = 0
    request_ms: list[int] = field(default_factory=lambda: [0] * _BUCKETS)
    countries: dict[str, int] = field(default_factory=dict)

    def traffic(self) -> RegionTraffic:
        return RegionTraffic(
            requests=self.requests,
            bytes_out=self.bytes_out,
            errors_5xx=self.statuses.get("5xx", 0),
            errors_4xx=self.statuses.get("4xx", 0),
            hits=self.hits,
            misses=self.misses,
            static=self.static,
            hit_ratio=round(self.hits / self.requests, 6) if self.requests else None,
            p50_ms=percentile(self.request_ms, 0.50),
            p95_ms=percentile(self.request_ms, 0.95),
            countries=_top(self.countries, TOP_COUNTRIES),
        )


def regional(
    tx: Tx,
    project_id: str,
    start: datetime,
    end: datetime,
    regions: Iterable[str] | None = None,
) -> dict[str, RegionTraffic]:
    """The project's traffic in ``[start, end)`` per region of the nodes that served it (only
    ``regions`` when given), for the regions that have any. The rows of nodes since deleted
    are left out (their region is gone). No access check: the caller has made it."""
    query = (
        select(
            EdgeNodeRow.region,
            EdgeAnalyticsRow.requests,
            EdgeAnalyticsRow.bytes_out,
            EdgeAnalyticsRow.statuses,
            EdgeAnalyticsRow.hits,
            EdgeAnalyticsRow.misses,
            EdgeAnalyticsRow.static,
            EdgeAnalyticsRow.request_ms,
            EdgeAnalyticsRow.countries,
        )
        .join(EdgeNodeRow, EdgeNodeRow.id == EdgeAnalyticsRow.node_id)
        .where(
            EdgeAnalyticsRow.project_id == project_id,
            EdgeAnalyticsRow.minute >= start,
            EdgeAnalyticsRow.minute < end,
        )
    )
    if regions is not None:
        wanted = sorted(set(regions))
        if not wanted:
            return {}
        query = query.where(EdgeNodeRow.region.in_(wanted))
    sums: dict[str, _RegionSum] = {}
    for row in tx.session.execute(query):
        s = sums.setdefault(row.region, _RegionSum())
        s.requests += row.requests or 0
        s.bytes_out += row.bytes_out or 0
        add_counts(s.statuses, row.statuses)
        s.hits += row.hits or 0
        s.misses += row.misses or 0
        s.static += row.static or 0
        add_histogram(s.request_ms, row.request_ms)
        add_counts(s.countries, row.countries)
    return {region: sums[region].traffic() for region in sorted(sums)}


def countries(tx: Tx, project_id: str, start: datetime, end: datetime) -> dict[str, int]:
    """The project's requests in ``[start, end)`` per client country (ISO code, ``ZZ``:
    unknown), over every node, including nodes since deleted; largest first. No access check:
    the caller has made it."""
    total: dict[str, int] = {}
    rows = tx.session.scalars(
        select(EdgeAnalyticsRow.countries).where(
            EdgeAnalyticsRow.project_id == project_id,
            EdgeAnalyticsRow.minute >= start,
            EdgeAnalyticsRow.minute < end,
        )
    )
    for per_country in rows:
        add_counts(total, per_country)
    return _top(total, len(total))


def window(
    start: datetime | None = None,
    end: datetime | None = None,
    timeframe: str | timedelta | None = None,
    *,
    now: datetime | None = None,
) -> tuple[datetime, datetime]:
    """``[start, end)`` from explicit bounds or a timeframe ending now (default 1h)."""
    now = now or utcnow()
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput.at(name, "give a time zone (Z or +00:00)")
    if timeframe is not None and start is not None:
        raise InvalidInput.at("timeframe", "give either timeframe or start/end, not both")
    if isinstance(timeframe, str):
        span = TIMEFRAMES.get(timeframe.strip().lower())
        if span is None:
            raise InvalidInput.at("timeframe", f"must be one of {', '.join(TIMEFRAMES)}")
        timeframe = span
    if timeframe is not None:
        if timeframe <= timedelta(0) or timeframe > MAX_SPAN:
            raise InvalidInput.at("timeframe", "must be positive and at most 366 days")
        end = end or now
        return end - timeframe, end
    end = end or now
    start = start or end - TIMEFRAMES["1h"]
    if start >= end:
        raise InvalidInput.at("start", "must be before end")
    if end - start > MAX_SPAN:
        raise InvalidInput.at("start", "the timeframe is at most 366 days")
    return start, end


def aggregate(
    project: str, start: datetime, end: datetime, rows: Iterable[EdgeAnalyticsRow]
) -> CDNAnalytics:
    total = _Sum()
    per_domain: dict[str, _Sum] = {}
    for row in rows:
        total.add(row)
        per_domain.setdefault(row.domain, _Sum()).add(row)
    return CDNAnalytics(
        project=project,
        start=start,
        end=end,
        domains=[
            DomainTraffic(domain=name, **per_domain[name].fields()) for name in sorted(per_domain)
        ],
        **total.fields(),
    )


def get_analytics(
    tx: Tx,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    timeframe: str | timedelta | None = None,
) -> CDNAnalytics:
    tx.actor.require(tx.project, Role.VIEWER)
    start, end = window(start, end, timeframe)
    rows = tx.session.scalars(
        select(EdgeAnalyticsRow).where(
            EdgeAnalyticsRow.project_id == tx.project,
            EdgeAnalyticsRow.minute >= start,
            EdgeAnalyticsRow.minute < end,
        )
    )
    return aggregate(tx.project, start, end, rows)
