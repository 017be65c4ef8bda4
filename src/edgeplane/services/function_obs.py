"""Edge functions at work: their invocations per minute and their console lines, as the edge
nodes report them (``edgeplane.node.agent.function_stats``).

**Invocations.** ``store_traffic`` replaces a node's totals of each (function, minute) given
(``function_minutes``; the project and name come from the function key
``<project>/<name>``): invocations, errors by outcome (exception, timeout, memory,
unavailable), status classes and a histogram of the whole request's time over
``UPSTREAM_MS_BUCKETS`` (+1 open bucket). Once an hour is final (``retention.FINAL_AFTER``) its
minutes are summed per (node, function) into ``function_hours`` (``roll_hour``, run with the
traffic rollups by ``retention``); ``prune`` deletes minutes past
``metrics_minute_retention_s`` (only what was rolled up) and hours past
``metrics_hour_retention_s``. The series of source ``function``
(``services.series``) and ``metrics`` (per region and in total over a ``since``) read them.

**Console lines.** ``store_logs`` writes each line as it comes (``function_logs``, one row per
line, ids in arrival order); a report with one bad line is refused whole. ``logs`` reads a
function's lines for the viewers of its project: the ``limit`` newest, newest first, or with
``after`` the ones that arrived after that id, oldest first (``edgeplane function logs
--follow``); filters ``level`` (that level and the more severe: debug < log = info < warn <
error), ``node`` (its name) and ``version``. Retention (``LINES``, run by
``services.log_retention`` every minute): lines older than ``function_log_retention_s`` go,
and each function that received lines since the last pass keeps its newest
``function_log_per_function``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter
from sqlalchemy import delete, func, insert, select

from edgeplane import metrics as plane_metrics
from edgeplane.errors import InvalidInput
from edgeplane.model.enums import Role
from edgeplane.model.function_obs import (
    FunctionInvocations,
    FunctionLogEntry,
    FunctionLogPage,
    FunctionMetrics,
    FunctionRegionMetrics,
)
from edgeplane.protocol.messages import (
    FUNCTION_OUTCOMES,
    UPSTREAM_MS_BUCKETS,
    FunctionLogReport,
    FunctionTrafficReport,
)
from edgeplane.services import function_views
from edgeplane.services import regions as places
from edgeplane.services.analytics import add_counts, add_histogram, percentile
from edgeplane.services.edge_nodes import touch
from edgeplane.services.log_retention import RetainedLog
from edgeplane.store.db import Tx
from edgeplane.store.function_obs_tables import FunctionHourRow, FunctionLogRow, FunctionMinuteRow
from edgeplane.store.tables import EdgeNodeRow, RegionRow, utcnow

log = logging.getLogger(__name__)

MAX_LIMIT = 1000
RETENTION_EVERY_S = 60.0
LEVELS = ("debug", "log", "info", "warn", "error")
SEVERITY = {"debug": 0, "log": 1, "info": 1, "warn": 2, "error": 3}
SINCE = {"15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800, "30d": 2592000}
MINUTE_RETENTION = timedelta(days=7)  # older ranges read the hourly rollups
HOUR = timedelta(hours=1)
_BUCKETS = len(UPSTREAM_MS_BUCKETS) + 1
_STATUS_CLASSES = frozenset(f"{n}xx" for n in range(1, 6))

lines_received = Counter(
    "edgeplane_function_log_lines",
    "Edge function console lines the edge nodes reported: stored, or dropped by a node over "
    "its bounds",
    ["outcome"],
    registry=plane_metrics.REGISTRY,
)


def _minute(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(second=0, microsecond=0)


# Sums ------------------------------------------------------------------------------------------


@dataclass
class FunctionSum:
    invocations: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    duration_ms: list[int] = field(default_factory=lambda: [0] * _BUCKETS)

    def add(self, row: Any) -> None:
        self.invocations += row.invocations or 0
        add_counts(self.errors, row.errors)
        add_counts(self.statuses, row.statuses)
        add_histogram(self.duration_ms, row.duration_ms)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def error_rate(self) -> float | None:
        """Percent of the invocations that failed; None without invocations."""
        if not self.invocations:
            return None
        return round(100.0 * self.error_count / self.invocations, 4)

    def summary(self) -> dict[str, Any]:
        return {
            "invocations": self.invocations,
            "errors": {k: self.errors.get(k, 0) for k in FUNCTION_OUTCOMES},
            "error_count": self.error_count,
            "error_rate": self.error_rate,
            "statuses": dict(sorted(self.statuses.items())),
            "p50_ms": percentile(self.duration_ms, 0.50),
            "p95_ms": percentile(self.duration_ms, 0.95),
            "p99_ms": percentile(self.duration_ms, 0.99),
        }


# Storing ---------------------------------------------------------------------------------------


def store_traffic(tx: Tx, node_id: str, body: FunctionTrafficReport) -> int:
    """Replace the node's totals of each (function, minute) given; the count stored."""
    node = touch(tx, node_id)
    seen: set[tuple[str, datetime]] = set()
    for i, m in enumerate(body.minutes):
        if len(m.duration_ms) not in (0, _BUCKETS):
            raise InvalidInput.at(
                f"minutes.{i}.duration_ms", f"must hold {_BUCKETS} bucket counts (or none)"
            )
        if any(c < 0 for c in m.duration_ms):
            raise InvalidInput.at(f"minutes.{i}.duration_ms", "counts must not be negative")
        for name, counts in (("errors", m.errors), ("statuses", m.statuses)):
            if any(c < 0 for c in counts.values()):
                raise InvalidInput.at(f"minutes.{i}.{name}", "counts must not be negative")
        for klass in m.statuses:
            if klass not in _STATUS_CLASSES:
                raise InvalidInput.at(f"minutes.{i}.statuses", f"{klass!r} is not 1xx-5xx")
        minute = _minute(m.minute)
        if (m.function, minute) in seen:
            raise InvalidInput.at(f"minutes.{i}", "this function and minute are listed twice")
        seen.add((m.function, minute))
    for m in body.minutes:
        project, _, name = m.function.partition("/")
        minute = _minute(m.minute)
        row = tx.session.get(FunctionMinuteRow, (node.id, project, name, minute))
        if row is None:
            row = FunctionMinuteRow(node_id=node.id, project_id=project, name=name, minute=minute)
            tx.session.add(row)
        row.invocations = m.invocations
        row.errors = {str(k): v for k, v in m.errors.items() if v}
        row.statuses = dict(m.statuses)
        row.duration_ms = list(m.duration_ms)
    tx.session.flush()
    return len(body.minutes)


