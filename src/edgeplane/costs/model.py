"""The prices of the cost model, in one model the operator may change (the caller stores it).

The defaults are the specification's "Cost Model" (USD):

- CDN usage: the first 100 GB of a month free for the project, then $0.08 per GB; purge
  requests are free.
- Load balancers, by the number of backends: Basic (up to 2) free, Standard (up to 10)
  $10/month, Premium (unlimited) $50/month.
- Edge deployments: the first 3 regions free, each further region $5/month; traffic
  $0.01/GB.
- Certificates: Let's Encrypt and custom ones free, EV certificates $100/year.

A GB is ``gb_bytes`` bytes: 10^9 (decimal, as billed), not 2^30. Nothing in this package reads
a price elsewhere than from a ``CostModel``.

Load balancer tiers are ordered from the smallest: names unique, ``max_backends`` strictly
increasing, and only the last tier may be unlimited (``max_backends`` None).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, field_validator

from edgeplane.model.common import Float, Input, Int, Name, Text

Price = Annotated[Float, Field(ge=0, le=1_000_000_000, allow_inf_nan=False)]
"""A price: a finite number, 0 or more."""


class LoadBalancerTier(Input):
    """One load balancer tier: up to ``max_backends`` backends for ``monthly`` a month."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name = Field(description="the tier's name, e.g. standard")
    max_backends: Int | None = Field(
        ge=0, le=1_000_000, description="the most backends of the tier; None: unlimited"
    )
    monthly: Price = Field(description="price per month")


DEFAULT_LB_TIERS = (
    LoadBalancerTier(name="basic", max_backends=2, monthly=0.0),
    LoadBalancerTier(name="standard", max_backends=10, monthly=10.0),
    LoadBalancerTier(name="premium", max_backends=None, monthly=50.0),
)


class CostModel(Input):
    """The prices of every billed item (frozen: change one with ``model_copy(update=...)``
    or build a new model)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: Text = Field(
        "USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code of every price, e.g. USD"
    )
    gb_bytes: Int = Field(
        1_000_000_000,
        ge=1,
        le=1_000_000_000_000,
        description="bytes in a billed GB: 10^9 (a decimal gigabyte, not 2^30 bytes)",
    )
    cdn_free_gb_month: Float = Field(
        100.0,
        ge=0,
        le=1_000_000_000,
        allow_inf_nan=False,
        description="CDN GB free per project and month (all domains together)",
    )
    cdn_per_gb: Price = Field(0.08, description="price per CDN GB beyond the free ones")
    lb_tiers: tuple[LoadBalancerTier, ...] = Field(
        DEFAULT_LB_TIERS,
        min_length=1,
        max_length=100,
        description="load balancer tiers from the smallest: names unique, max_backends "
        "increasing, only the last may be unlimited (null)",
    )
    edge_free_regions: Int = Field(
        3, ge=0, le=10_000, description="edge deployment regions free per project"
    )
    edge_region_monthly: Price = Field(
        5.0, description="price per month of each edge region beyond the free ones"
    )
    edge_traffic_per_gb: Price = Field(
        0.01, description="price per GB served from edge deployment bundles"
    )
    ev_certificate_yearly: Price = Field(
        100.0, description="price per year of an EV certificate (others are free)"
    )

    @field_validator("lb_tiers")
    @classmethod
    def _tiers_in_order(cls, tiers: tuple[LoadBalancerTier, ...]) -> tuple[LoadBalancerTier, ...]:
        names = [t.name for t in tiers]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"tier names must be unique: {name!r} appears twice")
        for i, tier in enumerate(tiers):
            if tier.max_backends is None:
                if i != len(tiers) - 1:
                    raise ValueError(f"only the last tier may be unlimited, not {tier.name!r}")
                continue
            previous = tiers[i - 1].max_backends if i else None
            if previous is not None and tier.max_backends <= previous:
                raise ValueError(
                    f"max_backends must increase from tier to tier: {tier.name!r} has "
                    f"{tier.max_backends}, after {previous}"
                )
        return tiers

    def tier(self, name: str) -> LoadBalancerTier | None:
        """The tier named ``name``, or None."""
        return next((t for t in self.lb_tiers if t.name == name), None)

    def fitting_tier(self, backends: int) -> LoadBalancerTier:
        """The smallest tier that holds ``backends``; the largest one when none does."""
        for tier in self.lb_tiers:
            if tier.max_backends is None or backends <= tier.max_backends:
                return tier
        return self.lb_tiers[-1]


DEFAULT_MODEL = CostModel()
