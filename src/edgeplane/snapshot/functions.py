"""Which edge function versions a node runs: read from the database (``load_functions``) and
chosen per node (``node_functions``, pure), as ``load_deployments`` and ``node_bundles`` do
for static bundles.

Per function, a node runs:

- the ``canary`` version when it is that version's canary node;
- else the ``rolling`` version when the node is in one of its regions;
- else the ``active`` version (on every node: a function is part of its site, which every
  node serves; a version's regions bound its rollout only).

A ``failed`` or ``cancelled`` version is named nowhere, so nodes go back to the active one.
Only nodes that can run functions get any (``runs_functions``: the capability and protocol
version 3); a site's functions are left out for the others, whose requests go to the site's
static bundle or origin as before.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgeplane.protocol.config import FunctionRouteSpec, FunctionSpec, NodeSpec
from edgeplane.secrets import SecretBox
from edgeplane.store.function_tables import FunctionVersionRow
from edgeplane.store.tables import DomainRow

FUNCTIONS_PROTOCOL = 3  # the edge protocol version that added functions
LIVE = ("canary", "rolling", "active")


@dataclass(frozen=True)
class FunctionState:
    """A live version (canary, rolling or active) of a project's function, secrets decrypted."""

    project: str
    name: str
    id: str
    version: int
    sha256: str
    status: str
    regions: tuple[str, ...] = ()
    canary_node: str | None = None
    code: str = field(default="", repr=False)
    env: tuple[tuple[str, str], ...] = ()
    secrets: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    timeout_ms: int = 5000
    memory_mb: int = 128
    routes: tuple[FunctionRouteSpec, ...] = ()
    hosts: tuple[str, ...] = ()  # the project's active domains
    check_path: str | None = None

    @property
    def key(self) -> str:
        return f"{self.project}/{self.name}"


def runs_functions(protocol: int | None, capable: bool | None) -> bool:
    """Whether a node of this protocol version and capability gets functions."""
    return bool(capable) and (protocol or 1) >= FUNCTIONS_PROTOCOL


def spec_of(state: FunctionState) -> FunctionSpec:
    return FunctionSpec(
        site=state.project,
        name=state.name,
        version=state.version,
        id=state.id,
        sha256=state.sha256,
        code=state.code,
        env=dict(state.env),
        secrets=dict(state.secrets),
        timeout_ms=state.timeout_ms,
        memory_mb=state.memory_mb,
        routes=state.routes,
        hosts=state.hosts,
        check_path=state.check_path,
    )


def node_functions(
    node: NodeSpec, versions: Iterable[FunctionState], *, capable: bool
) -> tuple[FunctionSpec, ...]:
    """The function versions ``node`` runs, sorted by (project, name); none unless
    ``capable`` (``runs_functions`` of the node)."""
    if not capable:
        return ()
    every = list(versions)
    chosen: dict[tuple[str, str], FunctionState] = {}
    for v in every:
        if v.status == "active":
            chosen.setdefault((v.project, v.name), v)
    for v in every:
        rolling = v.status == "rolling" and node.region in v.regions
        if rolling or (v.status == "canary" and v.canary_node == node.id):
            chosen[(v.project, v.name)] = v
    return tuple(spec_of(v) for _, v in sorted(chosen.items()))


def _routes(raw: list[dict[str, object]] | None) -> tuple[FunctionRouteSpec, ...]:
    out: list[FunctionRouteSpec] = []
    for r in raw or ():
        pattern = str(r.get("pattern") or "")
        host, _, rest = pattern.partition("/")
        methods = r.get("methods") or ()
        assert isinstance(methods, list | tuple)
        out.append(
            FunctionRouteSpec(host=host, path="/" + rest, methods=tuple(str(m) for m in methods))
        )
    return tuple(out)


def load_functions(
    session: Session, box: SecretBox, project: str | None = None
) -> tuple[FunctionState, ...]:
    """The live versions of every project's functions (of ``project`` only when given),
    secrets decrypted with ``box`` (cached by it), sorted by (project, name, version)."""
    query = select(FunctionVersionRow).where(FunctionVersionRow.status.in_(LIVE))
    if project is not None:
        query = query.where(FunctionVersionRow.project_id == project)
    rows = list(session.scalars(query))
    if not rows:
        return ()
    projects = {r.project_id for r in rows}
    hosts: dict[str, list[str]] = {}
    for name, owner in session.execute(
        select(DomainRow.name, DomainRow.project_id).where(
            DomainRow.project_id.in_(projects), DomainRow.status == "active"
        )
    ):
        hosts.setdefault(owner, []).append(name)
    out: list[FunctionState] = []
    for r in rows:
        secrets: dict[str, str] = {}
        if r.secrets_encrypted:
            secrets = json.loads(box.decrypt(r.secrets_encrypted))
        limits = r.limits or {}
        out.append(
            FunctionState(
                project=r.project_id,
                name=r.name,
                id=r.id,
                version=int(r.version),
                sha256=r.sha256,
                status=r.status,
                regions=tuple(sorted(r.regions or ())),
                canary_node=r.canary_node,
                code=r.code,
                env=tuple(sorted((r.env or {}).items())),
                secrets=tuple(sorted(secrets.items())),
                timeout_ms=int(limits.get("timeout_ms", 5000)),
                memory_mb=int(limits.get("memory_mb", 128)),
                routes=_routes(r.routes),
                hosts=tuple(sorted(hosts.get(r.project_id, ()))),
                check_path=r.check_path,
            )
        )
    return tuple(sorted(out, key=lambda f: (f.project, f.name, f.version)))
