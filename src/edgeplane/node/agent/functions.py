"""The node's edge functions (``EdgeConfig.functions``) as the agent drives them: the runtime
process (``node.functions.process.FunctionRuntime``, supervised like the DNS server), the
config it is given, and what the node reports of each function (``Heartbeat.functions``).

A snapshot that names functions starts the runtime (once) and loads them into it; one that
names none stops it. nginx is rendered first (the routes and ``@fn`` exist before the runtime
is asked), and a new version whose routes are unchanged reloads no nginx: only the runtime's
config changes. Each function is reported ``loading``, then ``active`` (loaded, and its check
path, when it has one, answered below 400 through the local nginx) or ``failed`` (the
runtime's error, with its line and column).

The config (it holds the functions' secrets) is written 0600 in a 0700 directory of the
node's state; the runtime's console log is ``<nginx prefix>/logs/functions.json``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from edgeplane.node.functions.find import Runtime, RuntimeMissing, locate_runtime
from edgeplane.node.functions.process import (
    FunctionRuntime,
    FunctionRuntimeError,
    socket_path,
)
from edgeplane.node.nginx.render_functions import FETCH_SOCKET
from edgeplane.protocol.config import EdgeConfig, FunctionSpec
from edgeplane.protocol.messages import FunctionReport

log = logging.getLogger(__name__)

CONSOLE_LOG = "functions.json"  # under <prefix>/logs
CONFIG_DIR = "functions"  # under the state directory
CHECK_TIMEOUT_S = 5.0


def find_function_runtime() -> tuple[Runtime | None, str | None]:
    """The runtime, or None and why edge functions cannot run on this node."""
    try:
        return locate_runtime(), None
    except RuntimeMissing as exc:
        return None, str(exc)


def resolve_geoip_db(given: str | os.PathLike[str] | None) -> Path | None:
    """The node's GeoIP database: ``--geoip-db`` / ``EDGEPLANE_GEOIP_DB`` when given, else the
    packaged GeoLite2-City (None when that is not installed either). What the analytics and
    the functions' ``request.geo`` both read."""
    if given:
        return Path(given)
    from edgeplane.routing.geoip import GeoDatabaseError, _packaged_database

    try:
        return _packaged_database()
    except GeoDatabaseError:
        return None


def runtime_id(f: FunctionSpec) -> str:
    """The runtime's name of a version: ``<project>/<name>@<version>``."""
    return f"{f.key}@{f.version}"


def _now() -> datetime:
    return datetime.now(UTC)


