"""The ``local`` driver: each instance is an origin process on the control plane's machine.

Layout under the driver's ``root`` (the control plane passes ``$EDGEPLANE_HOME/scaling``)::

    <root>/<project>/<group>/<name>/instance.json   pid, port, host, start time, command
    <root>/<project>/<group>/<name>/output.log      the process's stdout and stderr

(each part of the group is escaped into a safe directory name). The process runs in a
session of its own (so its whole process group is signalled on delete), with the template's
``command`` split into words (never run by a shell) and ``{port}``, ``{host}``, ``{name}``
filled in each word and in each ``env`` value.

Liveness: a process this driver object started is its child, kept as a ``Popen`` and reaped
by ``poll()``, so its exit status is known. One found on disk after a control-plane restart is
not a child: it counts as running while ``/proc/<pid>`` exists, is not a zombie and has the
start time recorded at creation (field 22 of ``/proc/<pid>/stat``), so that a pid the kernel
reused for another process is never taken for the instance; its exit is "status unknown".

Thread safety: the controller calls from several threads. One lock guards the driver's maps;
create and delete of one instance are serialised by a lock of that instance, and never hold
the driver's lock while they wait (delete waits up to ``grace_s``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edgeplane.model.scaling import LocalTemplate, fill
from edgeplane.scaling.drivers.base import DriverError, Instance, InstanceSpec

RECORD = "instance.json"
LOG = "output.log"
TAIL_LINES = 3
TAIL_CHARS = 300
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_SAFE = re.compile(r"[A-Za-z0-9_-]")
_POLL_S = 0.05

Key = tuple[str, str]  # (group, name)


def group_path(group: str) -> Path:
    """``"<project>/<group>"`` as a relative directory path: each part kept as it is where it
    is made of ``[A-Za-z0-9_-]``, any other byte escaped as ``%XX`` (dots too, so no part is
    ``.`` or ``..``); the mapping is one to one."""
    parts = group.split("/")
    if not group or any(p == "" for p in parts):
        raise DriverError(f"invalid group {group!r}: expected <project>/<group>")
    escaped = [
        "".join(c if _SAFE.fullmatch(c) else "".join(f"%{b:02X}" for b in c.encode()) for c in p)
        for p in parts
    ]
    return Path(*escaped)


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise DriverError(f"invalid instance name {name!r}: [a-z0-9-], at most 63 characters")
    return name


@dataclass(frozen=True)
class ProcStat:
    state: str  # R, S, D, Z, ...
    pgrp: int
    cpu_ticks: int  # utime + stime
    start_ticks: int  # since boot, in clock ticks
    rss_pages: int = 0  # resident set size


def proc_stat(pid: int) -> ProcStat | None:
    """``/proc/<pid>/stat``, or None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # the command name (field 2) is in parentheses and may hold spaces and parentheses
    fields = text[text.rindex(")") + 2 :].split()  # fields[0] is field 3 of proc(5)
    return ProcStat(
        state=fields[0],
        pgrp=int(fields[2]),
        cpu_ticks=int(fields[11]) + int(fields[12]),
        start_ticks=int(fields[19]),
        rss_pages=int(fields[21]),
    )


def resolve_program(program: str, path: str) -> str:
    """A bare program name looked up on ``path``, then beside the running Python (the
    virtual environment's ``bin``, where ``edgeplane`` itself is, even when the control plane
    was started without it on its ``PATH``); a name with a slash, or one not found, as is."""
    if "/" in program:
        return program
    here = str(Path(sys.executable).parent)
    found = shutil.which(program, path=os.pathsep.join(p for p in (path, here) if p))
    return found or program


def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def how_it_ended(returncode: int | None) -> str:
    if returncode is None:
        return "exited (status unknown)"
    if returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


