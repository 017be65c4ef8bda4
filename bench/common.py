"""What the bench scripts share: logging, percentiles, the figures table, cleanup.

Cleanup: a bench makes a :class:`BenchRun` first. It holds the bench's temporary folder (also
``TMPDIR`` for the bench and everything it starts, so every temporary file of the run lies
under it) and its cleanup actions, and marks the environment of every process the bench starts
(``tests/leftovers.py``). :meth:`BenchRun.close` runs the actions (stops what was started, in
reverse order), then looks for any process of the bench still running (by that mark, or by a
working directory, command line or open file under the bench's folder: nginx workers whose
master is gone, a PowerDNS whose agent was killed...), kills it and says so; the bench then
exits with status 3, after printing its figures, so that an untidy stop is never silent.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

_TESTS = str(Path(__file__).resolve().parent.parent / "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)

from leftovers import MARKER, Leftover, Owner, ancestors, start_ticks  # noqa: E402

UNTIDY = 3  # the exit status when the cleanup found processes still running, or failed


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def table(rows: list[list[str]], markdown: bool) -> str:
    head = ["figure", "edgeplane", "reference", "ratio"]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|---|---:|---:|---:|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join(fmt.format(*r) for r in [head, *rows])


class Cleanup:
    """Actions run in reverse order of registration; a failing one is reported, and the
    others still run."""

    def __init__(self) -> None:
        self.actions: list[Callable[[], object]] = []
        self.failed: list[str] = []

    def add(self, fn: Callable[[], object]) -> None:
        self.actions.append(fn)

    def run(self) -> None:
        while self.actions:
            fn = self.actions.pop()
            try:
                fn()
            except Exception as exc:
                what = getattr(fn, "__qualname__", None) or repr(fn)
                self.failed.append(f"{what}: {exc!r}")
                log(f"cleanup: {what} failed: {exc!r}")
                traceback.print_exc(file=sys.stderr)


class BenchRun:
    """The bench's temporary folder and cleanup, and the sweep for processes left behind."""

    def __init__(self, name: str) -> None:
        me = os.getpid()
        self.started = time.monotonic()
        # short: a node's sockets lie ~50 characters below it (a socket path holds 107 at most)
        self.tmp = Path(tempfile.mkdtemp(prefix=f"ep-{name}-"))
        self.tmp.chmod(0o755)  # nginx workers (www-data under root) reach what is below
        os.environ["TMPDIR"] = str(self.tmp)
        tempfile.tempdir = str(self.tmp)
        outer = os.environ.get(MARKER)  # inside a test run: a scope of it
        scope = f"bench-{name}-{me}"
        os.environ[MARKER] = f"{outer}/{scope}" if outer else scope
        self.owner = Owner(
            marker=os.environ[MARKER],
            roots=[self.tmp],
            since=start_ticks(me),
            exclude=frozenset(ancestors(me)),
        )
        self.cleanup = Cleanup()
        self.left: list[Leftover] = []
        self.closed = False

    def close(self) -> None:
        """Stop everything (Ctrl-C and SIGTERM are ignored meanwhile); idempotent."""
        if self.closed:
            return
        self.closed = True
        with signals_ignored():
            self.cleanup.run()
            self.left = self.owner.kill()
            for p in self.left:
                log(f"cleanup: still running after the orderly stop, killed: {p.describe()}")
            shutil.rmtree(self.tmp, ignore_errors=True)

    def status(self) -> int:
        """0, or :data:`UNTIDY` (with the reason on stderr) when the stop was not orderly."""
        if not self.left and not self.cleanup.failed:
            return 0
        log(f"exit status {UNTIDY}: the cleanup was not orderly ({len(self.left)} processes "
            f"killed, {len(self.cleanup.failed)} cleanup actions failed; see above)")  # fmt: skip
        return UNTIDY


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, so that the cleanup runs."""

    def handler(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


HOSTS = Path("/etc/hosts")
HOSTS_TAG = "# edgeplane bench run"


def add_hosts_line(name: str) -> bool:
    """Make ``name`` resolve to 127.0.0.1 (a line of its own, removed by ``remove_hosts_line``):
    for clients that take the TLS name (SNI) from the URL, such as wrk. False when not needed."""
    if name.replace(".", "").isdigit():
        return False
    with HOSTS.open("a") as f:
        f.write(f"127.0.0.1 {name} {HOSTS_TAG}\n")
    return True


def remove_hosts_line(name: str) -> None:
    lines = HOSTS.read_text().splitlines(keepends=True)
    mine = f"127.0.0.1 {name} {HOSTS_TAG}\n"
    HOSTS.write_text("".join(line for line in lines if line != mine))
