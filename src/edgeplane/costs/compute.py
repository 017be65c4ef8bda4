"""A project's costs in a billing period: month to date, forecast, splits, recommendations.

``cost_report(model, usage)`` prices a ``ProjectUsage`` with a ``CostModel``; every price comes
from the model. The period is ``[period_start, period_end)``; ``now`` is clamped into it.

**Usage-based items** (CDN traffic, edge deployment traffic). Month to date comes from
``traffic``. The forecast of each domain and region is its month-to-date bytes plus its recent
daily rate (its bytes in ``traffic_recent`` / ``recent_days``) times the days left until
``period_end``. The CDN's free allowance (``cdn_free_gb_month``) applies once per project and
month, to the CDN total of all domains and regions: cost = max(0, GB - free) x ``cdn_per_gb``,
for the month to date on the month-to-date total, for the forecast on the forecast total. Edge
deployment traffic has no allowance: GB x ``edge_traffic_per_gb``. A GB is ``gb_bytes`` bytes.

The cost of a total is split over its (domain, region) pairs in proportion to their bytes:
with the allowance applied to the total, every byte carries the same share of the bill, so a
pair's billable share is its share of the bytes (a pair's forecast share, of its forecast
bytes).

**Fixed monthly items** accrue linearly over the period from ``max(period_start, since)``:
month to date = monthly x (now - start) / period length, forecast = monthly x (period_end -
start) / period length (each 0 when negative).

- Load balancers: the monthly price of their tier. Without a tier, the smallest tier that fits
  the backends (the largest when none does); an explicit tier is billed as chosen, but never
  below the tier the backends need; an explicit tier the model does not know is treated as
  none.
- Edge regions: the distinct regions of all the project's deployments, in the order they were
  first used (the earliest ``since`` of a deployment holding them; ties by name). The first
  ``edge_free_regions`` are free; each further one costs ``edge_region_monthly`` a month from
  its first use.
- EV certificates: ``ev_certificate_yearly`` / 12 a month each; other certificates are free
  and not listed.

**Rounding.** Amounts are exact (fractions) until the output. Only the report's totals are
rounded, to cents (half up); the lines are then the totals split in whole cents by largest
remainder (each line gets the floor of its exact amount in cents, the cents left go one each
to the largest remainders, ties in line order), so each line is within a cent of its exact
amount and the lines add up exactly to the total; ``by_service``, ``by_domain`` and
``by_region`` are sums of the lines, so they agree with the total to the cent (the lines
without a domain, or region, are summed under ``NONE``).

**Recommendations**, each with the monthly saving it would bring (full-month prices):

- ``idle_region``: when the project pays for regions, a deployment region that served no edge
  deployment traffic (``edge_bytes``) in ``traffic_recent`` although in use for the whole
  recent window. Removing one region saves one region price as long as the regions remain
  more than the free ones, so at most (regions - free) idle regions are recommended, the ones
  billed (the latest first used) first; the object is the region code.
- ``load_balancer_tier``: a load balancer with an explicit tier above the smallest tier that
  fits its backends; the saving is the price difference (recommended only when positive).
- ``purge_all_storm``: more than one purge-all a day on average over ``days``; the saving is
  the bytes fetched again after them, scaled to the period's length (refetched / days x the
  period's days), priced at ``cdn_per_gb``. Recommended even when that comes to 0 (the origin
  still takes the load).

Money is rounded to cents only in the output; quantities are in GB (or months, region-months,
years accrued to date) with 3 decimals.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Literal, TypeVar

from edgeplane.costs.model import CostModel, LoadBalancerTier
from edgeplane.costs.usage import ProjectUsage, TrafficUsage
from edgeplane.model.common import Output

Service = Literal["cdn", "load_balancer", "edge_deployment", "certificate"]
SERVICES: tuple[Service, ...] = ("cdn", "load_balancer", "edge_deployment", "certificate")
RecommendationKind = Literal["idle_region", "load_balancer_tier", "purge_all_storm"]
NONE = "(none)"
"""The key of ``by_domain`` / ``by_region`` for the lines without a domain / region."""


class CostLine(Output):
    """One billed item. ``quantity`` is what was used to date, in ``unit``: GB served, months,
    region-months or years accrued."""

    service: Service
    item: str  # e.g. "CDN traffic", "lb-1 (standard)", "edge region eu-west"
    quantity: float
    unit: str  # "GB", "month", "region-month", "year"
    month_to_date: float
    forecast: float
    domain: str | None = None
    region: str | None = None


class Amounts(Output):
    month_to_date: float
    forecast: float


class Recommendation(Output):
    kind: RecommendationKind
    message: str
    monthly_saving: float
    object_id: str | None  # the region, the load balancer; None for the project


class CostReport(Output):
    project: str
    currency: str
    period_start: datetime
    period_end: datetime
    now: datetime
    month_to_date: float
    forecast: float
    lines: list[CostLine]
    by_service: dict[str, Amounts]  # every service, 0 when unused
    by_domain: dict[str, Amounts]  # NONE: the lines without a domain
    by_region: dict[str, Amounts]  # NONE: the lines without a region
    recommendations: list[Recommendation]  # the largest saving first


K = TypeVar("K")
_DAY = Fraction(86_400)


def _exact(value: float) -> Fraction:
    """A float as the decimal it was written as (0.08 -> 2/25, not its binary value)."""
    return Fraction(repr(float(value)))


def _seconds(start: datetime, end: datetime) -> Fraction:
    """The seconds from ``start`` to ``end``, 0 when ``end`` is not after ``start``."""
    micros = (end - start) // timedelta(microseconds=1)
    return Fraction(max(micros, 0), 1_000_000)


def _cents(amount: Fraction) -> int:
    """``amount`` in whole cents, half up."""
    return math.floor(amount * 100 + Fraction(1, 2))


def _money(cents: int) -> float:
    return round(cents / 100, 2)


def _qty(value: Fraction) -> float:
    return round(float(value), 3)


def split_cents(total: int, weights: dict[K, Fraction]) -> dict[K, int]:
    """``total`` cents over the keys in proportion to ``weights``, by largest remainder: the
    parts add up to ``total`` (ties go to the earlier key of ``weights``). All weights 0: all
    parts 0."""
    keys = list(weights)
    whole = sum(weights.values(), Fraction(0))
    if whole <= 0:
        return dict.fromkeys(keys, 0)
    exact = {k: total * weights[k] / whole for k in keys}
    parts = {k: math.floor(v) for k, v in exact.items()}
    left = total - sum(parts.values())
    by_remainder = sorted(keys, key=lambda k: -(exact[k] - parts[k]))  # stable: ties in order
    for k in by_remainder[:left]:
        parts[k] += 1
    return parts


@dataclass
class _Line:
    service: Service
    item: str
    quantity: Fraction
    unit: str
    mtd: Fraction  # exact amounts
    forecast: Fraction
    domain: str | None = None
    region: str | None = None

    def out(self, mtd: int, forecast: int) -> CostLine:
        return CostLine(
            service=self.service,
            item=self.item,
            quantity=_qty(self.quantity),
            unit=self.unit,
            month_to_date=_money(mtd),
            forecast=_money(forecast),
            domain=self.domain,
            region=self.region,
        )


@dataclass(frozen=True)
class _Period:
    start: datetime
    now: datetime  # clamped into [start, end]
    end: datetime

    @property
    def length(self) -> Fraction:
        return _seconds(self.start, self.end)

    @property
    def days(self) -> Fraction:
        return self.length / _DAY

    @property
    def days_left(self) -> Fraction:
        return _seconds(self.now, self.end) / _DAY

    def accrued(self, since: datetime) -> tuple[Fraction, Fraction]:
        """The parts of a month accrued from ``since``: to date, and by the period's end."""
        start = max(self.start, since)
        return _seconds(start, self.now) / self.length, _seconds(start, self.end) / self.length


