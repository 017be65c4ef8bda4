"""A data center's health as the edge sees it (pure): is the primary of a DR config down?

Two kinds of evidence, in this order:

1. **The edge nodes' active health checks** of the data center's servers: every backend of
   a load balancer that is one of its servers (``watched``), as each edge node last reported
   it (``BackendHealthRow``). Only the reports of live nodes (``services.liveness``) that
   were checked within ``REPORT_MAX_AGE_S`` count (a node reports on every change and at
   least every 30 s; an older row is a backend it no longer checks), and only ``up`` /
   ``down`` (not ``unknown``). One backend up on one node: **up** (a node that cannot reach
   the data center is a problem of that node's network). Every live node that checks them
   reporting every one of them down: **down**, since the last of them went down.
2. Without such reports, **the servers' own metrics** (their latest sample, ``metrics_at``):
   a server whose metrics are older than ``metrics_max_age_s`` has stopped reporting (its
   heartbeat, in effect). Some fresh: **up**; every server that ever reported stale: **down**,
   since the newest sample aged out; none ever reported: **unknown**.

**unknown** never moves traffic: the monitor waits for evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

Health = Literal["up", "down", "unknown"]
REPORT_MAX_AGE_S = 90.0
_SHOWN = 10  # backends named in a verdict's detail, at most


@dataclass(frozen=True)
class Report:
    """What one edge node last saw of one backend of one pool."""

    node: str  # the node's name
    pool: str
    backend: str  # BackendSpec.key
    state: str  # up / down / unknown
    reason: str = ""
    checked_at: datetime | None = None
    changed_at: datetime | None = None


@dataclass(frozen=True)
class ServerSeen:
    id: str
    metrics_at: datetime | None = None  # the newest metrics sample (None: never)


@dataclass(frozen=True)
class Verdict:
    state: Health
    since: datetime | None = None  # when the evidence says it became so (None: not known)
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


def judge(
    watched: Iterable[tuple[str, str]],
    reports: Iterable[Report],
    live_nodes: Iterable[str],
    servers: Sequence[ServerSeen],
    now: datetime,
    *,
    metrics_max_age_s: float,
    report_max_age_s: float = REPORT_MAX_AGE_S,
) -> Verdict:
    """The health of a data center whose servers are ``servers`` and whose load balancer
    backends are ``watched`` ((pool id, backend key) pairs), from the edge nodes' ``reports``
    (of any backends: those not watched are ignored) and the servers' metrics."""
    keys = set(watched)
    live = set(live_nodes)
    oldest = now - timedelta(seconds=report_max_age_s)
    seen = [
        r
        for r in reports
        if (r.pool, r.backend) in keys
        and r.node in live
        and r.state in ("up", "down")
        and (r.checked_at is None or r.checked_at >= oldest)
    ]
    detail: dict[str, Any] = {
        "backends": len(keys),
        "servers": len(servers),
        "live_nodes": len(live),
    }
    if seen:
        up = sorted((r for r in seen if r.state == "up"), key=lambda r: (r.backend, r.node))
        nodes = sorted({r.node for r in seen})
        detail["reporting_nodes"] = nodes
        if up:
            first = up[0]
            detail["up"] = sorted({f"{r.backend}@{r.node}" for r in up})[:_SHOWN]
            since = [r.changed_at for r in up if r.changed_at is not None]
            return Verdict(
                "up",
                min(since) if since else None,
                f"{first.backend} is up for edge node {first.node}",
                detail,
            )
        down = sorted({r.backend for r in seen})
        detail["down"] = down[:_SHOWN]
        reasons = sorted({r.reason for r in seen if r.reason})
        detail["reasons"] = reasons[:_SHOWN]
        changed = [r.changed_at for r in seen if r.changed_at is not None]
        why = f": {reasons[0]}" if reasons else ""
        return Verdict(
            "down",
            max(changed) if changed else None,
            f"every live edge node checking them ({len(nodes)}) reports all "
            f"{len(down)} backend(s) down{why}",
            detail,
        )
    reported = [s for s in servers if s.metrics_at is not None]
    if not reported:
        why = "no edge node checks its servers and none reports metrics"
        return Verdict("unknown", None, why, detail)
    limit = timedelta(seconds=metrics_max_age_s)
    fresh = [s for s in reported if s.metrics_at is not None and now - s.metrics_at <= limit]
    if fresh:
        newest = max(s.metrics_at for s in fresh if s.metrics_at is not None)
        detail["fresh_metrics"] = sorted(s.id for s in fresh)[:_SHOWN]
        why = f"server metrics are fresh (newest {newest.isoformat()})"
        return Verdict("up", None, why, detail)
    newest = max(s.metrics_at for s in reported if s.metrics_at is not None)
    detail["stale_metrics"] = sorted(s.id for s in reported)[:_SHOWN]
    return Verdict(
        "down",
        newest + limit,
        f"no server has reported metrics for {metrics_max_age_s:g} s (newest {newest.isoformat()})",
        detail,
    )
