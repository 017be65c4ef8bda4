"""``dr_configs``: disaster-recovery pairs of the project's data centers (primary and backup
by id) with their recovery point and time objectives, in minutes, how failover and failback
happen (automatically or once confirmed) and how often the pair is drilled."""

from __future__ import annotations

from edgeplane.iac.kind import Context, Item, Kind, changed_fields, project_rows
from edgeplane.model.common import ObjectId
from edgeplane.model.operations import DRConfigCreate
from edgeplane.services import dr
from edgeplane.store.tables import DataCenterRow, DRConfigRow


class DRConfigItem(DRConfigCreate):
    id: ObjectId


class DRConfigs(Kind):
    section = "dr_configs"
    noun = "DR config"
    item = DRConfigItem
    audit_kinds = frozenset({dr.KIND})

    def read(self, ctx: Context) -> list[Item]:
        tx = ctx.tx
        rows = project_rows(tx, DRConfigRow)
        return [
            DRConfigItem.model_validate(
                {
                    "id": row.id,
                    "name": row.name,
                    "primary_dc": row.primary_dc,
                    "backup_dc": row.backup_dc,
                    "rpo": row.rpo,
                    "rto": row.rto,
                    "environment": row.environment,
                    "failover_mode": row.failover_mode,
                    "failback_mode": row.failback_mode,
                    "drill_every_days": row.drill_every_days,
                }
            ).model_dump(mode="json")
            for row in rows
        ]

    def create(self, ctx: Context, item: Item) -> None:
        dr.create(ctx.tx, item)

    def update(self, ctx: Context, before: Item, after: Item) -> None:
        dr.update(ctx.tx, after["id"], changed_fields(before, after))

    def delete(self, ctx: Context, item: Item) -> None:
        dr.delete(ctx.tx, item["id"])

    def warnings(
        self, ctx: Context, action: str, before: Item | None, after: Item | None
    ) -> list[str]:
        """What makes the pair weaker than it looks (same location, a smaller or lower-tier
        backup), as the service reports it, when both data centers exist already."""
        if after is None or (
            before is not None
            and before["primary_dc"] == after["primary_dc"]
            and before["backup_dc"] == after["backup_dc"]
        ):
            return []
        tx = ctx.tx
        primary = tx.session.get(DataCenterRow, (tx.project, after["primary_dc"]))
        backup = tx.session.get(DataCenterRow, (tx.project, after["backup_dc"]))
        if primary is None or backup is None or primary.id == backup.id:
            return []
        return dr.warnings_for(tx, primary, backup)
