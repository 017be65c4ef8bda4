"""The record of applies: what the newest apply of a project made its desired state."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from edgeplane.iac.document import State
from edgeplane.store.db import Tx
from edgeplane.store.iac_tables import IacApplyRow


def without_values(doc: Any) -> Any:
    """The document with every resolved secret's value taken out (references stay)."""
    if isinstance(doc, dict):
        is_ref = ("env" in doc or "file" in doc) and set(doc) <= {"env", "file", "value"}
        return {k: without_values(v) for k, v in doc.items() if not (is_ref and k == "value")}
    if isinstance(doc, list):
        return [without_values(v) for v in doc]
    return doc


def record(
    tx: Tx,
    *,
    revision: int,
    document: dict[str, Any],
    state: State,
    source: dict[str, Any] | None,
    environment: str | None,
    summary: dict[str, Any],
) -> IacApplyRow:
    row = IacApplyRow(
        project_id=tx.project,
        revision=revision,
        actor=tx.actor.name,
        environment=environment,
        document=without_values(document),
        state=state,
        source=without_values(source) if source is not None else None,
        summary=summary,
    )
    tx.session.add(row)
    tx.session.flush()
    return row


def latest(tx: Tx, project: str | None = None) -> IacApplyRow | None:
    return tx.session.scalars(
        select(IacApplyRow)
        .where(IacApplyRow.project_id == (project or tx.project))
        .order_by(IacApplyRow.id.desc())
        .limit(1)
    ).first()


def history(tx: Tx, limit: int = 20) -> list[IacApplyRow]:
    return list(
        tx.session.scalars(
            select(IacApplyRow)
            .where(IacApplyRow.project_id == tx.project)
            .order_by(IacApplyRow.id.desc())
            .limit(limit)
        )
    )
