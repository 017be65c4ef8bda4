"""The monthly cost of a project's configuration, before and after a plan.

A month's forecast of next month priced by the cost model in force: the fixed items (load
balancer tiers, edge regions, EV certificates) for the whole month, traffic at its recent daily
rate. The plan's change is the difference: what the file adds or removes each month.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeplane.iac.kind import Context
from edgeplane.services import cost_model, cost_usage, costs
from edgeplane.store.tables import utcnow


@dataclass(frozen=True)
class Monthly:
    currency: str
    amount: float
    by_service: dict[str, float]


def monthly(ctx: Context) -> Monthly:
    tx = ctx.tx
    now = utcnow()
    this = cost_usage.period(None, now)
    start = this.end  # next month, priced as it begins: its forecast is a whole month
    month = f"{start.year:04d}-{start.month:02d}"
    report = costs.priced(tx, cost_model.current(tx), tx.project, month, start)
    return Monthly(
        report.currency,
        report.forecast,
        {k: v.forecast for k, v in report.by_service.items() if v.forecast},
    )


def change(before: Monthly | None, after: Monthly | None) -> dict[str, Any] | None:
    if before is None or after is None:
        return None
    services = sorted(set(before.by_service) | set(after.by_service))
    return {
        "currency": after.currency,
        "monthly_before": before.amount,
        "monthly_after": after.amount,
        "monthly_change": round(after.amount - before.amount, 2),
        "by_service": {
            s: round(after.by_service.get(s, 0.0) - before.by_service.get(s, 0.0), 2)
            for s in services
            if after.by_service.get(s, 0.0) != before.by_service.get(s, 0.0)
        },
    }
