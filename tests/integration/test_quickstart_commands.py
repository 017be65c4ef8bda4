"""The commands the quick start leans on, as real processes: ``edgeplane demo-origin``,
``edgeplane dns query`` and the refusal of a broad ``--region`` by ``up`` and ``edge``."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from edge_agents import wait_for
from processes import clean_env, free_port

pytestmark = pytest.mark.integration

EDGEPLANE = [sys.executable, "-m", "edgeplane"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EDGEPLANE, *args],
        env=clean_env(COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_demo_origin_answers_on_every_port_and_stops_on_sigterm() -> None:
    ports = [free_port(), free_port()]
    proc = subprocess.Popen(
        [*EDGEPLANE, "demo-origin", "--port", str(ports[0]), "--port", str(ports[1])],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for port in ports:
            base = f"http://127.0.0.1:{port}"
            wait_for(lambda b=base: httpx.get(f"{b}/health").status_code == 200, 20, base)
            page = httpx.get(f"{base}/")
            assert f"port {port}" in page.text
            assert page.headers["cache-control"] == "no-store"
            assert page.headers["x-demo-origin"] == f"127.0.0.1:{port}"
            js = httpx.get(f"{base}/static/app.js?v=1")
            assert js.status_code == 200 and str(port) in js.text
            assert js.headers["content-type"].startswith("application/javascript")
            assert js.headers["cache-control"] == "public, max-age=86400"
            assert js.headers["etag"] and js.headers["last-modified"]
            head = httpx.head(f"{base}/static/app.js")
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == str(len(js.content))
            assert httpx.get(f"{base}/nothing").status_code == 404
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _, err = proc.communicate()
    assert "Ctrl-C" in err and "Traceback" not in err
    assert all(closed(p) for p in ports)


def test_demo_origin_refuses_a_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run("demo-origin", "--port", str(free_port()), "--port", str(port))
    assert done.returncode == 1, done
    assert f"--port {port}: cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
    done = run("demo-origin", "--port", "70000")
    assert done.returncode == 2 and "--port 70000: must be 1-65535" in done.stderr


def test_dns_query_bad_input_and_no_server() -> None:
    for args, hint in (
        (["example.com", "--server", "nope"], "--server"),
        (["example.com", "--server", "127.0.0.1:99999"], "--server"),
        (["example.com", "BOGUS"], "TYPE"),
        (["example.com", "--subnet", "999.1.1.1/3"], "--subnet"),
        (["a..b"], "NAME"),
    ):
        done = run("dns", "query", *args)
        assert done.returncode == 2, (args, done)
        assert hint in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
    # Nothing answers on this port (UDP): no answer within the timeout, exit 3.
    port = free_port()
    started = time.monotonic()
    done = run("dns", "query", "example.com", "--server", f"127.0.0.1:{port}", "--timeout", "0.5")
    assert done.returncode == 3, done
    assert f"127.0.0.1:{port}: no answer within 0.5 s" in done.stderr
    assert time.monotonic() - started < 30


def test_up_and_edge_refuse_a_broad_region(tmp_path: Path) -> None:
    done = run(
        "up", "--home", str(tmp_path / "home"), "--api-port", str(free_port()),
        "--region", "europe",
    )  # fmt: skip
    assert done.returncode == 1, done
    assert done.stderr.strip() == (
        "error: --region: 'europe' is a region type, not a location; the local edge node "
        "needs a location: one of eu-central, eu-north, eu-west, uk-south"
    )
    done = run("up", "--home", str(tmp_path / "home"), "--region", "mars-1")
    assert done.returncode == 1 and "unknown region 'mars-1'" in done.stderr, done
    done = run("edge", "--control-plane", "http://127.0.0.1:1", "--token", "t", "--region", "NA")
    assert done.returncode == 2, done
    assert "--region: 'NA' is a region code, not a location" in done.stderr
    assert "edgeplane region list --region na" in done.stderr
