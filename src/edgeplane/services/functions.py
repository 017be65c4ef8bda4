"""Edge functions: deploying versions, activating an earlier one, rolling back, deleting, and
checking code; the reads (``get``, ``get_version``, ``list_functions``, ``list_versions``)
are ``edgeplane.services.function_views``'s, named here too.

``deploy`` resolves what the body leaves out from the function's current version (secrets
included; ``secrets: {"K": null}`` removes one), and answers the current version itself
(``created=False``) when the content is the same: code, routes, env, secrets, limits and
check path, hashed into the version's ``sha256`` (each secret as a keyed digest, never its
value). A new version is refused when its code does not compile (422 on ``code`` with the
line and column), a route's host is not a domain of the project (422) or a route overlaps one
of another function (409); it starts as ``canary`` and ``edgeplane.services.function_rollouts``
takes it from there. Secrets are stored encrypted (one JSON object per version) and never
answered, logged or audited: the API and the audit trail name them only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select

from edgeplane.errors import Conflict, EdgeplaneError, InvalidInput
from edgeplane.model.common import new_id
from edgeplane.model.enums import Role
from edgeplane.model.functions import (
    CodeCheck,
    CodeRequest,
    FunctionDeploy,
    FunctionDeployed,
    FunctionLimits,
    FunctionRoute,
)
from edgeplane.services import function_rollouts, function_routes
from edgeplane.services import function_views as views
from edgeplane.services.common import lock_name, validate
from edgeplane.services.function_views import get as get
from edgeplane.services.function_views import get_version as get_version
from edgeplane.services.function_views import list_functions as list_functions
from edgeplane.services.function_views import list_versions as list_versions
from edgeplane.store.db import Tx
from edgeplane.store.function_obs_tables import FunctionHourRow, FunctionLogRow, FunctionMinuteRow
from edgeplane.store.function_tables import FunctionRow, FunctionVersionRow
from edgeplane.store.tables import utcnow

KIND = function_rollouts.KIND
SECRET_DIGEST = "function secret digests"


# Checking code ------------------------------------------------------------------------------


class CheckUnavailable(EdgeplaneError):
    """The runtime's check could not run here (no Node.js or runtime on this control plane)."""

    status = 503
    type_slug = "check-unavailable"
    title = "Code check unavailable"


def check_code(code: str) -> CodeCheck:
    """Whether ``code`` compiles as a function module (the runtime's own check)."""
    from edgeplane.node.functions.process import check_code as runtime_check

    try:
        result = runtime_check(code)
    except OSError as exc:
        raise CheckUnavailable(
            "the functions runtime's code check cannot run on this control plane "
            f"({exc.strerror or exc}): install Node.js and the runtime (scripts/bootstrap)"
        ) from None
    return CodeCheck(
        ok=bool(result.ok), line=result.line, column=result.column, message=result.message or ""
    )


def check(tx: Tx, data: CodeRequest | dict[str, Any]) -> CodeCheck:
    """``POST /functions/check``: the check's answer, whether the code is good or not."""
    tx.actor.require(tx.project, Role.VIEWER)
    body = data if isinstance(data, CodeRequest) else validate(CodeRequest, data)
    return check_code(body.code)


def _require_compiles(code: str) -> None:
    result = check_code(code)
    if result.ok:
        return
    where = ""
    if result.line is not None:
        where = f"line {result.line}" + (
            f", column {result.column}" if result.column is not None else ""
        )
        where += ": "
    raise InvalidInput.at("code", f"{where}{result.message or 'the code does not compile'}")


# Content ------------------------------------------------------------------------------------


def content_sha256(
    tx: Tx,
    code: str,
    routes: list[FunctionRoute],
    env: dict[str, str],
    secrets: dict[str, str],
    limits: FunctionLimits,
    check_path: str | None,
) -> str:
    """The version's identity: a canonical JSON of its content, each secret as an HMAC under a
    key derived from the keyring (the hash is shown to readers, who must not be able to guess
    a secret from it)."""
    key = tx.secrets.derive(SECRET_DIGEST)
    doc = {
        "code": code,
        "routes": [r.model_dump(mode="json") for r in routes],
        "env": env,
        "secrets": {
            k: hmac.new(key, v.encode(), hashlib.sha256).hexdigest() for k, v in secrets.items()
        },
        "limits": limits.model_dump(mode="json"),
        "check_path": check_path,
    }
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def stored_secrets(tx: Tx, row: FunctionVersionRow | None) -> dict[str, str]:
    if row is None or not row.secrets_encrypted:
        return {}
    value = json.loads(tx.secrets.decrypt(row.secrets_encrypted))
    assert isinstance(value, dict)
    return {str(k): str(v) for k, v in value.items()}


