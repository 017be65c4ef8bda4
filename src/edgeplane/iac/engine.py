"""Plan and apply a document in one transaction.

``plan`` and ``apply`` run the same steps: read the live state and the file's desired state in
one write transaction, compute the changes (pure: ``changes``), run them through the services
in dependency order, read the state again and check that every object of the file is now as
the file says (else the apply fails: what a second apply would change is a bug, never left
behind). ``plan`` then rolls the transaction back; ``apply`` commits it, which bumps the
revision once: the edge converges once, and the apply is all or nothing. Running the changes
for the plan too means the plan checks all that the apply will (references, capacity, clashes)
and prices the state after it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from edgeplane.errors import Conflict, EdgeplaneError
from edgeplane.iac import costs, document, registry
from edgeplane.iac.diff import FieldDiff, fields, masked
from edgeplane.iac.document import State
from edgeplane.iac.kind import Context, Item, Kind

ACTIONS = ("create", "update", "replace", "delete")


@dataclass
class Change:
    kind: Kind
    key: str
    action: str  # create | update | replace | delete
    before: Item | None
    after: Item | None
    fields: list[FieldDiff] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def doc(self) -> dict[str, Any]:
        return {
            "section": self.kind.section,
            "kind": self.kind.noun,
            "key": self.key,
            "action": self.action,
            "fields": [f.doc() for f in masked(self.fields, self.kind.secrets)],
            "warnings": self.warnings,
        }


@dataclass
class Result:
    project: str
    changes: list[Change]
    unmanaged: dict[str, int]  # section -> live objects the file leaves alone
    state: str  # the digest of the live state the plan was made on
    revision: int  # the revision it was made on (apply: the one it committed)
    cost_before: costs.Monthly | None
    cost_after: costs.Monthly | None
    applied: bool = False
    desired: State = field(default_factory=dict)  # the file's objects, canonical

    def doc(self) -> dict[str, Any]:
        summary = {a: 0 for a in ACTIONS}
        for c in self.changes:
            summary[c.action] += 1
        warnings = [
            f"{document.where(c.kind, c.key)}: {w}" for c in self.changes for w in c.warnings
        ]
        return {
            "project": self.project,
            "applied": self.applied,
            "revision": self.revision,
            "state": self.state,
            "summary": summary,
            "changes": [c.doc() for c in self.changes],
            "warnings": warnings,
            "unmanaged": self.unmanaged,
            "cost": costs.change(self.cost_before, self.cost_after),
        }


def state_digest(state: State) -> str:
    """A digest of a state: a saved plan is refused when the state it was made on has moved."""
    text = json.dumps(state, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def section_changes(
    kind: Kind, want: dict[str, Item], have: dict[str, Item], *, prune: bool
) -> tuple[list[Change], list[Change]]:
    """What turns one section's live objects into the file's (pure): (creates, replaces and
    updates; deletes)."""
    ahead: list[Change] = []
    for key in sorted(want):
        after, before = want[key], have.get(key)
        if before is None:
            ahead.append(Change(kind, key, "create", None, after, fields({}, after)))
        elif before != after:
            diffs = fields(before, after)
            top = {d.path.split(".")[0].split("[")[0] for d in diffs}
            action = "replace" if top & kind.fixed else "update"
            ahead.append(Change(kind, key, action, before, after, diffs))
    deletes: list[Change] = []
    if prune and not kind.platform:
        for key in sorted(set(have) - set(want)):
            if not kind.exportable(have[key]):  # a shipped region, a domain's own certificate
                continue
            deletes.append(Change(kind, key, "delete", have[key], None, fields(have[key], {})))
    return ahead, deletes


def changes(desired: State, live: State, *, prune: bool) -> list[Change]:
    """What turns ``live`` into ``desired`` (pure), in the order it is applied: creates,
    replaces and updates in the sections' order, then deletes in the reverse order."""
    ahead: list[Change] = []
    deletes: list[Change] = []
    for kind in registry.kinds():
        if kind.section in desired:
            a, d = section_changes(
                kind, desired[kind.section], live.get(kind.section, {}), prune=prune
            )
            ahead += a
            deletes += d
    return ahead + deletes[::-1]


