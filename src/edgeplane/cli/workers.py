"""Several API processes on one machine: the supervisor of ``edgeplane serve --workers N``.

A pre-fork supervisor, as gunicorn's and uvicorn's own ``--workers`` are. ``serve`` binds the
listening socket, migrates the database, makes the admin token and closes its connections,
loads the application's modules (no thread runs yet) and hands a ``Supervisor`` the work of
one worker. The supervisor forks N workers from its main thread; each makes its own database
engine, background runner and app, and serves the shared socket with uvicorn: the kernel hands
each new connection to one of them, and a connection stays with the worker that accepted it.

What the supervisor does, and nothing else:

- **A worker that dies** (killed, crashed) is started again: at once when it had served
  ``STABLE_S`` or longer, else after a backoff that doubles with each quick death in a row
  (``restart_delay``: 0.5 s, 1 s, 2 s ... 30 s), each logged. The requests on the connections
  it held fail; connections waiting in the socket's queue are served by the others (the queue
  is the socket's, not the worker's).
- **A first start that fails** (a worker exits before all N ever served: a bad setting, an
  unreachable database) is not retried: the workers are stopped and ``run`` returns 1.
- **SIGINT / SIGTERM**: every worker gets SIGTERM and stops gracefully (its long-polls
  answered, its background runner stopped and its lease released); one still running after
  ``STOP_TIMEOUT_S`` is killed, and a second signal kills them all at once. ``run`` returns
  when none is left.

Workers run in a session of their own, so that a terminal's Ctrl-C reaches the supervisor
alone, which then stops them; each is bound to the supervisor by the parent-death signal
(``edgeplane.node.lifeline``): a supervisor that is killed takes its workers with it.

The module holds no application code: ``Supervisor`` takes the worker's work as a function
(``work(link) -> exit status``), which tells the supervisor it serves by ``link.ready()``.
``multiprocess_metrics`` prepares prometheus_client's multiprocess mode for the workers (it
must run before anything imports prometheus_client).
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import NoReturn

from edgeplane.node import lifeline
from edgeplane.node.agent.leftovers import alive

log = logging.getLogger("edgeplane.workers")

MAX_WORKERS = 64
STABLE_S = 10.0  # a worker that served this long is started again at once when it dies
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
STOP_TIMEOUT_S = 20.0  # a worker's graceful stop: uvicorn's grace, the runner's jobs
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own variable
METRICS_DIR = "prometheus-workers"  # in the home: one folder per supervisor (its pid)


def restart_delay(quick_deaths: int) -> float:
    """Seconds before a dead worker starts again, after ``quick_deaths`` deaths in a row that
    each came less than ``STABLE_S`` after its start (0: it had served longer: at once)."""
    if quick_deaths <= 0:
        return 0.0
    return min(MAX_BACKOFF_S, FIRST_BACKOFF_S * (1 << min(quick_deaths - 1, 16)))


def describe_exit(status: int) -> str:
    """A wait status in words: ``killed by SIGKILL``, ``exited with status 1``."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"killed by {name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def multiprocess_metrics(home: Path) -> Path:
    """Put the workers' metrics in a folder of their own (prometheus_client's multiprocess
    mode: every process writes its counters and histograms to files there, and ``/metrics``
    of any worker sums them): ``HOME/prometheus-workers/<this pid>``, made empty, named by
    ``PROMETHEUS_MULTIPROC_DIR`` for this process and the workers it forks. Folders of
    supervisors that are gone are removed. Call it before anything imports prometheus_client
    (its metrics choose where their values live when they are made)."""
    if "edgeplane.metrics" in sys.modules:
        raise RuntimeError("edgeplane.metrics was imported before the metrics folder was set")
    parent = home / METRICS_DIR
    parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in parent.iterdir():
        if not stale.name.isdigit() or not alive(int(stale.name)):
            shutil.rmtree(stale, ignore_errors=True)
    folder = parent / str(os.getpid())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700)
    os.environ[MULTIPROC_ENV] = str(folder)
    values = sys.modules.get("prometheus_client.values")
    if values is not None:  # imported already (by a library): no metric made yet, switch it
        values.ValueClass = values.get_value_class()  # type: ignore[attr-defined]
    return folder


@dataclass(frozen=True)
class WorkerLink:
    """What a worker gets from its supervisor: its number (0 to N-1) and the way to say that
    it serves."""

    index: int
    ready_fd: int

    def ready(self) -> None:
        """Tell the supervisor that this worker serves (once its listener accepts)."""
        os.write(self.ready_fd, f"{self.index} {os.getpid()}\n".encode())


@dataclass
class _Slot:
    index: int
    pid: int | None = None
    started_at: float = 0.0
    ready: bool = False
    quick_deaths: int = 0
    due: float | None = None  # monotonic time to start it again


