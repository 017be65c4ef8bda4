"""The entry points: export, plan, apply, drift, as the REST API, the SDK and the CLI call them.

``plan`` runs the changes in a transaction it rolls back; ``apply`` holds the project's apply
lock, runs them, records the apply and commits, all or nothing. The document's ``project``, when
it names one, must be the project asked for.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from edgeplane.errors import InvalidInput
from edgeplane.iac import applied, document, drift, engine, secret
from edgeplane.iac.kind import Context
from edgeplane.iac.lock import held
from edgeplane.model.enums import Role
from edgeplane.services import access
from edgeplane.settings import Settings
from edgeplane.store.actor import Actor
from edgeplane.store.db import Database, Tx
from edgeplane.store.iac_tables import IacDriftRow


class _DryRun(Exception):
    def __init__(self, result: engine.Result) -> None:
        self.result = result


def digest_key(tx: Tx) -> bytes | None:
    """The key of the secrets' digests, from the control plane's secret key when it has one."""
    try:
        return tx.secrets.derive("iac-digest")
    except RuntimeError:  # a database opened without a secret box: no secret can be stored
        return None


def _check_project(doc: dict[str, Any], project: str) -> None:
    named = doc.get("project")
    if named is not None and named != project:
        raise InvalidInput.at(
            "project",
            f"the file is for project {named!r}, the request for {project!r}: "
            "leave --project out or make them agree",
        )


def export(db: Database, actor: Actor, project: str, settings: Settings) -> dict[str, Any]:
    """The project's live state as a document."""
    with db.read(actor, project) as tx:
        access.require_project(tx)
        tx.actor.require(project, Role.VIEWER)
        with secret.keyed(digest_key(tx)):
            return document.exported(document.live(Context(tx, settings)), project)


def plan(
    db: Database,
    actor: Actor,
    project: str,
    settings: Settings,
    doc: dict[str, Any],
    *,
    prune: bool = False,
) -> engine.Result:
    """What applying ``doc`` would change; nothing is written.

    A viewer may plan: the changes run as an editor of the project would run them, in a
    transaction that is always rolled back (a platform object, such as a region, still needs
    a platform admin)."""
    _check_project(doc, project)
    actor.require(project, Role.VIEWER)
    role = actor.role_in(project)
    if role is not None and not role.allows(Role.EDITOR):
        actor = replace(actor, roles={**actor.roles, project: Role.EDITOR})
    try:
        with db.transaction(actor, project) as tx:
            access.require_project(tx)
            with secret.keyed(digest_key(tx)):
                result = engine.run(Context(tx, settings), doc, prune=prune)
            raise _DryRun(result)
    except _DryRun as done:
        return done.result


def apply(
    db: Database,
    actor: Actor,
    project: str,
    settings: Settings,
    doc: dict[str, Any],
    *,
    prune: bool = False,
    expect_state: str | None = None,
    source: dict[str, Any] | None = None,
    environment: str | None = None,
    lock_timeout_s: float = 0.0,
) -> engine.Result:
    """Apply ``doc``: all or nothing, one revision; recorded for drift and promote."""
    _check_project(doc, project)
    with db.read(actor, project) as tx:
        access.require_project(tx)
        tx.actor.require(project, Role.EDITOR)
    with held(db, actor, project, lock_timeout_s), db.transaction(actor, project) as tx:
        ctx = Context(tx, settings, db=db)
        with secret.keyed(digest_key(tx)):
            result = engine.run(ctx, doc, prune=prune, expect_state=expect_state)
        revision = tx.next_revision() if result.changes else tx.current_revision()
        applied.record(
            tx,
            revision=revision,
            document=doc,
            state=result.desired,
            source=source,
            environment=environment,
            summary=result.doc()["summary"],
        )
        if drift_row := tx.session.get(IacDriftRow, project):
            tx.session.delete(drift_row)
    result.applied = True
    result.revision = revision
    for work in ctx.later:
        work()
    return result


def drift_report(db: Database, actor: Actor, project: str, settings: Settings) -> dict[str, Any]:
    """The objects changed since the newest apply and who changed them."""
    with db.read(actor, project) as tx:
        access.require_project(tx)
        tx.actor.require(project, Role.VIEWER)
        last = applied.latest(tx)
        if last is None:
            return {"project": project, "applied": None, "drifted": []}
        with secret.keyed(digest_key(tx)):
            found = drift.compare(Context(tx, settings), last)
        return {
            "project": project,
            "applied": applied_view(last, with_document=False),
            "drifted": [d.doc() for d in found],
        }


def applied_view(row: Any, *, with_document: bool = True) -> dict[str, Any]:
    view = {
        "id": row.id,
        "project": row.project_id,
        "revision": row.revision,
        "applied_at": row.applied_at.isoformat(),
        "actor": row.actor,
        "environment": row.environment,
        "summary": row.summary,
    }
    if with_document:
        view |= {"document": row.document, "source": row.source}
    return view


def latest_applied(db: Database, actor: Actor, project: str) -> dict[str, Any] | None:
    with db.read(actor, project) as tx:
        access.require_project(tx)
        tx.actor.require(project, Role.VIEWER)
        last = applied.latest(tx)
        return applied_view(last) if last is not None else None
