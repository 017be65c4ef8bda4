"""What a month of traffic the caller states would cost: the dashboard's cost estimator.

``estimate(model, traffic)`` prices ``traffic`` (the CDN GB and the requests of one month)
with a ``CostModel`` as ``cost_report`` prices a month's measured CDN traffic: the project's
free allowance (``cdn_free_gb_month``) on the month's total, every GB beyond it at
``cdn_per_gb``, the amount exact until it is rounded to cents (half up). The model has no
price per request (requests are free, and listed with a price of 0) and the same price per GB
in every region, so the estimate needs neither a region nor the response sizes. Pure: nothing
is read or stored.
"""

from __future__ import annotations

from pydantic import Field

from edgeplane.costs.compute import _cents, _exact, _money, _qty
from edgeplane.costs.model import CostModel
from edgeplane.model.common import Float, Input, Int, Output

MAX_GB = 1_000_000_000
MAX_REQUESTS = 10**15


class TrafficEstimate(Input):
    """A month's traffic to price (``POST /api/v1/costs/estimate``)."""

    cdn_gb: Float = Field(
        ge=0,
        le=MAX_GB,
        allow_inf_nan=False,
        description="GB served by the CDN in the month (proxied or from cache), a GB being "
        "the model's gb_bytes",
    )
    requests: Int = Field(
        0, ge=0, le=MAX_REQUESTS, description="requests in the month (the model prices none)"
    )


class EstimateLine(Output):
    item: str  # "CDN traffic, free allowance", "CDN traffic", "requests"
    quantity: float
    unit: str  # "GB", "request"
    unit_price: float
    amount: float


class CostEstimate(Output):
    currency: str
    cdn_gb: float
    requests: int
    free_gb: float  # the part of cdn_gb the monthly allowance covers
    billable_gb: float  # cdn_gb beyond the allowance
    per_gb: float
    monthly: float  # the month's cost, in whole cents
    lines: list[EstimateLine]


def estimate(model: CostModel, traffic: TrafficEstimate) -> CostEstimate:
    """The monthly cost of ``traffic`` with the prices of ``model``."""
    gb = _exact(traffic.cdn_gb)
    allowance = _exact(model.cdn_free_gb_month)
    free = min(gb, allowance)
    billable = gb - free
    per_gb = _exact(model.cdn_per_gb)
    monthly = _cents(billable * per_gb)
    lines = [
        EstimateLine(
            item="CDN traffic, free allowance",
            quantity=_qty(free),
            unit="GB",
            unit_price=0.0,
            amount=0.0,
        ),
        EstimateLine(
            item="CDN traffic",
            quantity=_qty(billable),
            unit="GB",
            unit_price=model.cdn_per_gb,
            amount=_money(monthly),
        ),
        EstimateLine(
            item="requests",
            quantity=float(traffic.requests),
            unit="request",
            unit_price=0.0,
            amount=0.0,
        ),
    ]
    return CostEstimate(
        currency=model.currency,
        cdn_gb=traffic.cdn_gb,
        requests=traffic.requests,
        free_gb=_qty(free),
        billable_gb=_qty(billable),
        per_gb=model.cdn_per_gb,
        monthly=_money(monthly),
        lines=lines,
    )
