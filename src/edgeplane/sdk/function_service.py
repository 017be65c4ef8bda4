"""``FunctionService``: a project's edge functions, JavaScript request handlers run by the edge
nodes.

A deploy makes a new **version** of a function (code, routes, env, secrets, limits, check
path; what it leaves out is the current version's) that rolls out ``canary`` (one node) →
``rolling`` → ``active``, or ends ``failed`` / ``cancelled`` while the active version keeps
serving. ``wait=True`` (or ``wait_for``) follows it and raises ``FunctionFailed`` or
``FunctionTimeout`` when it does not become active. Secrets are write-only: versions name them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from edgeplane.errors import Conflict, EdgeplaneError
from edgeplane.model.common import Page
from edgeplane.model.function_obs import FunctionLogPage, FunctionMetrics
from edgeplane.model.functions import (
    CodeCheck,
    EdgeFunction,
    FunctionDeployed,
    FunctionLimits,
    FunctionRoute,
    FunctionVersion,
    FunctionVersionDetail,
)
from edgeplane.sdk.client import body_of
from edgeplane.sdk.service import ProjectService

BASE = "/api/v1/infrastructure/functions"
POLL_S = 0.2

# Every state of a version seen while waiting for it.
FunctionProgress = Callable[[FunctionVersion], None]
Route = FunctionRoute | Mapping[str, Any] | str


class FunctionFailed(Conflict):
    """A version ended ``failed`` or ``cancelled`` (the nodes kept the active one);
    ``version`` is its last state, ``message`` says why."""

    type_slug = "function-failed"
    title = "Function version failed"

    def __init__(self, version: FunctionVersion) -> None:
        reason = version.error or f"the version was {version.status}"
        super().__init__(
            f"function {version.name} version {version.version} {version.status}: {reason}",
            field="version",
        )
        self.version = version


class FunctionTimeout(EdgeplaneError, TimeoutError):
    """A version was still rolling out when the wait ended (it goes on without us)."""

    status = 504
    type_slug = "function-timeout"
    title = "Function version still rolling out"

    def __init__(self, version: FunctionVersion, timeout: float) -> None:
        waiting = ", ".join(
            f"{p.region} {p.serving}/{p.nodes}" for p in version.progress if p.state != "done"
        )
        super().__init__(
            f"function {version.name} version {version.version} is still {version.status} "
            f"after {timeout:g}s" + (f" (serving nodes: {waiting})" if waiting else ""),
            field="version",
        )
        self.version = version


def _route(value: Route) -> dict[str, Any]:
    """A route as the API takes it: a model, a dict, or a pattern (every method)."""
    if isinstance(value, str):
        return {"pattern": value}
    if isinstance(value, FunctionRoute):
        return value.model_dump(mode="json")
    return dict(value)


def _done(version: FunctionVersion) -> bool:
    return version.status == "active" or (
        version.status == "superseded" and version.activated_at is not None
    )


class FunctionService(ProjectService):
    """Edge functions, embedded or against a control plane (``EDGEPLANE_URL``), in
    ``project_id`` given here (default: the client's project, else ``default``)."""

    def _path(self, name: str, tail: str = "") -> str:
        return f"{BASE}/{quote(name, safe='')}{tail}"

    async def deploy(
        self,
        name: str,
        code: str,
        routes: Sequence[Route] | None = None,
        env: Mapping[str, str] | None = None,
        secrets: Mapping[str, str | None] | None = None,
        limits: FunctionLimits | Mapping[str, int] | None = None,
        check_path: str | None = None,
        message: str | None = None,
        *,
        wait: bool = False,
        timeout: float = 120,
        on_progress: FunctionProgress | None = None,
    ) -> FunctionDeployed:
        """A new version of ``name`` (``created``), or the current one when the content is
        unchanged. ``routes``: patterns (``"shop.example.com/api/*"``, ``"*/hello"``) or
        ``{"pattern", "methods"}``; required the first time. ``secrets``: a value of None
        removes one; ``check_path=""`` removes the check path. With ``wait``, follows the
        version until it is active (``FunctionFailed``, ``FunctionTimeout``)."""
        body: dict[str, Any] = {"code": code}
        if routes is not None:
            body["routes"] = [_route(r) for r in routes]
        if env is not None:
            body["env"] = dict(env)
        if secrets is not None:
            body["secrets"] = dict(secrets)
        if limits is not None:
            body["limits"] = body_of(limits) if isinstance(limits, FunctionLimits) else dict(limits)
        if check_path is not None:
            body["check_path"] = check_path
        if message is not None:
            body["message"] = message
        doc = FunctionDeployed.model_validate(await self._call("PUT", self._path(name), body=body))
        if not wait:
            return doc
        last = await self.wait_for(name, doc.version.version, timeout, on_progress=on_progress)
        return doc.model_copy(update={"version": last})

    async def wait_for(
        self,
        name: str,
        version: int,
        timeout: float = 120,
        *,
        interval: float = POLL_S,
        on_progress: FunctionProgress | None = None,
    ) -> FunctionVersion:
        """Poll a version until it is active (returned); ``FunctionFailed`` when it failed or
        was cancelled, ``FunctionTimeout`` when it is still rolling out at ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            current = await self.version(name, version)
            if on_progress is not None:
                on_progress(current)
            if _done(current):
                return current
            if current.status in ("failed", "cancelled", "superseded"):
                raise FunctionFailed(current)
            if time.monotonic() >= deadline:
                raise FunctionTimeout(current, timeout)
            await asyncio.sleep(max(0.0, min(interval, deadline - time.monotonic())))

    async def activate(self, name: str, version: int) -> FunctionDeployed:
        """Make an earlier version that was active current again: a new version, on every
        capable node at once."""
        doc = await self._call("POST", self._path(name, f"/versions/{int(version)}/activate"))
        return FunctionDeployed.model_validate(doc)

    async def rollback(self, name: str) -> FunctionDeployed:
        """Activate the version that was active before the current one."""
        return FunctionDeployed.model_validate(
            await self._call("POST", self._path(name, "/rollback"))
        )

    async def delete(self, name: str) -> None:
        """Remove the function and all its versions."""
        await self._call("DELETE", self._path(name))

    async def check(self, code: str) -> CodeCheck:
        """Whether ``code`` compiles as a function module (``ok``, else line, column and
        message)."""
        return CodeCheck.model_validate(
            await self._call("POST", f"{BASE}/check", body={"code": code})
        )

    # Reading ------------------------------------------------------------------------------

    async def list_functions(
        self, *, cursor: str | None = None, limit: int | None = None
    ) -> Page[EdgeFunction]:
        doc = await self._call("GET", BASE, cursor=cursor, limit=limit)
        return Page[EdgeFunction].model_validate(doc)

    async def get(self, name: str) -> EdgeFunction:
        """The function and its current version (rolling out, else active) with its
        progress per region."""
        return EdgeFunction.model_validate(await self._call("GET", self._path(name)))

    async def versions(
        self, name: str, limit: int | None = None, *, cursor: str | None = None
    ) -> Page[FunctionVersion]:
        """The function's versions, newest first."""
        doc = await self._call("GET", self._path(name, "/versions"), cursor=cursor, limit=limit)
        return Page[FunctionVersion].model_validate(doc)

    async def version(self, name: str, version: int) -> FunctionVersionDetail:
        """One version with its code and progress per region."""
        doc = await self._call("GET", self._path(name, f"/versions/{int(version)}"))
        return FunctionVersionDetail.model_validate(doc)

    # At work ------------------------------------------------------------------------------

    async def logs(
        self,
        name: str,
        after: int | None = None,
        limit: int = 100,
        level: str | None = None,
        *,
        node: str | None = None,
        version: int | None = None,
    ) -> FunctionLogPage:
        """The function's console lines from every edge node: the ``limit`` newest, newest
        first; with ``after`` (a page's ``next_after``) the ones that arrived since, oldest
        first. ``level``: that level and the more severe (debug < log = info < warn < error)."""
        doc = await self._call(
            "GET", self._path(name, "/logs"), after=after, limit=limit, level=level,
            node=node, version=version,
        )  # fmt: skip
        return FunctionLogPage.model_validate(doc)

    async def metrics(
        self, name: str, since: str = "1h", region: str | None = None
    ) -> FunctionMetrics:
        """The function's invocations over the last ``since`` (15m, 1h, 6h, 24h, 7d, 30d), per
        region and in total: invocations, errors by outcome, error rate, p50/p95/p99 in ms."""
        doc = await self._call("GET", self._path(name, "/metrics"), since=since, region=region)
        return FunctionMetrics.model_validate(doc)
