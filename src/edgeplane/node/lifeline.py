"""Processes that do not outlive the process that started them.

Linux sends a process its *parent-death signal* (``prctl(PR_SET_PDEATHSIG)``) when the thread
that forked it ends, however the parent ends (SIGKILL and the OOM killer included). Two uses:

- **An agent started by ``edgeplane up``** sets it on itself (``bind_to_parent``, SIGTERM: it
  then stops its engines as on any SIGTERM), and also watches its parent's pid
  (``parent_gone``), which covers a parent that died before the signal was armed and a kernel
  without ``prctl``. ``up`` forks it from its main thread, which lives as long as ``up``.
- **The engines an agent starts** (nginx, pdns_server) get it through ``spawn`` (nginx SIGQUIT:
  in-flight requests finish, no new connection is accepted; pdns_server SIGTERM), so that an
  agent that dies (SIGKILL, OOM, a crash) takes its engines with it instead of leaving them
  serving a frozen snapshot, unsupervised and unreachable, with nobody to renew, rotate or
  restart anything. ``spawn`` forks every engine from one thread that lives as long as the
  process: the agent's worker threads (``asyncio.to_thread``) could end earlier and would take
  the engine with them.

The signal is armed in the child between fork and exec (``preexec_fn``), by one pre-resolved
libc call and nothing else.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


_PRCTL = _load_prctl()


def set_parent_death_signal(sig: int) -> bool:
    """Ask for ``sig`` when the thread that forked this process ends; False where unsupported."""
    return _PRCTL is not None and _PRCTL(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def parent_gone(parent_pid: int) -> bool:
    """Whether the process that started us (``parent_pid``) is gone: we were re-parented."""
    return os.getppid() != parent_pid


def bind_to_parent(parent_pid: int, sig: int = signal.SIGTERM) -> bool:
    """Get ``sig`` when ``parent_pid`` dies. False when it is already gone (the caller should
    stop at once); True otherwise, also where the signal cannot be armed (watch the parent
    with ``parent_gone`` then)."""
    set_parent_death_signal(sig)
    return not parent_gone(parent_pid)


def _arm_in_child(sig: int, parent: int) -> Callable[[], None]:
    prctl = _PRCTL

    def arm() -> None:  # runs in the child between fork and exec: keep it to syscalls
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), sig)

    return arm


class _Spawner:
    """One daemon thread, started on first use, that forks every bound child: it lives as long
    as the process, so a child's parent-death signal comes when the process ends."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    def forget(self) -> None:
        """In a forked child: the thread is the parent's; the next ``run`` starts another."""
        self._jobs = queue.SimpleQueue()
        self._thread = None
        self._start = threading.Lock()

    def _loop(self) -> None:
        while True:
            job, future = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job())
            except BaseException as exc:
                future.set_exception(exc)

    def run(self, job: Callable[[], Any]) -> Any:
        if threading.current_thread() is self._thread:
            return job()
        with self._start:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="edgeplane-spawner", daemon=True
                )
                self._thread.start()
        future: Future[Any] = Future()
        self._jobs.put((job, future))
        return future.result()


_SPAWNER = _Spawner()
os.register_at_fork(after_in_child=_SPAWNER.forget)


def spawn(args: Sequence[str], *, death_signal: int, **popen: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen(args, **popen)`` whose child gets ``death_signal`` when this process
    ends, however it ends."""
    arm = _arm_in_child(int(death_signal), os.getpid())

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(list(args), preexec_fn=arm, **popen)

    child: subprocess.Popen[bytes] = _SPAWNER.run(start)
    return child


def terminate(child: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM ``child`` (unless it has exited), then SIGKILL after ``timeout``; reaped."""
    if child.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