def _bytes_by_key(rows: Iterable[TrafficUsage], edge: bool) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = defaultdict(int)
    for row in rows:
        out[(row.domain, row.region)] += row.edge_bytes if edge else row.cdn_bytes
    return out


def _traffic_lines(
    model: CostModel, usage: ProjectUsage, period: _Period, *, edge: bool
) -> list[_Line]:
    """The lines of CDN traffic (``edge`` False) or of edge deployment traffic."""
    mtd = _bytes_by_key(usage.traffic, edge)
    recent = _bytes_by_key(usage.traffic_recent, edge)
    rate_days = _exact(usage.recent_days)
    forecast: dict[tuple[str, str], Fraction] = {}
    for key in sorted(set(mtd) | set(recent)):
        rate = recent.get(key, 0) / rate_days if rate_days > 0 else Fraction(0)
        forecast[key] = mtd.get(key, 0) + rate * period.days_left
    forecast = {k: v for k, v in forecast.items() if v > 0}
    if not forecast:
        return []
    gb = Fraction(model.gb_bytes)
    if edge:
        price, free = _exact(model.edge_traffic_per_gb), Fraction(0)
    else:
        price, free = _exact(model.cdn_per_gb), _exact(model.cdn_free_gb_month)

    def per_byte(parts: Iterable[Fraction]) -> Fraction:
        """The cost of a byte when ``parts`` are billed together (the allowance on their
        total): every byte bears the same share."""
        total = sum(parts, Fraction(0))
        if total <= 0:
            return Fraction(0)
        return max(total / gb - free, Fraction(0)) * price / total

    mtd_bytes = {k: Fraction(mtd.get(k, 0)) for k in forecast}
    mtd_rate, forecast_rate = per_byte(mtd_bytes.values()), per_byte(forecast.values())
    return [
        _Line(
            service="edge_deployment" if edge else "cdn",
            item="edge traffic" if edge else "CDN traffic",
            quantity=mtd_bytes[key] / gb,
            unit="GB",
            mtd=mtd_bytes[key] * mtd_rate,
            forecast=forecast[key] * forecast_rate,
            domain=key[0],
            region=key[1],
        )
        for key in forecast
    ]


