"""The node's edge functions runtime (``runtime/runtime.mjs``): start, watch and stop it, and
drive it over its admin socket (load a config, read its status, reopen its console log);
and ``check_code``, the control plane's check of a function's module (``runtime/check.mjs``).

The runtime listens for nginx on ``<prefix>/fn.sock`` (0600, or 0660 owned by the group of
nginx's workers when they run as another user: no other local user may call a function with
headers of its own making) and for the agent on ``<prefix>/fn-admin.sock`` (0600). Its own
output goes to ``functions-runtime.log`` beside the console log; the config it was last given
is written (0600: it holds the functions' secrets) to ``config_path``, which it loads when it
starts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from edgeplane.node.functions.find import Runtime, RuntimeMissing, locate_runtime
from edgeplane.node.lifeline import spawn, terminate

LISTEN_SOCKET = "fn.sock"
ADMIN_SOCKET = "fn-admin.sock"
OUTPUT = "functions-runtime.log"
MAX_SOCKET_PATH = 107  # bytes in a unix socket's path (sun_path less its NUL)
STOP_GRACE_S = 7.0  # the runtime lets requests in flight finish for up to 5 s
CHECK_TIMEOUT_S = 10.0


class FunctionRuntimeError(Exception):
    """The runtime could not be started, reached or used; the message says why."""


def socket_path(prefix: Path, name: str) -> str:
    """``prefix/name``, which must fit a unix socket's path."""
    path = str(prefix / name)
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise FunctionRuntimeError(
            f"{path} is too long for a unix socket ({MAX_SOCKET_PATH} bytes at most): "
            "use a shorter prefix"
        )
    return path