class FunctionHost:
    """The runtime of one node and its functions' reports."""

    def __init__(
        self,
        runtime: Runtime | None,
        prefix: Path,
        state_dir: Path,
        *,
        geoip_db: Path | None = None,
        why_not: str | None = None,
        socket_group: int | None = None,
    ) -> None:
        self.prefix = prefix
        self.config_dir = state_dir / CONFIG_DIR
        self.geoip_db = geoip_db
        self.why_not = why_not
        self.process: FunctionRuntime | None = None
        if runtime is not None:
            try:
                socket_path(prefix, FETCH_SOCKET)  # nginx's, for the functions' fetches
                self.process = FunctionRuntime(
                    prefix,
                    prefix / "logs" / CONSOLE_LOG,
                    self.config_dir / "config.json",
                    runtime=runtime,
                    socket_group=socket_group,
                )
            except FunctionRuntimeError as exc:  # a prefix too deep for unix sockets
                self.why_not = str(exc)
                log.warning("edge functions cannot run on this node: %s", exc)
        self.reports: dict[str, FunctionReport] = {}
        self.wanted = False  # the snapshot served names functions: the runtime runs
        self.restarts = 0
        self._loaded: str | None = None  # the config (JSON) the runtime answered last
        self._lock = asyncio.Lock()

    @property
    def capable(self) -> bool:
        return self.process is not None

    @property
    def console_log(self) -> Path:
        return self.prefix / "logs" / CONSOLE_LOG

    def report_models(self) -> dict[str, FunctionReport] | None:
        return dict(self.reports) or None

    def runtime_config(self, functions: tuple[FunctionSpec, ...]) -> dict[str, Any]:
        return {
            "fetch_socket": str(self.prefix / FETCH_SOCKET),
            "geoip_db": str(self.geoip_db) if self.geoip_db is not None else None,
            "allow_private_fetch": False,
            "functions": [
                {
                    "key": f.key,
                    "id": runtime_id(f),
                    "name": f.name,
                    "version": f.version,
                    "sha256": f.sha256,
                    "code": f.code,
                    "env": f.env,
                    "secrets": f.secrets,
                    "timeout_ms": f.timeout_ms,
                    "memory_mb": f.memory_mb,
                    "hosts": list(f.hosts),
                }
                for f in functions
            ],
        }

    def _set(self, f: FunctionSpec, state: str, error: str | None = None) -> bool:
        report = FunctionReport(
            version_id=f.id, version=f.version, state=state, error=error and error[:4000]
        )
        old = self.reports.get(f.key)
        if old is not None and (old.version_id, old.state, old.error) == (
            f.id,
            state,
            report.error,
        ):
            return False
        self.reports[f.key] = report.model_copy(update={"at": _now()})
        return True

    async def apply(self, config: EdgeConfig, base_url: str) -> bool:
        """Run ``config``'s functions (nginx already serves ``config``); whether a report
        changed (then the heartbeat goes out at once)."""
        async with self._lock:
            return await self._apply(config.functions, base_url)

    async def preload(self, config: EdgeConfig, serving: EdgeConfig | None) -> bool:
        """Before nginx is given ``config``: load its new functions beside those the served
        snapshot routes to (which keep their version until nginx no longer routes to them),
        so that no route of either reaches a runtime without its function. Check paths are
        not asked yet (nginx does not route them)."""
        if not config.functions:
            return False
        union = {f.key: f for f in (serving.functions if serving is not None else ())}
        union.update((f.key, f) for f in config.functions)
        async with self._lock:
            return await self._apply(tuple(union[k] for k in sorted(union)), None)

    async def _apply(self, functions: tuple[FunctionSpec, ...], base_url: str | None) -> bool:
        changed = False
        keys = {f.key for f in functions}
        for key in [k for k in self.reports if k not in keys]:
            del self.reports[key]
            changed = True
        if not functions:
            if self.wanted:
                self.wanted = False
                self._loaded = None
                if self.process is not None:
                    log.info("no edge functions any more: stopping their runtime")
                    await asyncio.to_thread(self.process.stop)
            return changed
        if self.process is None:
            for f in functions:
                changed |= self._set(f, "failed", f"edge functions cannot run here: {self.why_not}")
            return changed
        config = self.runtime_config(functions)
        text = repr(config)  # compared, never logged (secrets)
        if text == self._loaded and self.process.alive():
            if base_url is not None:
                changed |= await self._checked(functions, base_url)
            return changed
        for f in functions:
            old = self.reports.get(f.key)
            if old is None or old.version_id != f.id:
                changed |= self._set(f, "loading")
        self.wanted = True
        try:
            await asyncio.to_thread(self._prepare)
            if not self.process.alive():
                await asyncio.to_thread(self.process.start)
            answer = await asyncio.to_thread(self.process.load, config)
        except (FunctionRuntimeError, OSError) as exc:
            log.error("the edge function runtime refused its config: %s", exc)
            for f in functions:
                changed |= self._set(f, "failed", f"the function runtime: {exc}")
            return changed
        self._loaded = text
        results = answer.get("functions") or {}
        for f in functions:
            result = results.get(runtime_id(f)) or {}
            if not result.get("ok"):
                error = str(result.get("error") or "not loaded by the runtime")
                changed |= self._set(f, "failed", error)
                log.warning("edge function %s version %d failed: %s", f.key, f.version, error)
                continue
            if base_url is None:  # preloaded: active once nginx routes it
                continue
            problem = await self._check(f, base_url) if f.check_path else None
            changed |= self._set(f, "failed" if problem else "active", problem)
        return changed

    async def _checked(self, functions: tuple[FunctionSpec, ...], base_url: str) -> bool:
        """The preloaded functions, now routed: active once their check path answers."""
        changed = False
        for f in functions:
            old = self.reports.get(f.key)
            if old is None or old.version_id != f.id or old.state != "loading":
                continue
            problem = await self._check(f, base_url) if f.check_path else None
            changed |= self._set(f, "failed" if problem else "active", problem)
        return changed

    def _prepare(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.config_dir, 0o700)
        (self.prefix / "logs").mkdir(parents=True, exist_ok=True)

    async def _check(self, f: FunctionSpec, base_url: str) -> str | None:
        """None when ``f``'s check path answers below 400 through the local nginx."""
        assert f.check_path is not None
        host = next((r.host for r in f.routes if r.host != "*"), None)
        host = host or (f.hosts[0] if f.hosts else None)
        if host is None:
            return None
        try:
            async with httpx.AsyncClient(timeout=CHECK_TIMEOUT_S) as http:
                r = await http.get(base_url + f.check_path, headers={"Host": host})
        except httpx.HTTPError as exc:
            return f"{f.check_path}: {type(exc).__name__}: {exc}"
        if r.status_code >= 400:
            return f"{f.check_path} answered {r.status_code}"
        return None

    def ensure_running(self) -> bool:
        """Restart the runtime if it should run and died (it loads its saved config); True
        when it did."""
        if not self.wanted or self.process is None or self.process.alive():
            return False
        self.process.ensure_running()
        self.restarts += 1
        return True

    def reopen(self) -> None:
        """After the console log was rotated."""
        if self.process is not None and self.process.alive():
            self.process.reopen()

    def rotate(self, max_bytes: int) -> bool:
        """Rename the console log to ``functions.json.1`` (replacing it) when it is larger
        than ``max_bytes``, and have the runtime reopen it; True when it rotated."""
        path = self.console_log
        try:
            if path.stat().st_size <= max_bytes:
                return False
        except FileNotFoundError:
            return False
        os.replace(path, path.with_name(path.name + ".1"))
        try:
            self.reopen()
        except FunctionRuntimeError as exc:
            log.warning("the function console log was rotated but not reopened: %s", exc)
        return True

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
