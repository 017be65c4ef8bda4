"""The audit trail: who changed what, with the object before and after."""

from __future__ import annotations

import re

from sqlalchemy import select

from edgeplane.errors import InvalidInput
from edgeplane.model.access import AuditEvent
from edgeplane.model.common import Page
from edgeplane.model.enums import Role
from edgeplane.store.db import Tx
from edgeplane.store.tables import AuditRow

# An event id, as next_cursor gives it (at most 18 digits: it fits the id column); empty or
# left out for the first page.
CURSOR_PATTERN = r"^[0-9]{0,18}$"


def list_events(
    tx: Tx,
    *,
    kind: str | None = None,
    object_id: str | None = None,
    include_global: bool = False,
    cursor: str | None = None,
    limit: int = 100,
) -> Page[AuditEvent]:
    """Newest first; ``cursor`` is the id of the last event of the previous page."""
    tx.actor.require(tx.project, Role.VIEWER)
    if not 1 <= limit <= 1000:
        raise InvalidInput.at("limit", "must be between 1 and 1000")
    q = select(AuditRow)
    if include_global and tx.actor.platform_admin:
        q = q.where((AuditRow.project_id == tx.project) | (AuditRow.project_id.is_(None)))
    else:
        q = q.where(AuditRow.project_id == tx.project)
    if kind:
        q = q.where(AuditRow.kind == kind)
    if object_id:
        q = q.where(AuditRow.object_id == object_id)
    if cursor:
        if not re.fullmatch(CURSOR_PATTERN, cursor):
            raise InvalidInput.at("cursor", "must be an event id")
        q = q.where(AuditRow.id < int(cursor))
    rows = list(tx.session.scalars(q.order_by(AuditRow.id.desc()).limit(limit + 1)))
    nxt = None
    if len(rows) > limit:
        rows = rows[:limit]
        nxt = str(rows[-1].id)
    items = [
        AuditEvent(
            id=r.id,
            revision=r.revision,
            at=r.at,
            actor=r.actor,
            project=r.project_id,
            action=r.action,
            kind=r.kind,
            object_id=r.object_id,
            before=r.before,
            after=r.after,
        )
        for r in rows
    ]
    return Page[AuditEvent](items=items, next_cursor=nxt)