class _Resolved:
    """A deploy's content: the body's fields, the rest from the base version."""

    def __init__(self, tx: Tx, body: FunctionDeploy, base: FunctionVersionRow | None) -> None:
        if body.routes is not None:
            self.routes = list(body.routes)
        elif base is not None:
            self.routes = [FunctionRoute.model_validate(r) for r in base.routes or ()]
        else:
            raise InvalidInput.at("routes", "required on the first deploy of a function")
        self.env = dict(body.env if body.env is not None else (base.env if base else {}) or {})
        self.secrets = stored_secrets(tx, base)
        for k, v in (body.secrets or {}).items():
            if v is None:
                self.secrets.pop(k, None)
            else:
                self.secrets[k] = v
        limits = dict(base.limits or {}) if base is not None else {}
        if body.limits is not None:
            limits |= body.limits.model_dump(include=body.limits.model_fields_set)
        self.limits = validate(FunctionLimits, limits, "limits")
        if body.check_path is None:
            self.check_path = base.check_path if base is not None else None
        else:
            self.check_path = body.check_path or None
        both = sorted(set(self.env) & set(self.secrets))
        if both:
            given = body.secrets is not None and both[0] in body.secrets
            field = f"secrets.{both[0]}" if given else f"env.{both[0]}"
            raise InvalidInput.at(field, "a variable is either in env or in secrets, not both")


# Writing ------------------------------------------------------------------------------------


def _next_version(tx: Tx, name: str) -> int:
    top = tx.session.scalar(
        select(func.max(FunctionVersionRow.version)).where(
            FunctionVersionRow.project_id == tx.project, FunctionVersionRow.name == name
        )
    )
    return int(top or 0) + 1


def _audit_view(row: FunctionVersionRow) -> dict[str, Any]:
    return {
        "version": row.version,
        "sha256": row.sha256,
        "routes": row.routes,
        "env": sorted((row.env or {}).keys()),
        "secrets": sorted(row.secret_names or ()),  # names only, never values
        "limits": row.limits,
        "check_path": row.check_path,
        "status": row.status,
    }


def _deployed(tx: Tx, fn: FunctionRow, row: FunctionVersionRow, created: bool) -> FunctionDeployed:
    return FunctionDeployed(
        function=views.to_function(tx, fn, progress=False),
        version=views.version_with_progress(tx, row),
        created=created,
    )


def deploy(tx: Tx, name: str, data: FunctionDeploy | dict[str, Any]) -> FunctionDeployed:
    """A new version of function ``name`` (made on the first deploy), rolled out from a
    canary node; the current version itself when the content is unchanged."""
    tx.actor.require(tx.project, Role.EDITOR)
    views.check_name(name)
    body = data if isinstance(data, FunctionDeploy) else validate(FunctionDeploy, data)
    lock_name(tx, "functions", tx.project, name)
    fn = tx.session.get(FunctionRow, (tx.project, name))
    live = views.current_row(tx, name) if fn is not None else None
    base = live or (views.newest_row(tx, name) if fn is not None else None)
    content = _Resolved(tx, body, base)
    sha = content_sha256(
        tx, body.code, content.routes, content.env, content.secrets, content.limits,
        content.check_path,
    )  # fmt: skip
    if fn is not None and live is not None and live.sha256 == sha:
        return _deployed(tx, fn, live, created=False)
    function_routes.check_duplicates(content.routes)
    function_routes.check_hosts(tx, content.routes)
    _require_compiles(body.code)
    function_routes.check_overlap(tx, name, content.routes)
    regions, canary = function_rollouts.placement(tx)
    now = utcnow()
    if fn is None:
        fn = FunctionRow(project_id=tx.project, name=name, created_at=now, updated_at=now)
        tx.session.add(fn)
        tx.session.flush()
    else:
        fn.updated_at = now
    version = _next_version(tx, name)
    function_rollouts.cancel_in_progress(tx, name, version, now)
    row = FunctionVersionRow(
        id=new_id("fnv"),
        project_id=tx.project,
        name=name,
        version=version,
        code=body.code,
        sha256=sha,
        size=len(body.code.encode()),
        routes=[r.model_dump(mode="json") for r in content.routes],
        env=content.env,
        secrets_encrypted=(
            tx.secrets.encrypt(json.dumps(content.secrets, sort_keys=True))
            if content.secrets
            else None
        ),
        secret_names=sorted(content.secrets),
        limits=content.limits.model_dump(mode="json"),
        check_path=content.check_path,
        message=body.message,
        status="canary",
        canary_node=canary,
        regions=regions,
        phase_at=now,
        changed_revision=tx.next_revision(),
        created_at=now,
        created_by=tx.actor.name,
    )
    tx.session.add(row)
    tx.session.flush()
    tx.record("create", KIND, name, None, _audit_view(row))
    return _deployed(tx, fn, row, created=True)