def store_logs(tx: Tx, node_id: str, body: FunctionLogReport) -> int:
    """Store a node's console lines; the number stored."""
    node = touch(tx, node_id)
    rows = []
    for line in body.lines:
        project, _, name = line.function.partition("/")
        rows.append(
            {
                "project_id": project,
                "name": name,
                "version": line.version,
                "node_id": node.id,
                "at": line.at,
                "level": line.level,
                "message": line.message,
                "request_id": line.request_id,
            }
        )
    if rows:
        tx.session.execute(insert(FunctionLogRow), rows)
    lines_received.labels("stored").inc(len(rows))
    if body.dropped:
        lines_received.labels("dropped").inc(body.dropped)
    return len(rows)


# Reading the console ---------------------------------------------------------------------------


def logs(
    tx: Tx,
    name: str,
    *,
    after_id: int | None = None,
    limit: int = 100,
    level: str | None = None,
    node: str | None = None,
    version: int | None = None,
) -> FunctionLogPage:
    """The function's latest console lines, newest first; with ``after_id`` the lines after
    that id, oldest first. For the viewers of the function's project (NotFound: no such
    function)."""
    tx.actor.require(tx.project, Role.VIEWER)
    function_views.function_row(tx, name)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput.at("limit", f"must be 1-{MAX_LIMIT}")
    if after_id is not None and after_id < 0:
        raise InvalidInput.at("after", "must be a line id (0 or more)")
    if level is not None and level not in SEVERITY:
        raise InvalidInput.at("level", f"must be one of {', '.join(LEVELS)}")
    if version is not None and version < 1:
        raise InvalidInput.at("version", "must be a version number (1 or more)")
    mine = (FunctionLogRow.project_id == tx.project, FunctionLogRow.name == name)
    newest = tx.session.scalar(select(func.max(FunctionLogRow.id)).where(*mine))
    empty = FunctionLogPage(function=name, items=[], next_after=max(after_id or 0, newest or 0))
    if newest is None or (after_id is not None and after_id >= newest):
        return empty
    q = select(FunctionLogRow).where(*mine, FunctionLogRow.id <= newest)
    if level is not None:
        wanted = [lv for lv in LEVELS if SEVERITY[lv] >= SEVERITY[level]]
        q = q.where(FunctionLogRow.level.in_(wanted))
    if version is not None:
        q = q.where(FunctionLogRow.version == version)
    if node is not None:
        ids = list(tx.session.scalars(select(EdgeNodeRow.id).where(EdgeNodeRow.name == node)))
        q = q.where(FunctionLogRow.node_id.in_(ids or [node]))
    if after_id is None:
        rows = list(tx.session.scalars(q.order_by(FunctionLogRow.id.desc()).limit(limit)))
        next_after = newest  # every line up to it was looked at
    else:
        q = q.where(FunctionLogRow.id > after_id).order_by(FunctionLogRow.id.asc())
        rows = list(tx.session.scalars(q.limit(limit)))
        next_after = rows[-1].id if len(rows) == limit else newest
    return FunctionLogPage(function=name, items=_entries(tx, rows), next_after=next_after)


def _entries(tx: Tx, rows: list[FunctionLogRow]) -> list[FunctionLogEntry]:
    ids = {r.node_id for r in rows}
    names: dict[str, str] = {}
    if ids:
        found = tx.session.execute(
            select(EdgeNodeRow.id, EdgeNodeRow.name).where(EdgeNodeRow.id.in_(ids))
        )
        names = {node_id: node_name for node_id, node_name in found}
    return [
        FunctionLogEntry(
            id=r.id,
            at=r.at,
            node=names.get(r.node_id, r.node_id),
            node_id=r.node_id,
            version=r.version,
            level=r.level,
            message=r.message,
            request_id=r.request_id,
        )
        for r in rows
    ]


