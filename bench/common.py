"""What the bench scripts share: logging, percentiles, the figures table, cleanup."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


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
    def __init__(self) -> None:
        self.actions: list[Callable[[], object]] = []

    def add(self, fn: Callable[[], object]) -> None:
        self.actions.append(fn)

    def run(self) -> None:
        while self.actions:
            fn = self.actions.pop()
            with contextlib.suppress(Exception):
                fn()


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


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def kill_if(pid: int, needle: bytes) -> None:
    """SIGKILL ``pid`` if it is still a process whose command line names ``needle``."""
    if needle in _cmdline(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def stop_agent(agent: Any) -> None:
    """Stop an ``edge_agents.EdgeAgent`` (it stops its nginx and PowerDNS); then make sure
    they are gone."""
    with contextlib.suppress(Exception):
        agent.stop()
    pdns_dir = agent.home / "edge" / agent.name / "pdns"
    with contextlib.suppress(OSError, ValueError):
        kill_if(int((pdns_dir / "pdns.pid").read_text().strip()), str(pdns_dir).encode())
    with contextlib.suppress(Exception):
        for pid in agent.nginx_pids():
            kill_if(pid, str(agent.prefix).encode())
