"""Reading edge functions: rows to models (secrets by name only), the current version, pages."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from edgeplane.errors import InvalidInput, NotFound
from edgeplane.model.common import Page
from edgeplane.model.enums import Role
from edgeplane.model.functions import (
    LIVE_STATUSES,
    NAME_PATTERN,
    EdgeFunction,
    FunctionLimits,
    FunctionRoute,
    FunctionVersion,
    FunctionVersionDetail,
)
from edgeplane.services import function_rollouts
from edgeplane.services.common import paged
from edgeplane.services.rollouts import NodeView
from edgeplane.store.db import Tx
from edgeplane.store.function_tables import FunctionRow, FunctionVersionRow

_NAME = re.compile(NAME_PATTERN)
CURSOR_PATTERN = r"^[0-9]{0,9}$"
_CURSOR = re.compile(CURSOR_PATTERN)


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidInput.at(
            "name",
            "lower-case letters, digits and '-', 1-63 characters, starting and ending with a "
            "letter or digit",
        )
    return name


def function_row(tx: Tx, name: str) -> FunctionRow:
    row = tx.session.get(FunctionRow, (tx.project, check_name(name)))
    if row is None:
        raise NotFound(f"function {name!r} not found in project {tx.project!r}")
    return row


def version_row(tx: Tx, name: str, version: int) -> FunctionVersionRow:
    function_row(tx, name)
    row = tx.session.scalar(
        select(FunctionVersionRow).where(
            FunctionVersionRow.project_id == tx.project,
            FunctionVersionRow.name == name,
            FunctionVersionRow.version == version,
        )
    )
    if row is None:
        raise NotFound(f"function {name!r} has no version {version}")
    return row


def current_row(tx: Tx, name: str) -> FunctionVersionRow | None:
    """The version being rolled out, else the active one."""
    rows = list(
        tx.session.scalars(
            select(FunctionVersionRow).where(
                FunctionVersionRow.project_id == tx.project,
                FunctionVersionRow.name == name,
                FunctionVersionRow.status.in_(LIVE_STATUSES),
            )
        )
    )
    rows.sort(key=lambda r: (r.status == "active", -r.version))
    return rows[0] if rows else None


def active_row(tx: Tx, name: str) -> FunctionVersionRow | None:
    return tx.session.scalar(
        select(FunctionVersionRow).where(
            FunctionVersionRow.project_id == tx.project,
            FunctionVersionRow.name == name,
            FunctionVersionRow.status == "active",
        )
    )


def newest_row(tx: Tx, name: str) -> FunctionVersionRow | None:
    return tx.session.scalar(
        select(FunctionVersionRow)
        .where(FunctionVersionRow.project_id == tx.project, FunctionVersionRow.name == name)
        .order_by(FunctionVersionRow.version.desc())
        .limit(1)
    )


def to_version(row: FunctionVersionRow, nodes: list[NodeView] | None = None) -> FunctionVersion:
    return FunctionVersion(
        id=row.id,
        name=row.name,
        version=row.version,
        sha256=row.sha256,
        size=row.size,
        routes=[FunctionRoute.model_validate(r) for r in row.routes or ()],
        env=dict(row.env or {}),
        secrets=sorted(row.secret_names or ()),
        limits=FunctionLimits.model_validate(row.limits or {}),
        check_path=row.check_path,
        message=row.message,
        status=row.status,
        canary_node=row.canary_node,
        error=row.error,
        reactivates=row.reactivates,
        regions=sorted(row.regions or ()),
        progress=function_rollouts.progress(row, nodes) if nodes is not None else [],
        created_at=row.created_at,
        created_by=row.created_by,
        activated_at=row.activated_at,
        finished_at=row.finished_at,
    )


def to_detail(
    row: FunctionVersionRow, nodes: list[NodeView] | None = None
) -> FunctionVersionDetail:
    return FunctionVersionDetail(**to_version(row, nodes).model_dump(), code=row.code)


def version_with_progress(tx: Tx, row: FunctionVersionRow) -> FunctionVersion:
    return to_version(row, function_rollouts.node_views(tx, row.project_id, row.name))


def version_count(tx: Tx, name: str) -> int:
    count = tx.session.scalar(
        select(func.count())
        .select_from(FunctionVersionRow)
        .where(FunctionVersionRow.project_id == tx.project, FunctionVersionRow.name == name)
    )
    return int(count or 0)


def to_function(tx: Tx, row: FunctionRow, *, progress: bool = True) -> EdgeFunction:
    current = current_row(tx, row.name)
    active = active_row(tx, row.name)
    count = version_count(tx, row.name)
    shown = None
    if current is not None:
        shown = version_with_progress(tx, current) if progress else to_version(current)
    return EdgeFunction(
        name=row.name,
        current=shown,
        active_version=active.version if active is not None else None,
        versions=count,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def list_functions(
    tx: Tx, cursor: str | None = None, limit: int | None = None
) -> Page[EdgeFunction]:
    tx.actor.require(tx.project, Role.VIEWER)
    query = select(FunctionRow).where(FunctionRow.project_id == tx.project)
    rows, next_cursor = paged(tx, query, FunctionRow.name, cursor, limit)
    return Page[EdgeFunction](
        items=[to_function(tx, r, progress=False) for r in rows], next_cursor=next_cursor
    )


def get(tx: Tx, name: str) -> EdgeFunction:
    tx.actor.require(tx.project, Role.VIEWER)
    return to_function(tx, function_row(tx, name))


def list_versions(
    tx: Tx, name: str, cursor: str | None = None, limit: int | None = None
) -> Page[FunctionVersion]:
    """The function's versions, newest first (``cursor``: a version number)."""
    tx.actor.require(tx.project, Role.VIEWER)
    function_row(tx, name)
    after: int | None = None
    if cursor:
        if not _CURSOR.fullmatch(cursor):
            raise InvalidInput.at("cursor", "must be the next_cursor of the previous page")
        after = int(cursor)
    query = select(FunctionVersionRow).where(
        FunctionVersionRow.project_id == tx.project, FunctionVersionRow.name == name
    )
    rows, next_cursor = paged(
        tx, query, FunctionVersionRow.version, after, limit, newest_first=True
    )
    return Page[FunctionVersion](items=[to_version(r) for r in rows], next_cursor=next_cursor)


def get_version(tx: Tx, name: str, version: int) -> FunctionVersionDetail:
    """One version with its code and its progress per region."""
    tx.actor.require(tx.project, Role.VIEWER)
    row = version_row(tx, name, version)
    return to_detail(row, function_rollouts.node_views(tx, row.project_id, row.name))