# Reading invocations ---------------------------------------------------------------------------


def rolled_until(tx: Tx) -> datetime | None:
    """The end of the newest hour of function invocations rolled up (None: none yet)."""
    newest = tx.session.scalar(select(func.max(FunctionHourRow.hour)))
    return None if newest is None else newest + HOUR


def rows_in(
    tx: Tx, project: str, selector: dict[str, Any], start: datetime, end: datetime, hourly: bool
) -> list[tuple[datetime, str, str, str, Any]]:
    """(period start, function name, region, node name, row) of the project's invocations in
    ``[start, end)``, from the minutes or the hourly rollups (nodes since deleted left out)."""
    table: Any = FunctionHourRow if hourly else FunctionMinuteRow
    at = table.hour if hourly else table.minute
    q = (
        select(at, table.name, EdgeNodeRow.region, EdgeNodeRow.name, table)
        .join(EdgeNodeRow, EdgeNodeRow.id == table.node_id)
        .where(table.project_id == project, at >= start, at < end)
    )
    if "function" in selector:
        q = q.where(table.name == selector["function"])
    if "region" in selector:
        regions = selector["region"]
        if isinstance(regions, str):
            q = q.where(EdgeNodeRow.region == regions)
        else:
            q = q.where(EdgeNodeRow.region.in_(sorted(regions)))
    if "node" in selector:
        q = q.where(EdgeNodeRow.name == selector["node"])
    return [(p, f, r, n, row) for p, f, r, n, row in tx.session.execute(q)]


def split_at(tx: Tx, start: datetime, end: datetime, step_s: int, now: datetime) -> datetime:
    """Where a range's hourly part ends (hours rolled up, read from the rollups when the step
    is whole hours or the range reaches past the minutes kept) and its minutes begin."""
    if step_s % 3600 == 0 or start < now - MINUTE_RETENTION:
        return min(max(start, rolled_until(tx) or start), end)
    return start


def metrics(
    tx: Tx, name: str, since: str | None = None, region: str | None = None
) -> FunctionMetrics:
    """The function's invocations over the last ``since`` (1h by default), per region of the
    nodes that ran it (within ``region`` when given) and in total."""
    tx.actor.require(tx.project, Role.VIEWER)
    function_views.function_row(tx, name)
    if since is not None and since not in SINCE:
        raise InvalidInput.at("since", f"must be one of {', '.join(SINCE)}")
    selector: dict[str, Any] = {"function": name}
    if region is not None:
        where = places.resolve(tx, region, "region")
        selector["region"] = [r.code for r in places.locations_in(tx, where)]
    end = utcnow()
    start = _minute(end - timedelta(seconds=SINCE[since or "1h"]))
    split = split_at(tx, start, end, 60, end)
    per_region: dict[str, FunctionSum] = defaultdict(FunctionSum)
    total = FunctionSum()
    for first, last, hourly in ((start, split, True), (split, end, False)):
        if first >= last:
            continue
        for _at, _fn, node_region, _node, row in rows_in(tx, tx.project, selector, first, last,
                                                         hourly):  # fmt: skip
            per_region[node_region].add(row)
            total.add(row)
    known = {r.code: (r.region_code, r.area) for r in tx.session.scalars(select(RegionRow))}
    regions = []
    for code in sorted(per_region):
        parent, kind = known.get(code, (None, None))
        regions.append(
            FunctionRegionMetrics(
                region=code, region_code=parent, region_type=kind, **per_region[code].summary()
            )
        )
    return FunctionMetrics(
        function=name,
        start=start,
        end=end,
        total=FunctionInvocations(**total.summary()),
        regions=regions,
    )


# Rollups and retention of invocations ----------------------------------------------------------


def roll_hour(tx: Tx, hour: datetime) -> bool:
    sums: dict[tuple[str, str, str], FunctionSum] = defaultdict(FunctionSum)
    rows = tx.session.scalars(
        select(FunctionMinuteRow).where(
            FunctionMinuteRow.minute >= hour, FunctionMinuteRow.minute < hour + HOUR
        )
    )
    for row in rows:
        sums[(row.node_id, row.project_id, row.name)].add(row)
    tx.session.execute(delete(FunctionHourRow).where(FunctionHourRow.hour == hour))
    for (node_id, project, name), s in sums.items():
        tx.session.add(
            FunctionHourRow(
                node_id=node_id,
                project_id=project,
                name=name,
                hour=hour,
                invocations=s.invocations,
                errors=dict(s.errors),
                statuses=dict(s.statuses),
                duration_ms=list(s.duration_ms),
            )
        )
    tx.session.flush()
    return bool(sums)


# Retention of console lines --------------------------------------------------------------------

LINES = RetainedLog(
    name="function log",
    row=FunctionLogRow,
    key=FunctionLogRow.name,
    retention_s=lambda s: s.function_log_retention_s,
    keep=lambda s: s.function_log_per_function,
)
