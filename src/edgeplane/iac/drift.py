"""Drift: what changed in the live state since the newest apply, and who changed it.

The newest apply's desired state (``iac_applies.state``, canonical) is compared with the live
state, section by section, for the sections the file managed: an object of the file that now
differs (``changed``, with its fields), that is gone (``deleted``), or an object created in a
managed section since the apply (``added``). Who did it comes from the audit log: the events
on that object after the apply's revision. The plan compares canonical forms, so an object no
one touched never shows as drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select

from edgeplane.iac import document, registry
from edgeplane.iac.diff import fields, masked
from edgeplane.iac.kind import Context, Kind
from edgeplane.store.iac_tables import IacApplyRow
from edgeplane.store.tables import AuditRow


@dataclass
class Drifted:
    kind: Kind
    key: str
    change: str  # changed | deleted | added
    fields: list[dict[str, Any]]
    by: list[dict[str, Any]] = field(default_factory=list)  # audit events since the apply

    def doc(self) -> dict[str, Any]:
        return {
            "section": self.kind.section,
            "kind": self.kind.noun,
            "key": self.key,
            "change": self.change,
            "fields": self.fields,
            "changed_by": self.by,
        }


def _events(ctx: Context, since: int) -> list[AuditRow]:
    tx = ctx.tx
    return list(
        tx.session.scalars(
            select(AuditRow)
            .where(
                AuditRow.revision > since,
                AuditRow.action != "reveal",  # reads of secrets change nothing
                or_(AuditRow.project_id == tx.project, AuditRow.project_id.is_(None)),
            )
            .order_by(AuditRow.id)
        )
    )


def compare(ctx: Context, applied: IacApplyRow) -> list[Drifted]:
    """Every object changed since ``applied``, with the audit events that changed it."""
    wanted: dict[str, dict[str, Any]] = applied.state
    live = document.live(ctx, sorted(wanted))
    kinds = registry.by_section()
    events = _events(ctx, applied.revision)
    out: list[Drifted] = []
    for section in sorted(wanted, key=lambda s: list(kinds).index(s) if s in kinds else 99):
        kind = kinds.get(section)
        if kind is None:
            continue
        want, have = wanted[section], live.get(section, {})
        for key in sorted(set(want) | set(have)):
            before, now = want.get(key), have.get(key)
            if before == now:
                continue
            by = [
                {
                    "actor": e.actor,
                    "action": e.action,
                    "at": e.at.isoformat(),
                    "revision": e.revision,
                }
                for e in events
                if kind.audit_matches(key, e.kind, e.object_id)
            ]
            if before is None:
                if not by:  # left alone by the file before the apply, untouched since
                    continue
                change = "added"
            else:
                change = "deleted" if now is None else "changed"
            diffs = masked(fields(before or {}, now or {}), kind.secrets)
            out.append(Drifted(kind, key, change, [d.doc() for d in diffs], by))
    return out
