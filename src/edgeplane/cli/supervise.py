"""What ``edgeplane up`` does around its processes.

- **One ``up`` per home**: ``up`` holds ``HOME/up.lock`` (``edgeplane.node.agent.lock``) for its
  whole life; a second ``up`` on the same home refuses, naming the first one's pid.
- **Taking over after a crash**: an ``up`` that died without stopping (SIGKILL, the OOM killer,
  a power cut of the process) may leave its edge agent stopping, or (from older versions) its
  agent, nginx and PowerDNS running. Holding the home's lock proves no other ``up`` runs there,
  so before starting its own agent ``up`` stops what belongs to the local node's state: the
  agent holding the state lock (when ``up`` started it: ``--parent-pid``; an agent someone
  started by hand is not ours to stop, and ``up`` refuses instead), then every nginx and
  pdns_server that /proc proves to be the node's (``edgeplane.node.agent.leftovers``): SIGTERM,
  then SIGKILL after a bound.
- **The agent ends with ``up``**: it is started with ``--parent-pid`` (it arms its parent-death
  signal and watches the pid: ``edgeplane.node.lifeline``), and at SIGINT / SIGTERM ``up`` sends
  it SIGTERM at once, so that it stops its engines while the API shuts down.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from edgeplane.node.agent import leftovers
from edgeplane.node.agent.lock import LockHeld, PidLock
from edgeplane.node.procfs import cmdline

log = logging.getLogger("edgeplane.up")

UP_LOCK = "up.lock"
AGENT_GRACE_S = 10.0  # an agent stops nginx gracefully (5 s), then fast (2 s)
ENGINE_GRACE_S = 5.0


class Refused(Exception):
    """``up`` must not start on this home; the message says why and what to do."""


def lock_home(home: Path) -> PidLock:
    """Take ``HOME/up.lock`` or raise ``Refused`` naming the ``up`` that holds it."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = PidLock(home / UP_LOCK)
    try:
        lock.acquire()
    except LockHeld as exc:
        who = f"pid {exc.pid}" if exc.pid is not None else "another process"
        raise Refused(
            f"another edgeplane up ({who}) is running on {home.resolve()}; stop it first"
        ) from None
    except OSError as exc:
        raise Refused(f"cannot lock {lock.path}: {exc}") from None
    return lock


def take_over(state_dir: Path, prefix: Path) -> list[leftovers.Leftover]:
    """Stop what a previous ``up`` left of the node at ``state_dir``; what was stopped."""
    started = time.monotonic()
    stopped: list[leftovers.Leftover] = []
    agent = leftovers.agent(state_dir)
    if agent is not None:
        if "--parent-pid" not in cmdline(agent.pid):
            raise Refused(
                f"an edge agent that edgeplane up did not start (pid {agent.pid}) runs the "
                f"local node ({state_dir}); stop it, or run up with --no-edge"
            )
        log.warning(
            "stopping the edge agent a previous edgeplane up left running (pid %d: %s)",
            agent.pid,
            agent.proof,
        )
        leftovers.stop([agent], state_dir, prefix, AGENT_GRACE_S)
        stopped.append(agent)
    engines = leftovers.engines(state_dir, prefix)
    for item in engines:
        log.warning(
            "stopping %s (pid %d) left running by a previous run: %s",
            item.what,
            item.pid,
            item.proof,
        )
    if engines:
        leftovers.stop(engines, state_dir, prefix, ENGINE_GRACE_S)
    stopped += engines
    if stopped:
        log.warning(
            "stopped %d processes left by a previous run in %.1f s",
            len(stopped),
            time.monotonic() - started,
        )
    return stopped


def terminate(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM ``process`` now if it runs (it stops in its own time; ``up`` waits later)."""
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)


@contextlib.contextmanager
def one_up(home: Path, node: tuple[Path, Path] | None) -> Iterator[None]:
    """Hold the home's lock while the block runs; with ``node`` (its state directory and nginx
    prefix) first stop what a previous ``up`` left of it. ``Refused`` when ``up`` must not
    start."""
    lock = lock_home(home)
    try:
        if node is not None:
            take_over(*node)
        yield
    finally:
        lock.release()
