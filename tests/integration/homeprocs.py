"""Every process that refers to an Edgeplane home or to its ports, read from /proc.

Independent of the code under test: a process counts when its command line or working
directory names the home (or the local node's nginx prefix, which may lie elsewhere), when it
has a file under them open, or when it listens on one of the ports (TCP or UDP). Zombies have
ended and do not count; neither does the test's own process.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edgeplane.node.agent.paths import nginx_prefix

PROC = Path("/proc")


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    cmdline: str
    why: str

    @property
    def kind(self) -> str:
        cmd = self.cmdline
        for marker, kind in (
            ("nginx: master", "nginx master"),
            ("nginx: worker", "nginx worker"),
            ("nginx: cache", "nginx cache"),
            ("pdns_server", "pdns_server"),
            ("dnsdist", "dnsdist"),
            ("edgeplane edge", "agent"),
            ("edgeplane.node.agent.main", "agent"),  # what ``edgeplane edge`` execs
            ("edgeplane up", "up"),
        ):
            if marker in cmd:
                return kind
        return "other"


def local_prefix(home: Path, name: str = "local") -> Path:
    return nginx_prefix((home / "edge" / name).resolve(), name)


def _socket_inodes(ports: Iterable[int]) -> set[str]:
    wanted = {f"{port:04X}" for port in ports if port}
    inodes: set[str] = set()
    for table, listening in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == listening and fields[1].rsplit(":", 1)[1] in wanted:
                inodes.add(fields[9])
    return inodes


def _under(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root + "/") for root in roots)


def processes_of(home: Path, ports: Iterable[int] = ()) -> list[Proc]:
    """The live processes that refer to ``home`` (or its node's nginx prefix) or ``ports``."""
    roots = [str(home.resolve()), str(local_prefix(home))]
    sockets = _socket_inodes(ports)
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if stat[0] == "Z":
            continue
        cmd = " ".join(p.decode("utf-8", "replace") for p in raw.split(b"\0") if p)
        why = None
        if any(root in cmd for root in roots):
            why = "command line"
        else:
            with contextlib.suppress(OSError):
                if _under(os.readlink(entry / "cwd"), roots):
                    why = "working directory"
        if why is None:
            with contextlib.suppress(OSError):
                for fd in (entry / "fd").iterdir():
                    with contextlib.suppress(OSError):
                        target = os.readlink(fd)
                        if _under(target, roots):
                            why = f"open file {target}"
                            break
                        if target.startswith("socket:[") and target[8:-1] in sockets:
                            why = "a socket on a port of the home"
                            break
        if why is not None:
            found.append(Proc(int(entry.name), int(stat[2]), cmd, why))
    return found


def kinds(procs: Iterable[Proc]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for proc in procs:
        out.setdefault(proc.kind, []).append(proc.pid)
    return out