def activate(tx: Tx, name: str, version: int) -> FunctionDeployed:
    """Make version ``version`` current again: a new version with its content, on every
    capable node of the regions at once (no canary: it was checked when it first went out)."""
    tx.actor.require(tx.project, Role.EDITOR)
    old = views.version_row(tx, name, version)
    if old.status in ("canary", "rolling"):
        raise Conflict(f"version {old.version} is being rolled out already")
    if old.status == "active":
        raise Conflict(f"version {old.version} is the active version already")
    if old.activated_at is None:
        raise Conflict(
            f"version {old.version} was never active ({old.status}): only a version that was "
            "active goes out again at once; deploy its code anew instead"
        )
    routes = [FunctionRoute.model_validate(r) for r in old.routes or ()]
    function_routes.check_overlap(tx, name, routes)
    regions, _canary = function_rollouts.placement(tx)
    fn = views.function_row(tx, name)
    now = utcnow()
    fn.updated_at = now
    new = _next_version(tx, name)
    function_rollouts.cancel_in_progress(tx, name, new, now)
    row = FunctionVersionRow(
        id=new_id("fnv"),
        project_id=tx.project,
        name=name,
        version=new,
        code=old.code,
        sha256=old.sha256,
        size=old.size,
        routes=list(old.routes or ()),
        env=dict(old.env or {}),
        secrets_encrypted=old.secrets_encrypted,
        secret_names=list(old.secret_names or ()),
        limits=dict(old.limits or {}),
        check_path=old.check_path,
        message=f"version {old.version} again",
        status="rolling",
        canary_node=None,
        regions=regions,
        phase_at=now,
        reactivates=old.id,
        changed_revision=tx.next_revision(),
        created_at=now,
        created_by=tx.actor.name,
    )
    tx.session.add(row)
    tx.session.flush()
    tx.record("create", KIND, name, None, {**_audit_view(row), "reactivates": old.version})
    return _deployed(tx, fn, row, created=True)


def rollback(tx: Tx, name: str) -> FunctionDeployed:
    """Activate the newest earlier version that was active and differs from the active one."""
    tx.actor.require(tx.project, Role.EDITOR)
    views.function_row(tx, name)
    active = views.active_row(tx, name)
    if active is None:
        raise Conflict(f"function {name!r} has no active version to roll back")
    earlier = tx.session.scalar(
        select(FunctionVersionRow)
        .where(
            FunctionVersionRow.project_id == tx.project,
            FunctionVersionRow.name == name,
            FunctionVersionRow.status == "superseded",
            FunctionVersionRow.activated_at.is_not(None),
            FunctionVersionRow.version < active.version,
            FunctionVersionRow.sha256 != active.sha256,
        )
        .order_by(FunctionVersionRow.version.desc())
        .limit(1)
    )
    if earlier is None:
        raise Conflict(f"function {name!r} has no earlier version that was active to roll back to")
    return activate(tx, name, earlier.version)


def delete(tx: Tx, name: str) -> None:
    """Remove the function, every version of it and what the nodes observed of it (its
    invocations and console lines: a new function of the same name starts with none). Nodes
    drop it at their next snapshot."""
    tx.actor.require(tx.project, Role.EDITOR)
    fn = views.function_row(tx, name)
    current = views.current_row(tx, name)
    count = views.version_count(tx, name)
    tx.session.execute(
        sql_delete(FunctionVersionRow).where(
            FunctionVersionRow.project_id == tx.project, FunctionVersionRow.name == name
        )
    )
    for table in (FunctionMinuteRow, FunctionHourRow, FunctionLogRow):
        tx.session.execute(
            sql_delete(table).where(table.project_id == tx.project, table.name == name)
        )
    tx.session.delete(fn)
    tx.session.flush()
    before: dict[str, Any] = {"versions": count}
    if current is not None:
        before["version"] = current.version
    tx.record("delete", KIND, name, before, None)
