"""``ResourceManager``: infrastructure as code from Python, as spec 002's ``provision(spec)``.

    from edgeplane import ResourceManager

    rm = ResourceManager("shop-staging")
    spec = await rm.load("edgeplane.yaml", environment="staging")
    result = await rm.provision(spec)          # validate -> create -> configure
    for step in result.steps:
        print(step.name, step.status, step.duration_ms)

``load`` reads a file as the CLI does (variables, the environment's overlay, references to
environment variables and files, a bundle directory uploaded); ``plan`` and ``apply`` are the
REST API's; ``provision`` runs the three steps and reports each: **validate** (the plan: every
object checked as the apply will check it), **create** (the apply: one revision, all or
nothing), **configure** (every online edge node serves that revision).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeplane.errors import EdgeplaneError
from edgeplane.iac import refs, template
from edgeplane.model.iac import DriftReport, PlanResult
from edgeplane.sdk.service import ProjectService

BASE = "/api/v1/iac"
NODES = "/api/v1/edge/nodes"


@dataclass(frozen=True)
class Spec:
    """A file resolved for one environment, ready to plan or apply."""

    document: dict[str, Any]
    source: dict[str, Any] | None = None
    environment: str | None = None
    project: str | None = None

    def body(self, **extra: Any) -> dict[str, Any]:
        return {
            "document": self.document,
            "source": self.source,
            "environment": self.environment,
            **extra,
        }


@dataclass
class Step:
    name: str  # validate | create | configure
    status: str = "pending"  # pending | done | failed | skipped
    duration_ms: float | None = None
    detail: str = ""


@dataclass
class ProvisionResult:
    plan: PlanResult | None = None
    applied: PlanResult | None = None
    steps: list[Step] = field(
        default_factory=lambda: [Step("validate"), Step("create"), Step("configure")]
    )

    @property
    def ok(self) -> bool:
        return all(s.status in ("done", "skipped") for s in self.steps)


class ResourceManager(ProjectService):
    """Plan, apply, export and drift of a project's file, embedded or against a control
    plane. The project is the file's (or its environment's) when it names one."""

    async def load(
        self,
        path: str | Path,
        environment: str | None = None,
        variables: dict[str, Any] | None = None,
    ) -> Spec:
        """Read and resolve a file (YAML or JSON); a bundle directory or archive it names is
        uploaded to the project and replaced by its id."""
        path = Path(path)
        source = template.parse(path.read_text(), str(path))
        return await self.resolve(source, path.parent, environment, variables)

    async def resolve(
        self,
        source: dict[str, Any],
        base: Path,
        environment: str | None = None,
        variables: dict[str, Any] | None = None,
    ) -> Spec:
        resolved = template.resolve(source, environment, variables)
        doc = refs.resolve(resolved.document, base)
        project = resolved.project or self.project_id
        bundle = refs.bundle_source(doc, base)
        if bundle is not None:
            from edgeplane.sdk.edge_service import EdgeDeploymentService

            edge = EdgeDeploymentService(project, client=self.client)
            uploaded = await edge.upload_bundle(bundle, project)
            doc["edge_deployment"] = {**doc["edge_deployment"], "bundle": uploaded.id}
        return Spec(doc, source, resolved.environment, project)

    def _project(self, spec: Spec | None) -> str:
        return (spec.project if spec is not None else None) or self.project_id

    async def plan(self, spec: Spec, *, prune: bool = False) -> PlanResult:
        doc = await self._call("POST", f"{BASE}/plan", self._project(spec), spec.body(prune=prune))
        return PlanResult.model_validate(doc)

    async def validate(self, spec: Spec) -> PlanResult:
        """The plan: everything the apply would check, nothing written."""
        return await self.plan(spec)

    async def apply(
        self,
        spec: Spec,
        *,
        prune: bool = False,
        state: str | None = None,
        lock_timeout: float = 0.0,
    ) -> PlanResult:
        body = spec.body(prune=prune, state=state, lock_timeout_s=lock_timeout)
        doc = await self._call("POST", f"{BASE}/apply", self._project(spec), body)
        return PlanResult.model_validate(doc)

    async def export(self, project_id: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = await self._call("GET", f"{BASE}/export", project_id)
        return doc

    async def drift(self, project_id: str | None = None) -> DriftReport:
        return DriftReport.model_validate(await self._call("GET", f"{BASE}/drift", project_id))

    async def applied(self, project_id: str | None = None) -> dict[str, Any] | None:
        doc: dict[str, Any] | None = await self._call("GET", f"{BASE}/applied", project_id)
        return doc

    async def wait_converged(self, revision: int, timeout: float = 60.0) -> list[str]:
        """Wait until every online edge node applied ``revision``; the problems (nodes that
        failed it, or were still behind at ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            nodes: list[dict[str, Any]] = await self.client.request("GET", NODES)
            online = [n for n in nodes if n["status"] == "online"]
            failed = [
                f"{n['name']}: revision {revision} failed: {n['last_error']}"
                for n in online
                if (n["applied_revision"] or 0) < revision
                and (n["failed_revision"] or 0) >= revision
            ]
            behind = [
                f"{n['name']} at revision {n['applied_revision']} of {revision}"
                for n in online
                if (n["applied_revision"] or 0) < revision
                and (n["failed_revision"] or 0) < revision
            ]
            if failed or not behind:
                return failed
            if time.monotonic() >= deadline:
                return [f"{b} after {timeout:g} s" for b in behind]
            await asyncio.sleep(0.1)

    async def provision(
        self, spec: Spec, *, prune: bool = False, timeout: float = 60.0
    ) -> ProvisionResult:
        """validate -> create -> configure, each step timed; raises the first step's error
        (the result's steps say which) unless the edge did not converge, which is reported."""
        result = ProvisionResult()
        validate, create, configure = result.steps

        async def step(s: Step, work: Any) -> Any:
            began = time.perf_counter()
            try:
                out = await work
            except EdgeplaneError as exc:
                s.status, s.detail = "failed", exc.message
                raise
            finally:
                s.duration_ms = round((time.perf_counter() - began) * 1000, 1)
            s.status = "done"
            return out

        result.plan = await step(validate, self.plan(spec, prune=prune))
        validate.detail = _summary(result.plan)
        if not result.plan.changes:
            create.status = configure.status = "skipped"
            create.detail = configure.detail = "nothing to change"
            return result
        result.applied = await step(create, self.apply(spec, prune=prune, state=result.plan.state))
        create.detail = f"revision {result.applied.revision}"
        problems = await step(configure, self.wait_converged(result.applied.revision, timeout))
        if problems:
            configure.status, configure.detail = "failed", "; ".join(problems)
        else:
            configure.detail = f"every online edge node serves revision {result.applied.revision}"
        return result


def _summary(plan: PlanResult) -> str:
    parts = [f"{n} to {action}" for action, n in plan.summary.items() if n]
    return ", ".join(parts) or "no changes"


__all__ = ["ProvisionResult", "ResourceManager", "Spec", "Step"]
