"""What a group scales on, read from the monitoring series:

- ``requests_per_second``: the requests the edge nodes sent to the group's instances (the
  ``backend_requests`` of the traffic rows, as the edge logged them) per second over the
  group's ``metric_window_s``, divided by the instances serving. The traffic rows are per
  minute and filled as the minute goes (each node reports every few seconds), so a rate over a
  window shorter than a minute is taken as a counter is: the controller samples the total since
  a fixed minute (an *anchor*) at each pass and divides the growth over the window by its
  length. A new anchor starts every ``ANCHOR_LIFE_S`` and the old one is kept until the new
  one's samples cover a window, so the rate never goes blind.
- ``cpu_percent``: the mean of the ``cpu_percent`` series of the instances' servers over the
  window (the local driver measures its processes; cloud instances report their own through
  ``POST /api/v1/infrastructure/servers/{id}/metrics``).
- ``upstream_latency_ms``: the p95 of the upstream time of the load balancer's domains over
  the window (``upstream_time_p95_ms``), the largest of its domains.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from edgeplane.services import series
from edgeplane.store.db import Tx
from edgeplane.store.tables import EdgeAnalyticsRow

ANCHOR_LIFE_S = 600.0


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def backend_total(tx: Tx, project: str, keys: set[str], since: datetime) -> int:
    """Requests the edge sent to ``keys`` (backend keys) in the minutes from ``since``."""
    total = 0
    rows = tx.session.scalars(
        select(EdgeAnalyticsRow.backends).where(
            EdgeAnalyticsRow.project_id == project, EdgeAnalyticsRow.minute >= since
        )
    )
    for backends in rows:
        for key, n in (backends or {}).items():
            if key in keys:
                total += int(n)
    return total


def request_rate(
    tx: Tx, project: str, keys: set[str], memory: dict[str, Any], now: datetime, window_s: float
) -> float | None:
    """Requests per second to ``keys`` over the last ``window_s`` (None until the samples
    cover half a window). Updates ``memory["rate"]`` (anchors and samples)."""
    state = memory.setdefault("rate", {})
    anchors: list[str] = list(state.get("anchors") or [])
    ts = now.timestamp()
    if not anchors or ts - datetime.fromisoformat(anchors[-1]).timestamp() > ANCHOR_LIFE_S:
        anchors.append(_minute(now - timedelta(minutes=1)).isoformat())
    horizon = ts - window_s * 2 - 60
    samples = [s for s in state.get("samples") or [] if s["t"] >= horizon]
    # an anchor goes once a newer one has samples over the window
    while len(anchors) > 1:
        newer = anchors[1]
        covered = [s for s in samples if newer in s["totals"] and s["t"] <= ts - window_s]
        if not covered:
            break
        anchors.pop(0)
    totals = {a: backend_total(tx, project, keys, datetime.fromisoformat(a)) for a in anchors}
    samples.append({"t": ts, "totals": totals})
    samples = [
        {"t": s["t"], "totals": {a: v for a, v in s["totals"].items() if a in anchors}}
        for s in samples
    ]
    state["anchors"], state["samples"] = anchors, samples
    for anchor in anchors:  # the oldest anchor whose samples reach back far enough
        inside = [s for s in samples if anchor in s["totals"] and s["t"] >= ts - window_s]
        if not inside:
            continue
        first = inside[0]
        span = ts - float(first["t"])
        if span >= window_s / 2:
            grown = totals[anchor] - int(first["totals"][anchor])
            return max(0.0, grown / span)
    return None


def cpu_mean(
    tx: Tx, project: str, servers: Iterable[str], now: datetime, window_s: float
) -> float | None:
    values = [
        v
        for server in servers
        for v in series.current(
            tx, project, "cpu_percent", {"server": server}, window_s, now, group_by="server"
        ).values()
    ]
    return round(sum(values) / len(values), 3) if values else None


def upstream_latency(
    tx: Tx, project: str, domains: Iterable[str], now: datetime, window_s: float
) -> float | None:
    values = [
        v
        for domain in domains
        for v in series.current(
            tx, project, "upstream_time_p95_ms", {"domain": domain}, window_s, now
        ).values()
    ]
    return float(max(values)) if values else None


def metrics(
    tx: Tx,
    project: str,
    wanted: Collection[str],
    *,
    keys: set[str],
    serving: list[str],
    domains: list[str],
    memory: dict[str, Any],
    now: datetime,
    window_s: float,
) -> Mapping[str, float | None]:
    """The value now of each metric in ``wanted``, per the module's docstring."""
    out: dict[str, float | None] = {}
    if "requests_per_second" in wanted:
        rate = request_rate(tx, project, keys, memory, now, window_s)
        out["requests_per_second"] = (
            None if rate is None or not serving else round(rate / len(serving), 3)
        )
    if "cpu_percent" in wanted:
        out["cpu_percent"] = cpu_mean(tx, project, serving, now, window_s)
    if "upstream_latency_ms" in wanted:
        out["upstream_latency_ms"] = upstream_latency(tx, project, domains, now, window_s)
    return out