class Supervisor:
    """Runs ``count`` workers, each ``work(link)`` in a forked child, until a signal.

    ``on_ready`` runs once, when all the workers serve for the first time; ``on_exit(pid)``
    after each worker ends (reaped), before it is started again; ``on_stop`` once the stop
    begins, before the workers are told (``serve`` closes its copy of the listening socket
    then: once the workers have closed theirs, a new connection is refused, as by one
    process, instead of waiting in the queue of a socket nobody serves any more)."""

    def __init__(
        self,
        count: int,
        work: Callable[[WorkerLink], int],
        *,
        on_ready: Callable[[], None] | None = None,
        on_exit: Callable[[int], None] | None = None,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        if not 1 <= count <= MAX_WORKERS:
            raise ValueError(f"workers: {count} is not between 1 and {MAX_WORKERS}")
        self.slots = [_Slot(i) for i in range(count)]
        self._work = work
        self._on_ready = on_ready
        self._on_exit = on_exit
        self._on_stop = on_stop
        self._signals = 0
        self._stopping = False
        self._announced = False
        self._status = 0
        self._buffer = b""
        self._selector: selectors.BaseSelector | None = None
        self._fds: list[int] = []
        self._ready_r = self._ready_w = self._wake_r = self._wake_w = -1

    @property
    def pids(self) -> list[int]:
        """The workers running now."""
        return [s.pid for s in self.slots if s.pid is not None]

    # The supervisor --------------------------------------------------------------------------

    def run(self) -> int:
        """Start the workers and watch them until SIGINT / SIGTERM (or a failed first start);
        return when none is left: 0, or 1 when the first start failed."""
        if threading.active_count() > 1:
            raise RuntimeError("the workers are forked: no thread may run in the supervisor")
        self._ready_r, self._ready_w = os.pipe()
        self._wake_r, self._wake_w = os.pipe()
        self._fds = [self._ready_r, self._ready_w, self._wake_r, self._wake_w]
        for fd in (self._ready_r, self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._ready_r, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        handled = (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)
        previous = {sig: signal.getsignal(sig) for sig in handled}
        old_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGCHLD, self._on_child)  # only to wake the selector
        try:
            for slot in self.slots:
                if not self._stopping:
                    self._start(slot)
            while not self._stopping:
                self._wait(self._next_timeout())
                self._start_due()
        finally:
            self._stop_all()
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._selector.close()
            for fd in self._fds:
                os.close(fd)
            self._fds = []
        return self._status

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        if not self._stopping:
            log.info("%s: stopping %d workers", signal.Signals(signum).name, len(self.pids))
        self._stopping = True

    def _on_child(self, _signum: int, _frame: FrameType | None) -> None:
        pass

    def _next_timeout(self) -> float | None:
        due = [s.due for s in self.slots if s.pid is None and s.due is not None]
        return max(0.0, min(due) - time.monotonic()) if due else None

    def _wait(self, timeout: float | None) -> None:
        assert self._selector is not None
        for key, _ in self._selector.select(timeout):
            if key.fd == self._wake_r:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake_r, 512):
                        pass
            elif key.fd == self._ready_r:
                self._read_ready()
        self._reap()

    def _read_ready(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self._ready_r, 4096):
                self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            index, pid = (int(part) for part in line.split())
            slot = self.slots[index]
            if slot.pid != pid or slot.ready:
                continue
            slot.ready = True
            if self._announced:
                log.info("worker %d (pid %d) serves again", index, pid)
        if not self._announced and all(s.ready for s in self.slots):
            self._announced = True
            if self._on_ready is not None:
                self._on_ready()

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self.slots if s.pid == pid), None)
            if slot is None:
                continue
            slot.pid, slot.ready = None, False
            if self._on_exit is not None:
                self._on_exit(pid)
            if self._stopping:
                if status != 0:
                    log.info("worker %d (pid %d) %s", slot.index, pid, describe_exit(status))
                continue
            if not self._announced:
                log.error(
                    "worker %d (pid %d) %s before every worker served: stopping",
                    slot.index,
                    pid,
                    describe_exit(status),
                )
                self._status = 1
                self._stopping = True
                continue
            lived = time.monotonic() - slot.started_at
            slot.quick_deaths = 0 if lived >= STABLE_S else slot.quick_deaths + 1
            delay = restart_delay(slot.quick_deaths)
            log.warning(
                "worker %d (pid %d) %s after %.1f s; starting it again %s",
                slot.index,
                pid,
                describe_exit(status),
                lived,
                f"in {delay:.1f} s" if delay else "now",
            )
            slot.due = time.monotonic() + delay

    def _start_due(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if self._stopping:
                return
            if slot.pid is None and slot.due is not None and slot.due <= now:
                self._start(slot)

    def _start(self, slot: _Slot) -> None:
        for stream in (sys.stdout, sys.stderr):  # else the child would write them again
            stream.flush()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            self._child(slot, parent)
        slot.pid, slot.started_at, slot.ready, slot.due = pid, time.monotonic(), False, None
        if self._announced:
            log.info("worker %d started again (pid %d)", slot.index, pid)

    def _stop_all(self) -> None:
        if self._on_stop is not None:
            self._on_stop()
        for slot in self.slots:
            slot.due = None
            if slot.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        killed = False
        while self.pids:
            now = time.monotonic()
            if not killed and (self._signals > 1 or now >= deadline):
                why = "a second signal" if self._signals > 1 else f"{STOP_TIMEOUT_S:.0f} s"
                log.warning("killing %d workers still running after %s", len(self.pids), why)
                for pid in self.pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                killed = True
            self._wait(None if killed else max(0.0, deadline - now))

    # The worker ------------------------------------------------------------------------------

    def _child(self, slot: _Slot, parent: int) -> NoReturn:
        status = 1
        try:
            os.setsid()  # a terminal's Ctrl-C reaches the supervisor alone
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            assert self._selector is not None
            self._selector.close()
            for fd in (self._ready_r, self._wake_r, self._wake_w):
                os.close(fd)
            if lifeline.bind_to_parent(parent, signal.SIGTERM):
                status = self._work(WorkerLink(slot.index, self._ready_w))
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            log.exception("worker %d failed", slot.index)
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(status)