def _tier_index(model: CostModel, tier: LoadBalancerTier) -> int:
    return model.lb_tiers.index(tier)


def _billed_tier(model: CostModel, backends: int, chosen: str | None) -> LoadBalancerTier:
    fit = model.fitting_tier(backends)
    tier = model.tier(chosen) if chosen is not None else None
    if tier is None or _tier_index(model, tier) < _tier_index(model, fit):
        return fit
    return tier


def _load_balancers(
    model: CostModel, usage: ProjectUsage, period: _Period
) -> tuple[list[_Line], list[tuple[int, Recommendation]]]:
    lines: list[_Line] = []
    recs: list[tuple[int, Recommendation]] = []
    for lb in sorted(usage.load_balancers, key=lambda b: (b.name, b.id)):
        tier = _billed_tier(model, lb.backends, lb.tier)
        monthly = _exact(tier.monthly)
        to_date, by_end = period.accrued(lb.since)
        lines.append(
            _Line(
                service="load_balancer",
                item=f"{lb.name} ({tier.name})",
                quantity=to_date,
                unit="month",
                mtd=monthly * to_date,
                forecast=monthly * by_end,
            )
        )
        fit = model.fitting_tier(lb.backends)
        saving = _cents(monthly - _exact(fit.monthly))
        if _tier_index(model, tier) > _tier_index(model, fit) and saving > 0:
            message = (
                f"load balancer {lb.name} has {lb.backends} backend(s) on the {tier.name} "
                f"tier; the {fit.name} tier holds them for "
                f"{_money(saving):.2f} {model.currency} a month less"
            )
            recs.append((saving, _rec("load_balancer_tier", message, saving, lb.id)))
    return lines, recs


def _regions(
    model: CostModel, usage: ProjectUsage, period: _Period
) -> tuple[list[_Line], list[tuple[int, Recommendation]]]:
    first_use: dict[str, datetime] = {}
    users: dict[str, list[str]] = defaultdict(list)
    for dep in usage.deployments:
        for region in set(dep.regions):
            users[region].append(dep.id)
            if region not in first_use or dep.since < first_use[region]:
                first_use[region] = dep.since
    order = sorted(first_use, key=lambda r: (first_use[r], r))
    free = model.edge_free_regions
    monthly = _exact(model.edge_region_monthly)
    lines: list[_Line] = []
    for position, region in enumerate(order):
        to_date, by_end = period.accrued(first_use[region])
        price = Fraction(0) if position < free else monthly
        lines.append(
            _Line(
                service="edge_deployment",
                item=f"edge region {region}" + (" (free)" if position < free else ""),
                quantity=to_date,
                unit="region-month",
                mtd=price * to_date,
                forecast=price * by_end,
                region=region,
            )
        )
    recs: list[tuple[int, Recommendation]] = []
    billable = len(order) - free
    saving = _cents(monthly)
    if billable <= 0 or saving <= 0:
        return lines, recs
    served = _bytes_by_key(usage.traffic_recent, edge=True)
    active = {region for (_, region), size in served.items() if size > 0}
    window_start = usage.now - timedelta(days=usage.recent_days)
    idle = [r for r in reversed(order) if r not in active and first_use[r] <= window_start]
    days = f"{usage.recent_days:g}"
    for region in idle[:billable]:
        deployments = ", ".join(sorted(users[region]))
        message = (
            f"region {region} served no edge deployment traffic in the last {days} days; "
            f"removing it from deployment(s) {deployments} saves "
            f"{_money(saving):.2f} {model.currency} a month"
        )
        recs.append((saving, _rec("idle_region", message, saving, region)))
    return lines, recs


