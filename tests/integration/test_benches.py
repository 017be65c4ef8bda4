"""Every bench in ``bench/`` runs end to end in its short mode (``--quick``), so none can rot
unseen: it must exit 0, print its table, and leave no process behind.

Nothing here looks at the figures (tests never assert on speed). Each bench runs as a
subprocess with ``TMPDIR`` and its working directory in a folder of its own, and a scope of
the run's marker of its own (``tests/leftovers.py``), so that anything it left running is found
and killed here (a bench also sweeps after itself, and then exits with status 3). They run two
at a time (``Pool``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from leftovers import MARKER, Owner, ancestors, start_ticks

pytestmark = [pytest.mark.integration, pytest.mark.serial]

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 240
PARALLEL = 2  # short modes run at once (see Pool)

# bench (its script, and options before --quick) -> (the tools it needs, a line its table prints);
# the longest first, one that keeps the CPU busy beside one that mostly waits (see Pool)
BENCHES = {
    "edge": (("nginx", "wrk"), "cached hits, req/s (vs reference)"),
    "scaling": (("nginx", "wrk"), "load rising -> new instance serving"),
    "functions": (("nginx", "wrk", "node"), "trivial function / same site's cached HIT"),
    "observability": (("nginx", "wrk"), "cached hits 1 KiB, req/s: metrics on"),
    "dr": (("nginx", "pdns_server"), "failover: primary killed -> backup answers"),
    "dns": (
        ("nginx", "pdns_server", "pdnsutil", "pdns_control", "dnsperf", "dnsdist"),
        "static A: qps",
    ),
    "iac": (("nginx", "pdns_server"), "apply -> every node serves the last domain"),
    "api --concurrency": (("initdb", "wrk"), "GET /domains (100)"),
    "certs": (("nginx", "pdns_server", "pebble"), "API call -> EVERY node serves"),
    "api": (("initdb",), "route_request cdn"),
    "deploy": (("nginx", "pdns_server"), "rollback -> every node serves"),
    "ui": (("chromium",), "first load to overview on screen"),
    "bots --no-instructions": (("nginx", "wrk"), "bots site, browser (req/s)"),
    "ddos": (("nginx",), "client p50 ms, during vs before"),
    "stapling": (("nginx",), "certificates: apply of a change"),
    "snapshot": ((), "build after a domain added"),
}


def _missing(tools: tuple[str, ...]) -> list[str]:
    from pgcluster import find_pg_bin

    return [t for t in tools if (find_pg_bin() is None if t == "initdb" else not shutil.which(t))]


@dataclass
class Run:
    """What one bench's short mode did."""

    name: str
    skipped: str | None = None  # why it did not run
    returncode: int | None = None
    out: str = ""
    err: str = ""
    overran: bool = False
    left: list[str] = field(default_factory=list)  # processes it left running
    took: float = 0.0


class Pool:
    """The benches' short modes, ``PARALLEL`` at a time, in the order of ``BENCHES``.

    Most of a short mode is waiting (a control plane and a node starting, a scale-in window
    passing, a failover being detected), and nothing here reads the figures, so two at once
    take about half the time of one after the other. Each bench keeps its own working
    directory, ``TMPDIR`` and marker scope, so what one leaves running is found and killed
    without touching the other's."""

    def __init__(self, names: list[str]) -> None:
        self.executor = ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="bench")
        self.runs = {name: self.executor.submit(_run_bench, name) for name in names}

    def result(self, name: str) -> Run:
        return self.runs[name].result(timeout=len(self.runs) * (TIMEOUT_S + 60))

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def _run_bench(name: str) -> Run:
    run = Run(name)
    tools, _ = BENCHES[name]
    script, *options = run.name.split()
    missing = _missing(tools)
    if missing:
        if os.environ.get("CI") == "true":
            run.err = f"bench/{run.name}.py needs {missing}: scripts/bootstrap --with-test"
            run.returncode = -1
            return run
        run.skipped = f"bench/{run.name}.py needs {missing} (run scripts/bootstrap --with-test)"
        return run
    work = Path(tempfile.mkdtemp(prefix="b-"))  # short: a node's sockets lie far below it
    work.chmod(0o755)
    marker = f"{os.environ.get(MARKER, 'tests')}/test-bench-{run.name}"
    env = dict(os.environ, TMPDIR=str(work), **{MARKER: marker})
    me = os.getpid()
    owner = Owner(
        marker=marker,
        roots=[work],
        since=start_ticks(me),
        exclude=frozenset(ancestors(me)),
    )
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / f"{script}.py"), *options, "--quick"],
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        try:
            run.out, run.err = process.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            run.overran = True
            process.send_signal(signal.SIGTERM)  # the bench stops what it started
            try:
                run.out, run.err = process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                run.out, run.err = process.communicate()
    finally:
        run.left = [p.describe() for p in owner.kill()]
        shutil.rmtree(work, ignore_errors=True)
        run.returncode = process.returncode
        run.took = time.monotonic() - started
    return run


@pytest.fixture(scope="module")
def pool(request: pytest.FixtureRequest) -> Iterator[Pool]:
    """The benches whose tests were selected, in the order of ``BENCHES``."""
    chosen = {
        item.callspec.params["name"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_bench_short_mode"
    }
    pool = Pool([name for name in BENCHES if name in chosen])
    yield pool
    pool.close()


# A bench may wait for its turn behind PARALLEL others, each within TIMEOUT_S (+60 s to stop).
@pytest.mark.timeout(3 * (TIMEOUT_S + 60))
@pytest.mark.parametrize("name", list(BENCHES))
def test_bench_short_mode(name: str, pool: Pool) -> None:
    run = pool.result(name)
    if run.skipped:
        pytest.skip(run.skipped)
    _, expected = BENCHES[name]
    print(f"\nbench/{name}.py --quick: {run.took:.0f} s")
    assert not run.overran, (
        f"bench/{name}.py --quick: not done within {TIMEOUT_S} s\n{run.err[-5000:]}"
    )
    assert not run.left, f"bench/{name}.py left processes running:\n" + "\n".join(run.left)
    assert run.returncode == 0, (
        f"bench/{name}.py --quick exited {run.returncode}\n--- stderr\n{run.err[-8000:]}"
        f"\n--- stdout\n{run.out[-3000:]}"
    )
    assert expected in run.out, f"bench/{name}.py printed no table:\n{run.out[-3000:]}"