def _write_private(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
    os.replace(tmp, path)


class FunctionRuntime:
    """One runtime process for the node whose nginx prefix is ``prefix_dir``."""

    def __init__(
        self,
        prefix_dir: Path,
        console_log: Path,
        config_path: Path | None = None,
        *,
        runtime: Runtime | None = None,
        socket_group: int | None = None,
    ) -> None:
        self.prefix = prefix_dir.absolute()
        self.socket_group = socket_group
        self.listen_socket = socket_path(self.prefix, LISTEN_SOCKET)
        self.admin_socket = socket_path(self.prefix, ADMIN_SOCKET)
        self.console_log = console_log.absolute()
        self.config_path = config_path.absolute() if config_path is not None else None
        self.output = self.console_log.parent / OUTPUT
        self._runtime = runtime
        self._child: subprocess.Popen[bytes] | None = None
        self._output_offset = 0

    # ------------------------------------------------------------------ process

    def _resolve(self) -> Runtime:
        if self._runtime is None:
            try:
                self._runtime = locate_runtime()
            except RuntimeMissing as exc:
                raise FunctionRuntimeError(f"edge functions cannot run here: {exc}") from exc
        return self._runtime

    def start(self, timeout: float = 15.0) -> None:
        """Spawn the runtime and return once its admin socket answers."""
        if self.alive():
            return
        runtime = self._resolve()
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.console_log.parent.mkdir(parents=True, exist_ok=True)
        args = [
            *runtime.command("runtime.mjs"),
            "--listen",
            self.listen_socket,
            *(["--listen-group", str(self.socket_group)] if self.socket_group is not None else []),
            "--admin",
            self.admin_socket,
            "--console-log",
            str(self.console_log),
        ]
        if self.config_path is not None:
            args += ["--config", str(self.config_path)]
        self._output_offset = self.output.stat().st_size if self.output.exists() else 0
        with self.output.open("ab") as out:
            # Ends with the process that started it (the agent), however that ends.
            self._child = spawn(
                args,
                death_signal=signal.SIGTERM,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=runtime.directory,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            child = self._child
            if child is None:
                raise FunctionRuntimeError("the function runtime was stopped while it started")
            if child.poll() is not None:
                self._child = None
                raise FunctionRuntimeError(
                    f"the function runtime exited with status {child.returncode}:\n"
                    + self.output_tail()
                )
            try:
                self.status(timeout=1.0)
                return
            except FunctionRuntimeError:
                time.sleep(0.02)
        self.stop()
        raise FunctionRuntimeError(
            f"the function runtime did not answer within {timeout:.0f}s:\n" + self.output_tail()
        )

    def alive(self) -> bool:
        """Whether the process is running."""
        return self._child is not None and self._child.poll() is None

    def ensure_running(self, timeout: float = 15.0) -> bool:
        """Restart the runtime if it died; True when it did."""
        if self.alive():
            return False
        self.stop()  # reap it
        self.start(timeout)
        return True

    def stop(self, timeout: float = STOP_GRACE_S) -> int | None:
        """SIGTERM (requests in flight finish), then SIGKILL after ``timeout``; reaped. Its
        exit status (None: it was not running)."""
        child, self._child = self._child, None
        if child is None:
            return None
        terminate(child, timeout)
        return child.returncode

    def output_tail(self, size: int = 4096) -> str:
        """The end of the runtime's own output since the last start."""
        try:
            with self.output.open("rb") as f:
                f.seek(max(self._output_offset, f.seek(0, os.SEEK_END) - size))
                return f.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""

    # ------------------------------------------------------------------ admin API

    def _request(
        self, method: str, path: str, *, body: bytes | None = None, timeout: float
    ) -> dict[str, Any]:
        transport = httpx.HTTPTransport(uds=self.admin_socket)
        try:
            with httpx.Client(transport=transport, timeout=timeout) as client:
                r = client.request(method, f"http://runtime{path}", content=body)
        except httpx.HTTPError as exc:
            raise FunctionRuntimeError(f"function runtime {method} {path}: {exc}") from exc
        try:
            answer = r.json()
        except ValueError:
            answer = {"error": r.text[:500]}
        if r.status_code != 200:
            error = answer.get("error") if isinstance(answer, dict) else answer
            raise FunctionRuntimeError(f"function runtime {method} {path}: {r.status_code} {error}")
        if not isinstance(answer, dict):
            raise FunctionRuntimeError(f"function runtime {method} {path}: not a JSON object")
        return answer

    def load(self, config: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        """Give the runtime ``config`` (kept at ``config_path`` for its next start): its
        answer, ``{"functions": {id: {"ok": true, "cold_ms": ...} | {"ok": false, "error":
        ...}}}``. Versions that fail keep the previous version of their key in service."""
        body = json.dumps(config).encode()
        if self.config_path is not None:
            _write_private(self.config_path, body)
        return self._request("PUT", "/config", body=body, timeout=timeout)

    def status(self, timeout: float = 5.0) -> dict[str, Any]:
        """``{"rss": bytes, "functions": {id: {key, heap_bytes, invocations, errors}}}``."""
        return self._request("GET", "/status", timeout=timeout)

    def reopen(self, timeout: float = 5.0) -> None:
        """Reopen the console log (after it was rotated)."""
        self._request("POST", "/reopen", timeout=timeout)


@dataclass(frozen=True)
class CheckResult:
    """A module's check: ``ok``, else where (1-based; None when not about a place) and why."""

    ok: bool
    line: int | None = None
    column: int | None = None
    message: str = ""


def check_code(
    code: str, *, runtime: Runtime | None = None, timeout: float = CHECK_TIMEOUT_S
) -> CheckResult:
    """Compile ``code`` as a function module and run its top level as the runtime would
    (64 MB, 1 s); FunctionRuntimeError when the check itself cannot run."""
    if runtime is None:
        try:
            runtime = locate_runtime()
        except RuntimeMissing as exc:
            raise FunctionRuntimeError(f"edge functions cannot be checked here: {exc}") from exc
    try:
        done = subprocess.run(
            runtime.command("check.mjs"),
            input=code.encode(),
            capture_output=True,
            timeout=timeout,
            cwd=runtime.directory,
        )
    except subprocess.TimeoutExpired as exc:
        raise FunctionRuntimeError(f"the check did not finish within {timeout:.0f}s") from exc
    except OSError as exc:
        raise FunctionRuntimeError(f"the check did not run: {exc}") from exc
    lines = done.stdout.decode("utf-8", "replace").strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.decode("utf-8", "replace").strip()[-1000:]
        raise FunctionRuntimeError(f"the check failed (status {done.returncode}): {tail}")
    try:
        out = json.loads(lines[-1])
    except ValueError as exc:
        raise FunctionRuntimeError(f"the check answered {lines[-1][:200]!r}") from exc
    if out.get("ok"):
        return CheckResult(ok=True)
    return CheckResult(
        ok=False, line=out.get("line"), column=out.get("column"), message=str(out.get("message"))
    )
