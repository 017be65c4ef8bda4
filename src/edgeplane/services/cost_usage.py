"""A project's measured usage in a billing month, read from the database for the cost model
(``edgeplane.costs.usage.ProjectUsage``).

**The period** of a month ``YYYY-MM`` is ``[first day 00:00 UTC, first day of the next
month)``; the default month is the current one (UTC). Usage runs until ``now``, or until the
period's end for a month that is over; a month that has not started is refused.

**Traffic** comes from the edge nodes' per-minute analytics (``edge_analytics``) of the
minutes in ``[period start, now)``, summed per domain and region of the node that served it:
``edge_bytes`` is what was served from a static bundle (``static_bytes``: edge deployment
traffic), ``cdn_bytes`` the rest of ``bytes_out``. The rows of a node since deleted still
count, under the region ``unknown``. ``traffic_recent`` is the same over the 7 days before
``now`` (the forecast's daily rate, idle regions).

**Fixed items** are priced from the objects as they are now, each from its creation:

- load balancers: their backends and their tier (``options["tier"]``; None: the smallest that
  fits);
- edge deployments that are serving (``active``, ``canary``, ``rolling``), with their regions.
  A region is in use since the creation of the oldest version in the unbroken line of versions
  that served it up to the serving one (versions that never went active neither extend nor
  break the line), so that deploying a new version does not restart its month;
- certificates: the newest active one of each domain; EV when its leaf holds the CA/Browser
  Forum EV policy (OID 2.23.140.1.1) in its certificatePolicies, billed since the oldest of
  the unbroken line of EV versions of the domain that ends with it (a renewal continues it).

**Purges**: the purge-all requests of the 7 days before ``now``, and the bytes the edge fetched
again from the origin in the hour after each, approximated by the misses' share of each
minute's bytes (``bytes_out x misses / requests``) over the minutes in ``[t, t + 1 h)``; a
minute in the hour after two purges counts once.

Nothing here checks access: the caller (``edgeplane.services.costs``) has.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from functools import lru_cache
from typing import NamedTuple

from cryptography import x509
from sqlalchemy import func, select

from edgeplane.costs.usage import (
    CertificateUsage,
    DeploymentUsage,
    LoadBalancerUsage,
    ProjectUsage,
    PurgeUsage,
    TrafficUsage,
)
from edgeplane.errors import InvalidInput
from edgeplane.model.costs import MONTH_PATTERN
from edgeplane.services import load_balancers
from edgeplane.store.db import Tx
from edgeplane.store.tables import (
    CertificateRow,
    EdgeAnalyticsRow,
    EdgeDeploymentRow,
    EdgeNodeRow,
    LoadBalancerRow,
    PurgeRow,
    utcnow,
)

RECENT_DAYS = 7
REFETCH_WINDOW = timedelta(hours=1)
UNKNOWN_REGION = "unknown"
SERVING = ("active", "canary", "rolling")
EV_POLICY = "2.23.140.1.1"  # CA/Browser Forum: Extended Validation


@dataclass(frozen=True)
class Period:
    """A billing month: ``[start, end)``."""

    month: str  # YYYY-MM
    start: datetime
    end: datetime


def month_of(when: datetime) -> str:
    """The month ``when`` falls in (UTC), ``YYYY-MM``."""
    utc = when.astimezone(UTC)
    return f"{utc.year:04d}-{utc.month:02d}"


def period(month: str | None, now: datetime) -> Period:
    """The period of ``month`` (default: the month of ``now``); InvalidInput naming ``month``
    when it is malformed or has not started by ``now``."""
    text = month_of(now) if month is None else month.strip()
    if not re.fullmatch(MONTH_PATTERN, text):
        raise InvalidInput.at(
            "month", f"must be a month written YYYY-MM, e.g. 2026-04, not {month!r}"
        )
    year, number = int(text[:4]), int(text[5:])
    if year < 1970:
        raise InvalidInput.at("month", "must be 1970-01 or later")
    start = datetime(year, number, 1, tzinfo=UTC)
    if start > now:
        raise InvalidInput.at("month", f"{text} has not started (this is {month_of(now)})")
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    return Period(text, start, end)


def traffic(tx: Tx, project: str, start: datetime, end: datetime) -> list[TrafficUsage]:
    """The project's bytes in the minutes of ``[start, end)`` per domain and region."""
    query = (
        select(
            EdgeAnalyticsRow.domain,
            EdgeNodeRow.region,
            func.sum(EdgeAnalyticsRow.bytes_out),
            func.sum(EdgeAnalyticsRow.static_bytes),
        )
        .select_from(EdgeAnalyticsRow)
        .outerjoin(EdgeNodeRow, EdgeNodeRow.id == EdgeAnalyticsRow.node_id)
        .where(
            EdgeAnalyticsRow.project_id == project,
            EdgeAnalyticsRow.minute >= start,
            EdgeAnalyticsRow.minute < end,
        )
        .group_by(EdgeAnalyticsRow.domain, EdgeNodeRow.region)
    )
    sums: dict[tuple[str, str], tuple[int, int]] = {}
    for domain, region, sent, static in tx.session.execute(query):
        key = (domain, region or UNKNOWN_REGION)
        before = sums.get(key, (0, 0))
        sums[key] = (before[0] + int(sent or 0), before[1] + int(static or 0))
    return [
        TrafficUsage(domain, region, cdn_bytes=max(sent - static, 0), edge_bytes=static)
        for (domain, region), (sent, static) in sorted(sums.items())
        if sent or static
    ]


