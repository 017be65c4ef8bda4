"""Reading other processes from /proc: command lines, parents, states, working directories
and open files (engine processes to adopt, orphans and leftovers to find). Every reader
answers "nothing" for a process that is gone or unreadable."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

PROC = Path("/proc")


def pids() -> Iterator[int]:
    """Every process id now."""
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            yield int(entry.name)


def cmdline(pid: int) -> list[str]:
    """The command line of ``pid``; empty when it is gone or unreadable."""
    return [part.decode("utf-8", "replace") for part in cmdline_bytes(pid).split(b"\0") if part]


def cmdline_bytes(pid: int) -> bytes:
    """The raw command line (NUL-separated; a process title such as nginx's stays whole)."""
    try:
        return (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces


def state(pid: int) -> str | None:
    """The state letter (R, S, T, Z, ...); None when the process is gone."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def ppid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def cwd(pid: int) -> str | None:
    try:
        return os.readlink(PROC / str(pid) / "cwd")
    except OSError:
        return None


def fd_targets(pid: int) -> list[str]:
    """What ``pid``'s open file descriptors point at (paths, ``socket:[inode]``, pipes)."""
    try:
        fds = list((PROC / str(pid) / "fd").iterdir())
    except OSError:
        return []
    out = []
    for fd in fds:
        with contextlib.suppress(OSError):
            out.append(os.readlink(fd))
    return out