def tail(path: Path, lines: int = TAIL_LINES, limit: int = TAIL_CHARS) -> str:
    """The last ``lines`` non-blank lines of a file, at most ``limit`` characters."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            data = f.read()
    except OSError:
        return ""
    kept = [ln.rstrip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    text = "\n".join(kept[-lines:])
    return text[-limit:]


class LocalDriver:
    """Origin processes on this machine (see the module's docstring)."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self._children: dict[Key, subprocess.Popen[bytes]] = {}
        self._instance_locks: dict[Key, threading.Lock] = {}
        self._cpu: dict[Key, tuple[int, float]] = {}  # last (cpu ticks, monotonic time)
        self._ticks = os.sysconf("SC_CLK_TCK")

    # ------------------------------------------------------------------ helpers

    def _dir(self, group: str, name: str) -> Path:
        return self.root / group_path(group) / check_name(name)

    def _instance_lock(self, key: Key) -> threading.Lock:
        with self._lock:
            return self._instance_locks.setdefault(key, threading.Lock())

    def _child(self, key: Key) -> subprocess.Popen[bytes] | None:
        with self._lock:
            return self._children.get(key)

    @staticmethod
    def _record(path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads((path / RECORD).read_text())
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, ValueError) as exc:
            raise DriverError(f"unreadable instance record {path / RECORD}: {exc}") from None
        return data if isinstance(data, dict) else None

    def _alive(self, key: Key, record: dict[str, Any]) -> tuple[bool, int | None]:
        """(running, exit status when known). Reaps a child that exited."""
        child = self._child(key)
        if child is not None and child.pid == record.get("pid"):
            code = child.poll()
            return code is None, code
        return self._alive_by_proc(record), None

    @staticmethod
    def _alive_by_proc(record: dict[str, Any]) -> bool:
        pid = record.get("pid")
        if not isinstance(pid, int) or pid <= 0:
            return False
        stat = proc_stat(pid)
        if stat is None or stat.state == "Z":
            return False
        return stat.start_ticks == record.get("start_ticks")

    def _instance(self, key: Key, path: Path, record: dict[str, Any]) -> Instance:
        running, code = self._alive(key, record)
        detail = ""
        if not running:
            detail = how_it_ended(code)
            output = tail(path / LOG)
            if output:
                detail = f"{detail}; last output:\n{output}"
        created = record.get("created_at")
        return Instance(
            name=key[1],
            ref=str(record.get("pid", "")),
            host=str(record.get("host", "")),
            port=int(record.get("port", 0)),
            state="running" if running else "exited",
            detail=detail,
            started_at=datetime.fromisoformat(created) if isinstance(created, str) else None,
            extra={
                "pid": record.get("pid"),
                "log": str(path / LOG),
                "command": record.get("command"),
            },
        )

    # ------------------------------------------------------------------ the Driver protocol

    def bind(self, group: str, template: Mapping[str, Any]) -> None:
        """Nothing to do: an instance's folder holds what list, get and delete need (the cloud
        driver's ``bind`` tells it a group's template)."""

    def create(self, spec: InstanceSpec) -> Instance:
        key = (spec.group, spec.name)
        path = self._dir(spec.group, spec.name)
        try:
            template = LocalTemplate.model_validate(dict(spec.template))
        except ValidationError as exc:
            raise DriverError(f"invalid local template: {exc.errors()[0]['msg']}") from None
        with self._instance_lock(key):
            record = self._record(path)
            if record is not None:
                return self._instance(key, path, record)
            port = free_port(template.host)
            values = {"port": port, "host": template.host, "name": spec.name}
            argv = [fill(word, **values) for word in shlex.split(template.command)]
            env = dict(os.environ)
            env.update({k: fill(v, **values) for k, v in template.env.items()})
            argv[0] = resolve_program(argv[0], env.get("PATH", ""))
            cwd = Path(template.cwd) if template.cwd else path
            if template.cwd and not cwd.is_dir():
                raise DriverError(f"cannot start {argv[0]!r}: the directory {cwd} does not exist")
            path.mkdir(parents=True, exist_ok=True)
            try:
                with (path / LOG).open("ab") as log:
                    child = subprocess.Popen(
                        argv,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        cwd=cwd,
                        env=env,
                        start_new_session=True,
                    )
            except OSError as exc:
                shutil.rmtree(path, ignore_errors=True)
                reason = exc.strerror or str(exc)
                raise DriverError(f"cannot start {argv[0]!r}: {reason}") from None
            stat = proc_stat(child.pid)
            record = {
                "pid": child.pid,
                "port": port,
                "host": template.host,
                "start_ticks": stat.start_ticks if stat else None,
                "command": argv,
                "stop_grace_s": template.stop_grace_s,
                "created_at": datetime.now(UTC).isoformat(),
            }
            tmp = path / (RECORD + ".new")
            tmp.write_text(json.dumps(record, indent=1) + "\n")
            tmp.replace(path / RECORD)
            with self._lock:
                self._children[key] = child
            return self._instance(key, path, record)

    def delete(self, group: str, name: str, grace_s: float = 10.0) -> None:
        key = (group, name)
        path = self._dir(group, name)
        with self._instance_lock(key):
            record = self._record(path)
            with self._lock:
                child = self._children.pop(key, None)
                self._cpu.pop(key, None)
            if record is not None:
                self._stop(child, record, grace_s)
            elif child is not None:
                self._stop(child, {"pid": child.pid}, grace_s)
            shutil.rmtree(path, ignore_errors=True)
            with contextlib.suppress(OSError):  # the group's folder, once empty
                path.parent.rmdir()

    def _stop(
        self, child: subprocess.Popen[bytes] | None, record: dict[str, Any], grace_s: float
    ) -> None:
        """SIGTERM to the process group, SIGKILL after ``grace_s``; reaps a child.

        A child is not reaped before the final SIGKILL (its zombie keeps the pid, so the group
        cannot be another's); a process that is no child is signalled only while its start
        time matches the record."""
        if child is not None and child.pid == record.get("pid"):
            pid = child.pid
            if child.returncode is None:  # not reaped yet: the group id is still ours
                _killpg(pid, signal.SIGTERM)
                deadline = time.monotonic() + grace_s
                while not _exited_unreaped(pid) and time.monotonic() < deadline:
                    time.sleep(_POLL_S)
                _killpg(pid, signal.SIGKILL)  # the leader if still running, and stragglers
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=10)
            return
        if not self._alive_by_proc(record):
            return
        pid = int(record["pid"])
        _killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while self._alive_by_proc(record) and time.monotonic() < deadline:
            time.sleep(_POLL_S)
        if self._alive_by_proc(record):
            _killpg(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while self._alive_by_proc(record) and time.monotonic() < deadline:
                time.sleep(_POLL_S)

    def list(self, group: str) -> list[Instance]:
        folder = self.root / group_path(group)
        found = []
        try:
            entries = sorted(folder.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return []
        for path in entries:
            if not _NAME.match(path.name):
                continue
            record = self._record(path)
            if record is not None:
                found.append(self._instance((group, path.name), path, record))
        return found

    def get(self, group: str, name: str) -> Instance:
        path = self._dir(group, name)
        record = self._record(path)
        if record is None:
            return Instance(name=name, ref="", host="", port=0, state="missing")
        return self._instance((group, name), path, record)

    def cpu_percent(self, group: str, name: str) -> float | None:
        """CPU use of the instance's process group since the previous call, in percent of
        one core (None on the first call, or when it does not run)."""
        key = (group, name)
        record = self._record(self._dir(group, name))
        if record is None or not self._alive(key, record)[0]:
            with self._lock:
                self._cpu.pop(key, None)
            return None
        ticks = _group_ticks(int(record["pid"]))
        now = time.monotonic()
        with self._lock:
            previous = self._cpu.get(key)
            self._cpu[key] = (ticks, now)
        if previous is None or now <= previous[1]:
            return None
        used = max(0, ticks - previous[0]) / self._ticks
        return round(100.0 * used / (now - previous[1]), 2)

    def memory_percent(self, group: str, name: str) -> float | None:
        """Resident memory of the instance's process group, in percent of the machine's."""
        record = self._record(self._dir(group, name))
        if record is None or not self._alive((group, name), record)[0]:
            return None
        total = _memory_total()
        if not total:
            return None
        return round(100.0 * _group_rss(int(record["pid"])) / total, 3)

    def stop_all(self, grace_s: float | None = None) -> None:
        """Stops (and removes) every instance this driver object started, all at once:
        SIGTERM to each, then SIGKILL to those still running after their grace period
        (``stop_grace_s`` of their template, or ``grace_s``)."""
        with self._lock:
            keys = list(self._children)
        threads = []
        for group, name in keys:
            record = self._record(self._dir(group, name)) or {}
            grace = grace_s if grace_s is not None else float(record.get("stop_grace_s", 10.0))
            thread = threading.Thread(
                target=self.delete, args=(group, name, grace), name=f"stop {name}", daemon=True
            )
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _exited_unreaped(pid: int) -> bool:
    """Whether a child exited, without reaping it (``WNOWAIT``)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _group_rss(pgid: int) -> int:
    """Resident bytes of every process of a process group."""
    pages = 0
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                stat = proc_stat(int(entry))
                if stat is not None and (stat.pgrp == pgid or int(entry) == pgid):
                    pages += stat.rss_pages
    return pages * os.sysconf("SC_PAGE_SIZE")


def _memory_total() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _group_ticks(pgid: int) -> int:
    """utime + stime of every process of a process group (the main one alone when /proc
    cannot be listed)."""
    total = 0
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        pids = [pgid]
    for pid in pids:
        stat = proc_stat(pid)
        if stat is not None and (stat.pgrp == pgid or pid == pgid):
            total += stat.cpu_ticks
    return total