def load_balancer_usage(tx: Tx, project: str, now: datetime) -> list[LoadBalancerUsage]:
    """The project's load balancers created before ``now``."""
    rows = tx.session.scalars(
        select(LoadBalancerRow).where(
            LoadBalancerRow.project_id == project, LoadBalancerRow.created_at < now
        )
    )
    out = []
    for row in rows:
        lb = load_balancers.to_model(row)
        out.append(
            LoadBalancerUsage(
                id=lb.id, name=lb.name, backends=len(lb.backends), tier=lb.tier, since=lb.created_at
            )
        )
    return out


def _region_since(line: Sequence[EdgeDeploymentRow], region: str) -> datetime:
    """The creation of the oldest version of ``line`` (newest first, the serving one first)
    in the unbroken run that holds ``region``."""
    since = line[0].created_at
    for older in line[1:]:
        if region not in (older.regions or []):
            break
        since = older.created_at
    return since


def deployment_usage(tx: Tx, project: str, now: datetime) -> list[DeploymentUsage]:
    """One entry per serving deployment and region, with the region's time in use."""
    rows = tx.session.scalars(
        select(EdgeDeploymentRow)
        .where(EdgeDeploymentRow.project_id == project, EdgeDeploymentRow.created_at < now)
        .order_by(EdgeDeploymentRow.version.desc())
    )
    served = [r for r in rows if r.status in SERVING or r.activated_at is not None]
    out = []
    for i, row in enumerate(served):
        if row.status not in SERVING:
            continue
        for region in sorted(set(row.regions or [])):
            since = _region_since(served[i:], region)
            out.append(DeploymentUsage(id=row.id, regions=(region,), since=since))
    return out


