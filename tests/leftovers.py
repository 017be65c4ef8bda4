"""Finding the processes a test run left behind (Linux ``/proc``).

A run of the suite starts many processes (nginx masters and their workers, PowerDNS, Pebble,
PostgreSQL, ``edgeplane up`` / ``edge``, origins, the benches) and must stop every one of them.
This module recognises what belongs to one run, so that ``conftest.py`` can name and kill
whatever is still running when the session ends, and ``test_benches.py`` can do the same for
one bench. A process belongs to the run when it started after the run's pytest process (so
nothing older is ever touched) and

- its environment carries the run's marker (``MARKER=<run id>`` or ``<run id>/<scope>``), which
  every process inherits unless it is given an environment of its own; or
- its working directory, its executable, an absolute path on its command line or one of its
  open files lies under one of the run's own directories (its temporary root, which is
  ``TMPDIR`` and the working directory of the run, and pytest's ``basetemp``): nginx overwrites
  its environment with its process titles and PostgreSQL's backends do the same, but nginx
  workers and cache managers keep the master's log files open and inherit its working
  directory (which is the run's even when the node put its prefix under
  ``/var/lib/edgeplane``), and PostgreSQL works in its data directory; or
- its parent belongs to the run (and it carries no other run's marker).

A process whose environment carries the marker of another run (or of another scope) never
belongs to this one, and nothing else of other runs can match: their directories differ. The
checkout itself is deliberately not a criterion: another run in the same checkout, started with
the checkout's ``.venv/bin/python``, and the developer's own shells and editors working in it,
would match; since the run works in its own root, what it starts is found there. The pytest
process itself and its ancestors are never reported, nor the helpers that ``multiprocessing``
keeps for the pytest process until it exits (the forkserver and the resource tracker: they end
with it). The marker's name does not start with ``EDGEPLANE_``: the helpers that start
processes with a clean environment drop those.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

MARKER = "_EDGEPLANE_RUN"
PROC = Path("/proc")
_DELETED = " (deleted)"
FOREIGN = "another run's"
_MP_HELPERS = (b"from multiprocessing.forkserver import", b"from multiprocessing.resource_tracker")


@dataclass(frozen=True)
class Leftover:
    pid: int
    ppid: int
    cmdline: str
    cwd: str
    why: str

    def describe(self) -> str:
        return f"pid {self.pid} (parent {self.ppid}): {self.cmdline!r}, cwd {self.cwd} [{self.why}]"


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _link(path: Path) -> str | None:
    try:
        target = os.readlink(path)
    except OSError:
        return None
    return target.removesuffix(_DELETED)


def stat_fields(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks since boot) of ``pid``."""
    raw = _read(PROC / str(pid) / "stat")
    if raw is None:
        return None
    fields = raw.rsplit(b")", 1)[1].split()
    return int(fields[1]), int(fields[19])


def ancestors(pid: int) -> set[int]:
    """``pid`` and every process above it."""
    found = {pid}
    while pid > 1:
        fields = stat_fields(pid)
        if fields is None:
            break
        pid = fields[0]
        found.add(pid)
    return found


def _under(path: str, roots: Sequence[str]) -> str | None:
    for root in roots:
        if path == root or path.startswith(root + "/"):
            return root
    return None


def _paths_in(arg: str) -> Iterable[str]:
    """Absolute paths in one argument (``/x``, ``--opt=/x``, ``-p/x``), or in a process
    title that holds a whole command line (``nginx: master process nginx -p /x/ -c ...``)."""
    for word in arg.split():
        start = word.find("/")
        if start >= 0:
            yield word[start:]


@dataclass
class Owner:
    """What belongs to one run (or to one scope of it, such as one bench)."""

    marker: str  # the run id, or "<run id>/<scope>"
    roots: Sequence[Path]  # the run's own directories
    since: int  # start time (clock ticks since boot): nothing older belongs to the run
    exclude: frozenset[int] = frozenset()  # the pytest process and its ancestors

    def why(self, pid: int) -> str | None:
        """Why ``pid`` belongs to the run; None when nothing says so; :data:`FOREIGN` when
        its marker says it belongs to another run or scope."""
        base = PROC / str(pid)
        environ = _read(base / "environ")
        if environ is not None:
            for item in environ.split(b"\0"):
                name, _, value = item.partition(b"=")
                if name == MARKER.encode():
                    mine = value.decode(errors="replace")
                    if mine == self.marker or mine.startswith(self.marker + "/"):
                        return f"environment {MARKER}={mine}"
                    return FOREIGN
        roots = [str(r) for r in self.roots]
        cwd = _link(base / "cwd")
        if cwd and (root := _under(cwd, roots)):
            return f"working directory under {root}"
        exe = _link(base / "exe")
        if exe and (root := _under(exe, roots)):
            return f"executable under {root}"
        argv = [a.decode(errors="replace") for a in (_read(base / "cmdline") or b"").split(b"\0")]
        argv = [a for a in argv if a]
        for arg in argv:
            for path in _paths_in(arg):
                if root := _under(path, roots):
                    return f"command line names {root}"
        try:
            fds = list((base / "fd").iterdir())
        except OSError:
            fds = []
        for fd in fds:
            target = _link(fd)
            if target and target.startswith("/") and (root := _under(target, roots)):
                return f"open file {target}"
        return None

    def find(self) -> list[Leftover]:
        me = os.getpid()
        found: list[Leftover] = []
        parents: dict[int, int] = {}
        for entry in PROC.iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            if pid in self.exclude or pid == me:
                continue
            fields = stat_fields(pid)
            if fields is None or fields[1] < self.since:
                continue
            raw = _read(entry / "cmdline") or b""
            if not raw:
                continue  # a kernel thread, or a zombie (nothing left to stop)
            if fields[0] in self.exclude and any(h in raw for h in _MP_HELPERS):
                continue
            why = self.why(pid)
            if why is None:
                parents[pid] = fields[0]
            if why is None or why == FOREIGN:
                continue
            found.append(
                Leftover(
                    pid=pid,
                    ppid=fields[0],
                    cmdline=raw.replace(b"\0", b" ").decode(errors="replace").strip(),
                    cwd=_link(entry / "cwd") or "?",
                    why=why,
                )
            )
        # what those started (whatever its environment and paths) belongs to the run too
        mine = {p.pid for p in found}
        grew = True
        while grew:
            grew = False
            for pid, ppid in list(parents.items()):
                if ppid in mine:
                    del parents[pid]
                    mine.add(pid)
                    grew = True
                    cmd = (_read(PROC / str(pid) / "cmdline") or b"").replace(b"\0", b" ")
                    found.append(
                        Leftover(
                            pid=pid,
                            ppid=ppid,
                            cmdline=cmd.decode(errors="replace").strip(),
                            cwd=_link(PROC / str(pid) / "cwd") or "?",
                            why=f"started by {ppid}",
                        )
                    )
        return found

    def kill(self, rounds: int = 5) -> list[Leftover]:
        """SIGKILL what :meth:`find` finds, until nothing is left; everything killed."""
        killed: dict[int, Leftover] = {}
        for _ in range(rounds):
            now = self.find()
            if not now:
                break
            for p in now:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(p.pid, signal.SIGKILL)
                killed.setdefault(p.pid, p)
            time.sleep(0.2)
        return list(killed.values())


def start_ticks(pid: int) -> int:
    fields = stat_fields(pid)
    if fields is None:
        raise RuntimeError(f"no process {pid}")
    return fields[1]
