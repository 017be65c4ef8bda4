"""Budgets: an amount a period, and the percentages of it that raise an alert.

A threshold ``t`` (a percentage) is reached when spent >= amount x t / 100, compared exactly
on the decimals as written (80.00 of 100.00 reaches 80). ``crossed`` gives the thresholds
reached by the second of two readings and not by the first, so that each one alerts once as
the spending grows; a lower second reading (a new period) crosses none. ``level`` is the
highest threshold a reading has reached.

Thresholds are kept sorted, each once; above 100 (overspending) is allowed.
"""

from __future__ import annotations

from fractions import Fraction

from pydantic import ConfigDict, Field, field_validator

from edgeplane.model.common import Float, Input, Int


class Budget(Input):
    """A project's budget for a period (the caller stores it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    amount: Float = Field(
        gt=0, le=1_000_000_000_000, allow_inf_nan=False, description="the budget, in currency"
    )
    thresholds: tuple[Int, ...] = Field(
        (50, 80, 100),
        min_length=1,
        max_length=20,
        description="percentages of the amount that raise an alert (1-1000), e.g. 50, 80, 100",
    )

    @field_validator("thresholds")
    @classmethod
    def _sorted(cls, thresholds: tuple[int, ...]) -> tuple[int, ...]:
        for t in thresholds:
            if not 1 <= t <= 1000:
                raise ValueError(f"each threshold must be 1-1000 (percent), not {t}")
        return tuple(sorted(set(thresholds)))


def _reached(budget: Budget, spent: float) -> list[int]:
    amount, spent_exact = Fraction(repr(float(budget.amount))), Fraction(repr(float(spent)))
    return [t for t in budget.thresholds if spent_exact * 100 >= amount * t]


def crossed(budget: Budget, spent_before: float, spent_now: float) -> list[int]:
    """The thresholds ``spent_now`` reaches and ``spent_before`` did not, lowest first."""
    before = set(_reached(budget, spent_before))
    return [t for t in _reached(budget, spent_now) if t not in before]


def level(budget: Budget, spent: float) -> int | None:
    """The highest threshold ``spent`` reaches, or None."""
    reached = _reached(budget, spent)
    return reached[-1] if reached else None