@lru_cache(maxsize=4096)
def is_ev(cert_pem: str) -> bool:
    """Whether the leaf (the first certificate of ``cert_pem``) is an EV certificate."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    return any(p.policy_identifier.dotted_string == EV_POLICY for p in policies)


# Whether a certificate version is EV, by its id: a version never changes, so each is parsed
# once per process (10,000 domains' certificates: 0.5 s to parse, every report otherwise).
_EV_BY_ID: dict[str, bool] = {}
_EV_BY_ID_MAX = 500_000
_CHUNK = 500


class _Version(NamedTuple):
    id: str
    status: str
    not_after: datetime
    created_at: datetime


def _ev(tx: Tx, ids: Sequence[str]) -> dict[str, bool]:
    """Whether each of these versions is EV (their PEM read only for those not known yet)."""
    missing = [i for i in ids if i not in _EV_BY_ID]
    if len(_EV_BY_ID) + len(missing) > _EV_BY_ID_MAX:
        _EV_BY_ID.clear()
        missing = list(ids)
    for start in range(0, len(missing), _CHUNK):
        chunk = missing[start : start + _CHUNK]
        query = select(CertificateRow.id, CertificateRow.cert_pem).where(
            CertificateRow.id.in_(chunk)
        )
        for cert_id, pem in tx.session.execute(query):
            _EV_BY_ID[cert_id] = is_ev(pem)
    return {i: _EV_BY_ID.get(i, False) for i in ids}


def certificate_usage(
    tx: Tx, project: str, start: datetime, now: datetime
) -> list[CertificateUsage]:
    """The newest active certificate of each domain valid in the period."""
    rows = tx.session.execute(
        select(
            CertificateRow.domain,
            CertificateRow.id,
            CertificateRow.status,
            CertificateRow.not_after,
            CertificateRow.created_at,
        )
        .where(CertificateRow.project_id == project, CertificateRow.created_at < now)
        .order_by(CertificateRow.domain, CertificateRow.created_at.desc(), CertificateRow.id)
    )
    versions: dict[str, list[_Version]] = {}
    for domain, cert_id, status, not_after, created_at in rows:
        versions.setdefault(domain, []).append(_Version(cert_id, status, not_after, created_at))
    chosen: dict[str, tuple[int, _Version]] = {}
    for domain, rows_of in versions.items():
        index = next(
            (i for i, r in enumerate(rows_of) if r.status == "active" and r.not_after > start),
            None,
        )
        if index is not None:
            chosen[domain] = (index, rows_of[index])
    ev = _ev(tx, [newest.id for _, newest in chosen.values()])
    out = []
    for domain, (index, newest) in chosen.items():
        since = newest.created_at
        if ev[newest.id]:
            older = versions[domain][index + 1 :]
            older_ev = _ev(tx, [r.id for r in older])
            for r in older:
                if since <= start or not older_ev[r.id]:
                    break
                since = r.created_at
        out.append(CertificateUsage(id=newest.id, domain=domain, ev=ev[newest.id], since=since))
    return out


def _windows(times: Sequence[datetime]) -> list[tuple[datetime, datetime]]:
    """``[t, t + 1 h)`` for each time (sorted), overlapping ones merged."""
    merged: list[tuple[datetime, datetime]] = []
    for t in times:
        if merged and t <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], t + REFETCH_WINDOW))
        else:
            merged.append((t, t + REFETCH_WINDOW))
    return merged


def purge_usage(tx: Tx, project: str, now: datetime) -> PurgeUsage:
    """Purge-alls of the last ``RECENT_DAYS`` days and the bytes refetched after them."""
    times = list(
        tx.session.scalars(
            select(PurgeRow.created_at)
            .where(
                PurgeRow.project_id == project,
                PurgeRow.purge_all.is_(True),
                PurgeRow.created_at >= now - timedelta(days=RECENT_DAYS),
                PurgeRow.created_at < now,
            )
            .order_by(PurgeRow.created_at)
        )
    )
    windows = _windows(times)
    refetched = Fraction(0)
    if windows:
        starts = [w[0] for w in windows]
        minutes = tx.session.execute(
            select(
                EdgeAnalyticsRow.minute,
                EdgeAnalyticsRow.bytes_out,
                EdgeAnalyticsRow.misses,
                EdgeAnalyticsRow.requests,
            ).where(
                EdgeAnalyticsRow.project_id == project,
                EdgeAnalyticsRow.minute >= windows[0][0],
                EdgeAnalyticsRow.minute < windows[-1][1],
            )
        )
        for minute, sent, misses, requests in minutes:
            i = bisect.bisect_right(starts, minute) - 1
            if i >= 0 and minute < windows[i][1] and requests:
                refetched += Fraction((sent or 0) * (misses or 0), requests)
    return PurgeUsage(
        purge_all_count=len(times), days=float(RECENT_DAYS), refetched_bytes=math.floor(refetched)
    )


def project_usage(
    tx: Tx, project: str, month: str | None = None, *, now: datetime | None = None
) -> ProjectUsage:
    """Everything the cost model prices for ``project`` in ``month`` (default: this one)."""
    real_now = now or utcnow()
    span = period(month, real_now)
    at = min(real_now, span.end)
    recent = at - timedelta(days=RECENT_DAYS)
    return ProjectUsage(
        project=project,
        period_start=span.start,
        now=at,
        period_end=span.end,
        traffic=traffic(tx, project, span.start, at),
        traffic_recent=traffic(tx, project, recent, at),
        recent_days=float(RECENT_DAYS),
        load_balancers=load_balancer_usage(tx, project, at),
        deployments=deployment_usage(tx, project, at),
        certificates=certificate_usage(tx, project, span.start, at),
        purges=purge_usage(tx, project, at),
    )
