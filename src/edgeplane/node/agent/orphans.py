"""Workers left behind by an nginx master that died.

When the master is killed (SIGKILL, OOM killer) its workers keep running and keep the
listening sockets, so a new master cannot bind the node's ports. Before restarting, the agent
finds the processes that listen on the node's ports, and kills those that are nginx workers
(or cache processes) whose parent is no longer an nginx master; and with them their siblings
that listen on nothing (the cache manager and loader close the listening sockets), known by
the open files they share with those workers (the master's logs, inherited by all its
children). Nothing else is touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Iterable

from edgeplane.node import procfs

log = logging.getLogger(__name__)

LISTEN = "0A"
CHILD_TITLES = (b"nginx: worker process", b"nginx: cache manager", b"nginx: cache loader")


def listening_inodes(ports: Iterable[int]) -> set[str]:
    wanted = {f"{port:04X}" for port in ports}
    inodes: set[str] = set()
    for table in ("net/tcp", "net/tcp6"):
        try:
            lines = (procfs.PROC / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == LISTEN and fields[1].rsplit(":", 1)[1] in wanted:
                inodes.add(fields[9])
    return inodes


def _holds(pid: int, sockets: set[str]) -> bool:
    return any(t.startswith("socket:[") and t[8:-1] in sockets for t in procfs.fd_targets(pid))


def _files(pid: int) -> set[str]:
    """The files (not sockets or pipes) that ``pid`` holds open."""
    return {t for t in procfs.fd_targets(pid) if t.startswith("/")}


def orphan_workers(ports: Iterable[int]) -> list[int]:
    sockets = listening_inodes(ports)
    if not sockets:
        return []
    found = []
    others = []  # orphans that hold none of the sockets
    for pid in procfs.pids():
        if not procfs.cmdline_bytes(pid).startswith(CHILD_TITLES):
            continue
        parent = procfs.ppid(pid)
        if parent is not None and procfs.cmdline_bytes(parent).startswith(b"nginx: master"):
            continue  # a live master's worker
        if _holds(pid, sockets):
            found.append(pid)
        else:
            others.append(pid)
    shared = set().union(*(_files(pid) for pid in found)) if found else set()
    found += [pid for pid in others if _files(pid) & shared]
    return found


def kill_orphan_workers(ports: Iterable[int]) -> list[int]:
    """SIGKILL the orphaned nginx workers listening on ``ports``; their pids."""
    pids = orphan_workers(ports)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if pids:
        log.warning("killed %d nginx workers left by a dead master: %s", len(pids), pids)
    return pids
