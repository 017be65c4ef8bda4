"""Disaster-recovery configs: a primary and a backup data center with RPO and RTO (minutes),
how failover and failback happen (automatic or confirmed) and how often the pair is drilled.
What a config does at run time (state, failover, drills) is ``edgeplane.dr``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import null, select

from edgeplane.errors import InvalidInput
from edgeplane.model.common import Page
from edgeplane.model.enums import Role
from edgeplane.model.operations import DRConfig, DRConfigCreate
from edgeplane.services import capacity
from edgeplane.services.common import choose_id, get_scoped, merge_patch, paged, validate
from edgeplane.store.db import Tx
from edgeplane.store.tables import DataCenterRow, DRConfigRow

KIND = "dr_config"


def warnings_for(tx: Tx, primary: DataCenterRow, backup: DataCenterRow) -> list[str]:
    """What makes this pair weaker than it looks (derived, so always current)."""
    out = []
    if primary.location == backup.location:
        out.append(
            f"backup_dc {backup.id!r} is in the same location ({backup.location}) as the "
            "primary: one regional outage takes both"
        )
    used = capacity.allocated_in_data_center(tx, primary.id)
    short = used.fits_in(capacity.of_row(backup))
    if short is not None:
        out.append(
            f"backup_dc {backup.id!r} has {getattr(backup, short):g} {capacity.UNITS[short]}, "
            f"less than the {getattr(used, short):g} the primary's servers use"
        )
    if backup.tier < primary.tier:
        out.append(f"backup_dc is tier {backup.tier}, below the primary's tier {primary.tier}")
    return out


def to_model(tx: Tx, row: DRConfigRow) -> DRConfig:
    primary = tx.session.get(DataCenterRow, (row.project_id, row.primary_dc))
    backup = tx.session.get(DataCenterRow, (row.project_id, row.backup_dc))
    warnings = warnings_for(tx, primary, backup) if primary and backup else []
    return DRConfig(
        id=row.id,
        project=row.project_id,
        name=row.name,
        primary_dc=row.primary_dc,
        backup_dc=row.backup_dc,
        rpo=row.rpo,
        rto=row.rto,
        environment=row.environment,
        failover_mode=row.failover_mode,
        failback_mode=row.failback_mode,
        drill_every_days=row.drill_every_days,
        warnings=warnings,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _check(tx: Tx, spec: DRConfigCreate) -> None:
    for field in ("primary_dc", "backup_dc"):
        dc_id = getattr(spec, field)
        if tx.session.get(DataCenterRow, (tx.project, dc_id)) is None:
            raise InvalidInput.at(field, f"no data center {dc_id!r} in project {tx.project!r}")
    if spec.primary_dc == spec.backup_dc:
        raise InvalidInput.at("backup_dc", "must be a different data center than primary_dc")


def _fill(row: DRConfigRow, spec: DRConfigCreate) -> None:
    row.name, row.primary_dc, row.backup_dc = spec.name, spec.primary_dc, spec.backup_dc
    row.rpo, row.rto, row.environment = spec.rpo, spec.rto, spec.environment.value
    row.failover_mode, row.failback_mode = spec.failover_mode, spec.failback_mode
    # NULL written as such: a plain None would let the column's default (30) fill it in
    row.drill_every_days = spec.drill_every_days if spec.drill_every_days else null()


def create(tx: Tx, data: DRConfigCreate | dict[str, Any]) -> DRConfig:
    tx.actor.require(tx.project, Role.EDITOR)
    spec = validate(DRConfigCreate, data) if isinstance(data, dict) else data
    _check(tx, spec)
    dr_id = choose_id(tx, DRConfigRow, spec.id, "dr", "DR config")
    row = DRConfigRow(project_id=tx.project, id=dr_id)
    _fill(row, spec)
    tx.session.add(row)
    tx.session.flush()
    out = to_model(tx, row)
    tx.record("create", KIND, dr_id, None, out.model_dump(mode="json", exclude={"warnings"}))
    return out


def get(tx: Tx, dr_id: str) -> DRConfig:
    tx.actor.require(tx.project, Role.VIEWER)
    return to_model(tx, get_scoped(tx, DRConfigRow, dr_id, "DR config"))


def list_page(tx: Tx, *, cursor: str | None = None, limit: int | None = None) -> Page[DRConfig]:
    tx.actor.require(tx.project, Role.VIEWER)
    q = select(DRConfigRow).where(DRConfigRow.project_id == tx.project)
    rows, nxt = paged(tx, q, DRConfigRow.id, cursor, limit)
    return Page[DRConfig](items=[to_model(tx, r) for r in rows], next_cursor=nxt)


def update(tx: Tx, dr_id: str, patch: dict[str, Any]) -> DRConfig:
    tx.actor.require(tx.project, Role.EDITOR)
    row = get_scoped(tx, DRConfigRow, dr_id, "DR config")
    before = to_model(tx, row)
    current = before.model_dump(
        mode="json",
        include=set(DRConfigCreate.model_fields),
    )
    spec = merge_patch(DRConfigCreate, current, patch, fixed={"id"})
    _check(tx, spec)
    _fill(row, spec)
    tx.session.flush()
    after = to_model(tx, row)
    tx.record(
        "update",
        KIND,
        dr_id,
        before.model_dump(mode="json", exclude={"warnings"}),
        after.model_dump(mode="json", exclude={"warnings"}),
    )
    return after


def delete(tx: Tx, dr_id: str) -> None:
    tx.actor.require(tx.project, Role.EDITOR)
    row = get_scoped(tx, DRConfigRow, dr_id, "DR config")
    before = to_model(tx, row)
    tx.session.delete(row)
    tx.record("delete", KIND, dr_id, before.model_dump(mode="json", exclude={"warnings"}), None)
