"""``alert_rules``: the project's alert rules, the shipped defaults included.

Every project has the shipped rules (``services.alert_rules.DEFAULT_RULES``, stored at the
first evaluation or change): they are read as they are stored, or as shipped when not stored
yet, so an unchanged default plans as no change on any project. An unchanged default is not
exported and a file need not list it (``--prune`` leaves it); a changed one is exported with
its changes. A default can be changed or disabled (``enabled: false``), not deleted.
``channels`` is a set (kept sorted).
"""

from __future__ import annotations

from typing import Any

from pydantic import field_validator
from sqlalchemy import select

from edgeplane.errors import Conflict
from edgeplane.iac.kind import Context, Item, Kind, changed_fields
from edgeplane.model.alerting import AlertRuleCreate
from edgeplane.services import alert_rules
from edgeplane.store.monitoring_tables import AlertRuleRow

KIND = "alert_rule"  # what services.alert_rules audits
SHIPPED = frozenset(str(spec["id"]) for spec in alert_rules.DEFAULT_RULES)


class AlertRuleItem(AlertRuleCreate):
    """An alert rule: ``series comparison threshold`` over ``window_s``, held ``for_s``."""

    @field_validator("channels")
    @classmethod
    def _set(cls, value: list[str]) -> list[str]:
        return sorted(set(value))


def _canonical(doc: dict[str, Any]) -> Item:
    return AlertRuleItem.model_validate(doc).model_dump(mode="json")


class AlertRules(Kind):
    section = "alert_rules"
    noun = "alert rule"
    item = AlertRuleItem
    audit_kinds = frozenset({KIND})

    def read(self, ctx: Context) -> list[Item]:
        tx = ctx.tx
        rows = tx.session.scalars(select(AlertRuleRow).where(AlertRuleRow.project_id == tx.project))
        found = {
            row.id: {
                "id": row.id,
                "name": row.name,
                "series": row.series,
                "selector": dict(row.selector or {}),
                "comparison": row.comparison,
                "threshold": row.threshold,
                "window_s": row.window_s,
                "for_s": row.for_s,
                "severity": row.severity,
                "enabled": row.enabled,
                "channels": list(row.channels or []),
                "description": row.description,
            }
            for row in rows
        }
        for spec in alert_rules.DEFAULT_RULES:  # not stored yet: as it will be
            found.setdefault(str(spec["id"]), dict(spec))
        return [_canonical(found[k]) for k in sorted(found)]

    def exportable(self, item: Item) -> bool:
        """An unchanged shipped rule is every project's: not exported, never pruned."""
        return item != _SHIPPED_AS.get(item["id"])

    def create(self, ctx: Context, item: Item) -> None:
        alert_rules.create(ctx.tx, item)

    def update(self, ctx: Context, before: Item, after: Item) -> None:
        alert_rules.update(ctx.tx, after["id"], changed_fields(before, after))

    def delete(self, ctx: Context, item: Item) -> None:
        row = ctx.tx.session.get(AlertRuleRow, (ctx.tx.project, item["id"]))
        if item["id"] in SHIPPED or (row is not None and row.builtin):
            raise Conflict(
                f"alert rule {item['id']!r} ships with the platform and cannot be deleted: "
                "keep it in the file (enabled: false disables it)"
            )
        alert_rules.delete(ctx.tx, item["id"])


_SHIPPED_AS = {str(spec["id"]): _canonical(dict(spec)) for spec in alert_rules.DEFAULT_RULES}
