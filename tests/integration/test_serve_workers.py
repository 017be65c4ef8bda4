"""`edgeplane serve --workers N`: several API processes on one port, under a supervisor.

One control plane with two workers on SQLite for the module. Requests are answered by both
workers, told apart from outside through /proc (which worker holds the server's end of each
connection); ``/metrics`` sums both workers' counters, and one worker alone took the
background runner's lease. A worker SIGKILLed under load is started again while requests keep
succeeding (only those in flight on it may fail). SIGTERM on the supervisor stops every worker
and leaves no process behind. Bad ``--workers`` values are refused, naming the flag.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from edge_agents import wait_for
from homeprocs import processes_of
from processes import ControlPlane, clean_env, free_port
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from edgeplane.cli.main import app as cli_app

pytestmark = [pytest.mark.integration, pytest.mark.serial]

WORKERS = 2
PROC = Path("/proc")


def children(pid: int) -> set[int]:
    """The live child processes of ``pid`` (zombies have ended)."""
    found = set()
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat[0] != "Z" and int(stat[1]) == pid:
            found.add(int(entry.name))
    return found


def server_end(server_port: int, client_port: int) -> str | None:
    """The socket inode of the server's end of the loopback connection from ``client_port``."""
    local, remote = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    for line in (PROC / "net" / "tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote and fields[3] == "01":  # ESTABLISHED
            return fields[9]
    return None


def holder(inode: str, pids: set[int]) -> int | None:
    """Which of ``pids`` has the socket ``inode`` open."""
    for pid in pids:
        try:
            fds = list((PROC / str(pid) / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


def served_by(cp: ControlPlane, workers: set[int]) -> tuple[http.client.HTTPConnection, int]:
    """A new kept-alive connection with one /healthz answered on it, and the worker serving it."""
    port = int(cp.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/healthz")
    response = conn.getresponse()
    response.read()
    assert response.status == 200
    assert conn.sock is not None
    inode = server_end(port, conn.sock.getsockname()[1])
    assert inode is not None
    pid = holder(inode, workers)
    assert pid is not None, f"no worker of {workers} holds the connection"
    return conn, pid


def scrape(cp: ControlPlane) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(
        f"{cp.url}/metrics", headers={"Authorization": f"Bearer {cp.token}"}, timeout=10
    ).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


HEALTHZ_OK = (
    "edgeplane_api_requests_total",
    (("method", "GET"), ("route", "/healthz"), ("status", "200")),
)
LEADER_TERMS = ("edgeplane_background_leader_terms_total", ())


@pytest.fixture(scope="module")
def cp(tmp_module: Path) -> Iterator[ControlPlane]:
    home = tmp_module / "home"
    port = free_port()
    log = tmp_module / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "edgeplane", "serve", "--home", str(home),
             "--port", str(port), "--workers", str(WORKERS)],
            stdout=out, stderr=subprocess.STDOUT, text=True, env=clean_env(),
        )  # fmt: skip
    plane = ControlPlane(process, home, f"http://127.0.0.1:{port}", log)
    try:
        banner = f"Edgeplane control plane on {plane.url} "
        wait_for(lambda: banner in plane.output() or process.poll() is not None, 60, "banner")
        assert process.poll() is None, plane.output()
        assert f"; {WORKERS} workers)" in plane.output()
        yield plane
    finally:
        if plane.process.poll() is None:
            plane.stop(signal.SIGKILL)


def test_requests_are_answered_by_every_worker_and_metrics_sum_them(cp: ControlPlane) -> None:
    workers = wait_for(lambda: len(w := children(cp.process.pid)) == WORKERS and w, 10, "workers")
    served: Counter[int] = Counter()
    conns: list[http.client.HTTPConnection] = []

    def one_more() -> bool:
        conn, pid = served_by(cp, workers)
        conns.append(conn)
        served[pid] += 1
        return len(served) == WORKERS

    try:
        wait_for(one_more, 20, "requests answered by both workers", every=0)
    finally:
        for conn in conns:
            conn.close()
    assert set(served) == workers
    # Whichever worker answers the scrape, it counts every worker's requests.
    assert scrape(cp)[HEALTHZ_OK] >= sum(served.values()) > max(served.values())
    # One worker took the background runner's lease, and kept it.
    wait_for(lambda: scrape(cp).get(LEADER_TERMS) == 1, 10, "a worker runs the jobs")
    assert scrape(cp)[LEADER_TERMS] == 1


def test_a_killed_worker_is_started_again_while_requests_succeed(cp: ControlPlane) -> None:
    before = wait_for(lambda: len(w := children(cp.process.pid)) == WORKERS and w, 10, "workers")
    stop = threading.Event()
    ok: list[float] = []
    failed: list[str] = []

    def load() -> None:
        while not stop.is_set():
            try:  # a new connection each time: only a request in flight can meet the kill
                response = httpx.get(f"{cp.url}/healthz", timeout=5)
            except httpx.TransportError as exc:
                failed.append(repr(exc))
                continue
            if response.status_code == 200:
                ok.append(time.monotonic())
            else:
                failed.append(f"status {response.status_code}")

    threads = [threading.Thread(target=load, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(ok) >= 20, 10, "requests before the kill")
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        now = wait_for(
            lambda: len(w := children(cp.process.pid)) == WORKERS and victim not in w and w,
            15,
            "the worker started again",
        )
        (new,) = now - before
        conns: list[http.client.HTTPConnection] = []

        def new_one_serves() -> bool:
            conn, pid = served_by(cp, now)
            conns.append(conn)
            return pid == new

        try:
            wait_for(new_one_serves, 10, "the new worker serves", every=0)
        finally:
            for conn in conns:
                conn.close()
        after = len(ok)
        wait_for(lambda: len(ok) >= after + 20, 10, "requests after the restart")
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert any(t > killed_at for t in ok)
    assert len(failed) <= len(threads), failed  # at most those in flight on the killed worker
    print(f"\n{len(ok)} requests answered, {len(failed)} failed across the kill")
    out = cp.output()
    assert f"(pid {victim}) killed by SIGKILL" in out, out
    assert f"started again (pid {new})" in out, out


def test_sigterm_stops_every_worker_and_leaves_nothing(cp: ControlPlane) -> None:
    workers = children(cp.process.pid)
    assert len(workers) == WORKERS
    port = int(cp.url.rsplit(":", 1)[1])
    assert cp.stop(signal.SIGTERM, timeout=30) == 0, cp.output()
    assert cp.output().rstrip().endswith("stopped"), cp.output()
    assert processes_of(cp.home, [port]) == []
    assert not any(PROC.joinpath(str(pid)).exists() for pid in workers)
    assert list((cp.home / "prometheus-workers").iterdir()) == []  # its metrics folder removed


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0", "greater than or equal to 1"),
        ("65", "less than or equal to 64"),
    ],
)
def test_bad_worker_counts_are_refused(tmp_path: Path, value: str, reason: str) -> None:
    result = CliRunner().invoke(
        cli_app, ["serve", "--home", str(tmp_path / "home"), "--workers", value]
    )
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--workers'" in result.output
    assert reason in result.output
    assert not (tmp_path / "home").exists()
