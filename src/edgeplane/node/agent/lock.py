"""One process per piece of state: an exclusive ``flock`` held for the holder's whole life.

An edge agent holds ``<state dir>/agent.lock`` (``STATE_LOCK``) from before it touches
anything of the node (nginx, PowerDNS, the saved snapshot) until it has stopped them; a second
agent on the same state directory refuses to start, naming the holder's pid. ``edgeplane up``
holds ``HOME/up.lock`` the same way (``edgeplane.cli.supervise``).

The lock is the ``flock`` itself, not the file: the kernel drops it when the holder dies, however
it dies, so a stale file never blocks anyone. The file holds the holder's pid (written once the
lock is taken) for messages and for ``holder()``. The descriptor is close-on-exec: a process the
holder starts (nginx, pdns_server) never inherits it, so a leftover engine cannot keep the lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

from edgeplane.node import procfs

STATE_LOCK = "agent.lock"


class LockHeld(Exception):
    """Another live process holds the lock; ``pid`` is its pid (None if it wrote none yet)."""

    def __init__(self, path: Path, pid: int | None) -> None:
        who = f"pid {pid}" if pid is not None else "a process that has not written its pid yet"
        super().__init__(f"{path} is held by {who}")
        self.path = path
        self.pid = pid


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def _holder_pid(fd: int, patience_s: float = 1.0) -> int | None:
    """The pid written in a held lock file; a holder that just took the lock writes it at once,
    so an empty file is read again for up to ``patience_s``."""
    deadline = time.monotonic() + patience_s
    while True:
        pid = _read_pid(fd)
        if pid is not None or time.monotonic() >= deadline:
            return pid
        time.sleep(0.02)


class PidLock:
    """An exclusive, non-blocking ``flock`` on ``path`` that records the holder's pid."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise ``LockHeld``; ``OSError`` when the file cannot be opened."""
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Never O_TRUNC: the file may be a live holder's, and its pid is what we report.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            pid = _holder_pid(fd) if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else None
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise LockHeld(self.path, pid) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (the file stays: removing it would race with a new holder)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)

    def __enter__(self) -> PidLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def holds_open(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open (from /proc; False when it cannot be read)."""
    return str(path.resolve()) in procfs.fd_targets(pid)


def holder(path: Path) -> int | None:
    """The pid of the live process holding the lock at ``path``; None when nobody does.

    Read without taking the lock (a probe that took it, even briefly, could make a starting
    holder fail): the pid written in the file, if that process still has the file open. Only
    a holder writes its pid, and a holder's descriptor is never inherited.
    """
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and holds_open(pid, path) else None


def state_lock(state_dir: Path) -> PidLock:
    """The lock of an edge node's state directory."""
    return PidLock(state_dir / STATE_LOCK)
