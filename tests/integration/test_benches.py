"""Every bench in ``bench/`` runs end to end in its short mode (``--quick``), so none can rot
unseen: it must exit 0, print its table, and leave no process behind.

Nothing here looks at the figures (tests never assert on speed). Each bench runs as a
subprocess with ``TMPDIR`` and its working directory in a folder of this test, and a scope of
the run's marker of its own (``tests/leftovers.py``), so that anything it left running is found
and killed here (a bench also sweeps after itself, and then exits with status 3).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from leftovers import MARKER, Owner, ancestors, start_ticks

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 240

# bench (its script, and options before --quick) -> (the tools it needs, a line its table prints)
BENCHES = {
    "api": (("initdb",), "route_request cdn"),
    "api --concurrency": (("initdb", "wrk"), "GET /domains (100)"),
    "edge": (("nginx", "wrk"), "cached hits, req/s (vs reference)"),
    "dns": (
        ("nginx", "pdns_server", "pdnsutil", "pdns_control", "dnsperf", "dnsdist"),
        "static A: qps",
    ),
    "certs": (("nginx", "pdns_server", "pebble"), "API call -> EVERY node serves"),
    "deploy": (("nginx", "pdns_server"), "rollback -> every node serves"),
    "stapling": (("nginx",), "certificates: apply of a change"),
    "ddos": (("nginx",), "client p50 ms, during vs before"),
    "snapshot": ((), "build after a domain added"),
    "observability": (("nginx", "wrk"), "cached hits 1 KiB, req/s: metrics on"),
    "ui": (("chromium",), "first load to overview on screen"),
    "iac": (("nginx", "pdns_server"), "apply -> every node serves the last domain"),
    "dr": (("nginx", "pdns_server"), "failover: primary killed -> backup answers"),
    "scaling": (("nginx", "wrk"), "load rising -> new instance serving"),
    "bots --no-instructions": (("nginx", "wrk"), "bots site, browser (req/s)"),
}


def _missing(tools: tuple[str, ...]) -> list[str]:
    from pgcluster import find_pg_bin

    return [t for t in tools if (find_pg_bin() is None if t == "initdb" else not shutil.which(t))]


@pytest.mark.timeout(TIMEOUT_S + 120)  # room to stop a bench that overran, and to look
@pytest.mark.parametrize("name", list(BENCHES))
def test_bench_short_mode(name: str) -> None:
    tools, expected = BENCHES[name]
    script, *options = name.split()
    missing = _missing(tools)
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"bench/{name}.py needs {missing}: scripts/bootstrap --with-test")
        pytest.skip(f"bench/{name}.py needs {missing} (run scripts/bootstrap --with-test)")
    work = Path(tempfile.mkdtemp(prefix="b-"))  # short: a node's sockets lie far below it
    work.chmod(0o755)
    marker = f"{os.environ.get(MARKER, 'tests')}/test-bench-{name}"
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
            out, err = process.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)  # the bench stops what it started
            try:
                out, err = process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                out, err = process.communicate()
            pytest.fail(f"bench/{name}.py --quick: not done within {TIMEOUT_S} s\n{err[-5000:]}")
    finally:
        left = owner.kill()
        shutil.rmtree(work, ignore_errors=True)
    took = time.monotonic() - started
    print(f"\nbench/{name}.py --quick: {took:.0f} s")
    assert not left, (
        f"bench/{name}.py left processes running:\n" + "\n".join(p.describe() for p in left)
    )
    assert process.returncode == 0, (
        f"bench/{name}.py --quick exited {process.returncode}\n--- stderr\n{err[-8000:]}"
        f"\n--- stdout\n{out[-3000:]}"
    )
    assert expected in out, f"bench/{name}.py printed no table:\n{out[-3000:]}"