def _certificates(model: CostModel, usage: ProjectUsage, period: _Period) -> list[_Line]:
    monthly = _exact(model.ev_certificate_yearly) / 12
    lines: list[_Line] = []
    for cert in sorted(usage.certificates, key=lambda c: (c.domain, c.id)):
        if not cert.ev:
            continue
        to_date, by_end = period.accrued(cert.since)
        lines.append(
            _Line(
                service="certificate",
                item=f"EV certificate {cert.domain}",
                quantity=to_date / 12,
                unit="year",
                mtd=monthly * to_date,
                forecast=monthly * by_end,
                domain=cert.domain,
            )
        )
    return lines


def _purges(
    model: CostModel, usage: ProjectUsage, period: _Period
) -> list[tuple[int, Recommendation]]:
    purges = usage.purges
    if purges is None or purges.days <= 0:
        return []
    days = _exact(purges.days)
    if purges.purge_all_count <= days:  # at most one a day on average
        return []
    monthly_gb = purges.refetched_bytes / days * period.days / model.gb_bytes
    saving = _cents(monthly_gb * _exact(model.cdn_per_gb))
    message = (
        f"{purges.purge_all_count} purge-all requests in {purges.days:g} days: each one "
        f"empties the cache and the edge fetches everything again from the origin; purge the "
        f"changed paths or a path prefix (/prefix/*) instead, saving up to "
        f"{_money(saving):.2f} {model.currency} a month"
    )
    return [(saving, _rec("purge_all_storm", message, saving, None))]


def _rec(
    kind: RecommendationKind, message: str, saving: int, object_id: str | None
) -> Recommendation:
    return Recommendation(
        kind=kind, message=message, monthly_saving=_money(saving), object_id=object_id
    )


def _sums(keys: list[str | None], mtd_cents: list[int], fc_cents: list[int]) -> dict[str, Amounts]:
    """The lines' cents summed by key (``NONE`` for None)."""
    mtd: dict[str, int] = defaultdict(int)
    fc: dict[str, int] = defaultdict(int)
    for key, m, f in zip(keys, mtd_cents, fc_cents, strict=True):
        mtd[key or NONE] += m
        fc[key or NONE] += f
    return {k: Amounts(month_to_date=_money(mtd[k]), forecast=_money(fc[k])) for k in sorted(mtd)}


def cost_report(model: CostModel, usage: ProjectUsage) -> CostReport:
    """The project's costs in the period of ``usage``, priced by ``model``."""
    now = min(max(usage.now, usage.period_start), usage.period_end)
    period = _Period(usage.period_start, now, usage.period_end)
    lb_lines, lb_recs = _load_balancers(model, usage, period)
    region_lines, region_recs = _regions(model, usage, period)
    lines = [
        *_traffic_lines(model, usage, period, edge=False),
        *lb_lines,
        *region_lines,
        *_traffic_lines(model, usage, period, edge=True),
        *_certificates(model, usage, period),
    ]
    mtd_total = _cents(sum((line.mtd for line in lines), Fraction(0)))
    fc_total = _cents(sum((line.forecast for line in lines), Fraction(0)))
    mtd = list(split_cents(mtd_total, {i: line.mtd for i, line in enumerate(lines)}).values())
    fc = list(split_cents(fc_total, {i: line.forecast for i, line in enumerate(lines)}).values())
    by_service = _sums([line.service for line in lines], mtd, fc)
    for service in SERVICES:
        by_service.setdefault(service, Amounts(month_to_date=0.0, forecast=0.0))
    recs = [*region_recs, *lb_recs, *_purges(model, usage, period)]
    recs.sort(key=lambda sr: (-sr[0], sr[1].kind, sr[1].object_id or ""))
    return CostReport(
        project=usage.project,
        currency=model.currency,
        period_start=usage.period_start,
        period_end=usage.period_end,
        now=usage.now,
        month_to_date=_money(mtd_total),
        forecast=_money(fc_total),
        lines=[line.out(m, f) for line, m, f in zip(lines, mtd, fc, strict=True)],
        by_service={s: by_service[s] for s in SERVICES},
        by_domain=_sums([line.domain for line in lines], mtd, fc),
        by_region=_sums([line.region for line in lines], mtd, fc),
        recommendations=[rec for _, rec in recs],
    )