def unmanaged(desired: State, live: State, prune: bool) -> dict[str, int]:
    """Per section of the file, the live objects it leaves alone (not in it, no prune; the
    shipped regions not counted)."""
    out = {}
    for kind in registry.kinds():
        if kind.section not in desired or (prune and not kind.platform):
            continue
        have = {k for k, v in live.get(kind.section, {}).items() if kind.exportable(v)}
        left = len(have - set(desired[kind.section]))
        if left:
            out[kind.section] = left
    return out


def _run(ctx: Context, change: Change) -> None:
    kind = change.kind
    try:
        if change.action == "create":
            assert change.after is not None
            kind.create(ctx, change.after)
        elif change.action == "update":
            assert change.before is not None and change.after is not None
            kind.update(ctx, change.before, change.after)
        elif change.action == "replace":
            assert change.before is not None and change.after is not None
            kind.delete(ctx, change.before)
            ctx.tx.session.flush()  # the old row gone before the new one takes its key
            kind.create(ctx, change.after)
        else:
            assert change.before is not None
            kind.delete(ctx, change.before)
    except EdgeplaneError as exc:
        raise document.located(exc, kind, change.key) from None


def _verify(ctx: Context, desired: State, pending: list[Change]) -> None:
    """Every object of the file is now as the file says; else name what differs."""
    touched = sorted({c.kind.section for c in pending})
    now = document.live(ctx, touched)
    by_section = registry.by_section()
    for section in touched:
        kind = by_section[section]
        for key, want in desired.get(section, {}).items():
            have = now[section].get(key)
            if have != want:
                diffs = masked(fields(have or {}, want), kind.secrets)
                shown = "; ".join(f"{d.path}: {d.before!r} -> {d.after!r}" for d in diffs[:5])
                raise Conflict(
                    f"{document.where(kind, key)}: after the changes it still differs from the "
                    f"file ({shown}); the file asks for what the service stores differently"
                )


def run(
    ctx: Context, doc: dict[str, Any], *, prune: bool, expect_state: str | None = None
) -> Result:
    """Plan ``doc`` against the live state and run the changes in ``ctx.tx`` (the caller
    commits for an apply, rolls back for a plan). Every item is validated first; then each
    section is made canonical and its creates and updates run, in the sections' order (a data
    center may be in a region the file creates), against the section as the earlier ones left
    it (a domain added may bring its certificate); deletes run last, in reverse order.
    ``expect_state``: a saved plan's state digest; the run is refused if the state moved."""
    items = document.validated(doc)
    live = document.live(ctx)
    digest = state_digest(live)
    if expect_state is not None and expect_state != digest:
        raise Conflict(
            "the state has changed since this plan was made: make a new plan",
            field="plan",
        )
    before = costs.monthly(ctx)
    desired: State = {}
    ahead: list[Change] = []
    deletes: list[Change] = []
    for kind in registry.kinds():
        if kind.section not in items:
            continue
        desired[kind.section] = document.canonical(ctx, kind, items[kind.section])
        have = live.get(kind.section, {})
        if ahead:  # what the earlier sections' changes made here (a domain's certificate)
            have = {kind.key_of(i): i for i in kind.read(ctx)}
        run_now, later = section_changes(kind, desired[kind.section], have, prune=prune)
        for change in run_now:
            change.warnings = kind.warnings(ctx, change.action, change.before, change.after)
            _run(ctx, change)
        ahead += run_now
        deletes += later
    deletes.reverse()
    for change in deletes:
        change.warnings = change.kind.warnings(ctx, change.action, change.before, change.after)
        _run(ctx, change)
    pending = ahead + deletes
    _verify(ctx, desired, pending)
    return Result(
        project=ctx.tx.project,
        changes=pending,
        unmanaged=unmanaged(desired, live, prune),
        state=digest,
        revision=ctx.tx.current_revision(),
        cost_before=before if pending else None,
        cost_after=costs.monthly(ctx) if pending else None,
        desired=desired,
    )
