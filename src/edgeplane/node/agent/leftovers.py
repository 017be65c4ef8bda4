"""The processes of one node's state left running by a previous run, found by proof.

A process is taken for the node's only when /proc proves it, never by its name alone:

- **the agent**: the pid written in ``<state dir>/agent.lock`` by the process that holds it
  open (``edgeplane.node.agent.lock.holder``);
- **nginx** (master, workers, cache processes): a process titled ``nginx:`` whose command line
  names the node's prefix (the master: ``-p PREFIX/``), whose working directory is the prefix
  (engines are started there), or which has a file under the prefix open (workers keep the
  prefix's logs open; this also finds the workers of a master that was killed);
- **PowerDNS**: a ``pdns_server`` whose command line is ``--config-dir=<state dir>/pdns``, or
  whose working directory is that directory;
- **dnsdist** (in front of PowerDNS): a ``dnsdist`` whose command line names
  ``<state dir>/pdns/dnsdist.conf``, or whose working directory is ``<state dir>/pdns``.

``stop`` sends SIGTERM (and SIGCONT, for a stopped process), waits up to a bound, then SIGKILL;
before each signal it checks again that the pid still shows its proof (a pid that ended may
be reused by another process).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edgeplane.node import procfs
from edgeplane.node.agent.lock import STATE_LOCK, holder
from edgeplane.node.procfs import cmdline

PDNS_DIR = "pdns"


@dataclass(frozen=True)
class Leftover:
    pid: int
    what: str  # "agent", "nginx", "pdns_server", "dnsdist"
    proof: str  # why it is the node's, for the log


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has ended: only its exit status is left to reap)."""
    state = procfs.state(pid)
    return state is not None and state != "Z"


def _under(path: str, root: Path) -> bool:
    return path == str(root) or path.startswith(f"{root}/")


def _open_under(pid: int, root: Path) -> bool:
    return any(_under(target, root) for target in procfs.fd_targets(pid))


def _nginx_proof(pid: int, cmd: list[str], prefix: Path) -> str | None:
    if not cmd or not cmd[0].startswith("nginx"):
        return None
    if any(_under(part.rstrip("/"), prefix) for part in " ".join(cmd).split()):
        return f"its command line names {prefix}"
    cwd = procfs.cwd(pid)
    if cwd is not None and _under(cwd, prefix):
        return f"it runs in {cwd}"
    if _open_under(pid, prefix):
        return f"it has files under {prefix} open"
    return None


def _pdns_proof(pid: int, cmd: list[str], directory: Path) -> str | None:
    if not cmd or "pdns_server" not in os.path.basename(cmd[0]):
        return None
    if f"--config-dir={directory}" in cmd:
        return f"its command line is --config-dir={directory}"
    cwd = procfs.cwd(pid)
    if cwd is not None and cwd == str(directory):
        return f"it runs in {cwd}"
    return None


def _dnsdist_proof(pid: int, cmd: list[str], directory: Path) -> str | None:
    if not cmd or "dnsdist" not in os.path.basename(cmd[0]):
        return None
    conf = str(directory / "dnsdist.conf")
    if conf in cmd:
        return f"its command line names {conf}"
    cwd = procfs.cwd(pid)
    if cwd is not None and cwd == str(directory):
        return f"it runs in {cwd}"
    return None


def agent(state_dir: Path) -> Leftover | None:
    """The live agent that holds the node's state lock, if any."""
    path = state_dir / STATE_LOCK
    pid = holder(path)
    if pid is None or pid == os.getpid() or not alive(pid):
        return None
    return Leftover(pid, "agent", f"it holds {path}")


def engines(state_dir: Path, prefix: Path) -> list[Leftover]:
    """The node's live nginx, pdns_server and dnsdist processes, masters before workers."""
    me = os.getpid()
    pdns_dir = state_dir / PDNS_DIR
    found: list[Leftover] = []
    for pid in procfs.pids():
        if pid == me:
            continue
        cmd = cmdline(pid)
        if not cmd or not alive(pid):
            continue
        if proof := _nginx_proof(pid, cmd, prefix):
            found.append(Leftover(pid, "nginx", proof))
        elif proof := _pdns_proof(pid, cmd, pdns_dir):
            found.append(Leftover(pid, "pdns_server", proof))
        elif proof := _dnsdist_proof(pid, cmd, pdns_dir):
            found.append(Leftover(pid, "dnsdist", proof))
        elif proof := _runtime_proof(cmd, prefix):
            found.append(Leftover(pid, "function runtime", proof))
    return found


def _runtime_proof(cmd: list[str], prefix: Path) -> str | None:
    """The node's edge function runtime: ``node ... runtime.mjs --listen <prefix>/fn.sock``."""
    sock = str(prefix / "fn.sock")
    if any(a.endswith("runtime.mjs") for a in cmd) and sock in cmd:
        return f"it listens on {sock}"
    return None


def _still(item: Leftover, state_dir: Path, prefix: Path) -> bool:
    """Whether ``item.pid`` is still that process (alive, and with its proof)."""
    if not alive(item.pid):
        return False
    if item.what == "agent":
        return holder(state_dir / STATE_LOCK) == item.pid
    cmd = cmdline(item.pid)
    if item.what == "nginx":
        return _nginx_proof(item.pid, cmd, prefix) is not None
    if item.what == "function runtime":
        return _runtime_proof(cmd, prefix) is not None
    if item.what == "dnsdist":
        return _dnsdist_proof(item.pid, cmd, state_dir / PDNS_DIR) is not None
    return _pdns_proof(item.pid, cmd, state_dir / PDNS_DIR) is not None


def stop(
    items: Iterable[Leftover], state_dir: Path, prefix: Path, grace_s: float = 5.0
) -> list[Leftover]:
    """SIGTERM ``items``, SIGKILL those still running after ``grace_s``; the ones killed.
    A child of another item (an nginx worker of a master in ``items``) is left to its parent,
    which stops it (a worker killed under a live master would be replaced at once)."""
    items = [item for item in items if _still(item, state_dir, prefix)]
    pids = {item.pid for item in items}
    items.sort(key=lambda item: procfs.ppid(item.pid) in pids)  # parents first
    for item in items:
        with contextlib.suppress(ProcessLookupError):
            if procfs.ppid(item.pid) not in pids:
                os.kill(item.pid, signal.SIGTERM)
            os.kill(item.pid, signal.SIGCONT)  # a stopped process acts on signals only then
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(alive(i.pid) for i in items):
        time.sleep(0.02)
    killed = []
    for item in items:
        if _still(item, state_dir, prefix):
            with contextlib.suppress(ProcessLookupError):
                os.kill(item.pid, signal.SIGKILL)
                killed.append(item)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(alive(i.pid) for i in killed):
        time.sleep(0.02)
    return killed
