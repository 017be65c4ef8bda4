"""`edgeplane up`: serves the API, writes the admin token 0600, stops cleanly on signals."""

from __future__ import annotations

import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import httpx
import pytest
from processes import ControlPlane, clean_env, free_port, start_up


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_up_serves_and_stops(tmp_path: Path, sig: int) -> None:
    home = tmp_path / "home"
    cp = start_up(home)
    try:
        token_file = home / "admin-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = cp.token
        assert token.startswith("ep_")
        headers = {"Authorization": f"Bearer {token}"}
        r = httpx.get(f"{cp.url}/api/v1/whoami", headers=headers)
        assert r.status_code == 200 and r.json()["roles"] == {"default": "admin"}
        assert httpx.get(f"{cp.url}/api/v1/infrastructure/regions").status_code == 401
        assert "Edgeplane" in httpx.get(f"{cp.url}/docs").text
        assert "/api/v1/infrastructure/route" in httpx.get(f"{cp.url}/openapi.json").json()["paths"]
        out = cp.output()
        assert f"{cp.url}/api/v1" in out and f"{cp.url}/docs" in out
    finally:
        code = cp.stop(sig)
    assert code == 0, cp.output()
    assert "stopped" in cp.output()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{cp.url}/healthz", timeout=1)


def test_up_keeps_its_token_and_state_across_restarts(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cp = start_up(home)
    token = cp.token
    headers = {"Authorization": f"Bearer {token}"}
    body = {
        "id": "keep-me",
        "name": "k",
        "type": "cache",
        "region": "europe",
        "location": "eu-west",
        "capacity": {"cpu": 1, "memory": 1, "storage": 1},
    }
    try:
        r = httpx.post(f"{cp.url}/api/v1/infrastructure/servers", json=body, headers=headers)
        assert r.status_code == 201, r.text
    finally:
        assert cp.stop() == 0
    cp = start_up(home)
    try:
        assert cp.token == token
        r = httpx.get(f"{cp.url}/api/v1/infrastructure/servers/keep-me", headers=headers)
        assert r.status_code == 200
    finally:
        assert cp.stop() == 0


def test_up_refuses_a_missing_geoip_database(tmp_path: Path) -> None:
    import subprocess
    import sys

    from processes import clean_env, free_port

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeplane",
            "up",
            "--home",
            str(tmp_path / "h"),
            "--api-port",
            str(free_port()),
        ],
        env=clean_env(EDGEPLANE_GEOIP_DB=str(tmp_path / "nope.mmdb")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "nope.mmdb" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_up_on_postgresql(tmp_path: Path, pg_cluster: object) -> None:
    """EDGEPLANE_DATABASE_URL puts the state in PostgreSQL; the home keeps only the token."""
    from processes import clean_env

    from pgcluster import PostgresCluster

    assert isinstance(pg_cluster, PostgresCluster)
    url = pg_cluster.create_database("up_test")
    home = tmp_path / "home"
    cp = start_up(home, env=clean_env(EDGEPLANE_DATABASE_URL=url))
    headers = {"Authorization": f"Bearer {cp.token}"}
    try:
        body = {"id": "pg-1", "name": "pg", "type": "primary", "region": "americas",
                "location": "us-west", "capacity": {"cpu": 2, "memory": 4, "storage": 10}}
        r = httpx.post(f"{cp.url}/api/v1/infrastructure/servers", json=body, headers=headers)
        assert r.status_code == 201, r.text
        assert "postgresql" in cp.output()
    finally:
        assert cp.stop() == 0, cp.output()
    assert not (home / "edgeplane.db").exists()
    import psycopg

    with psycopg.connect(pg_cluster.conninfo("up_test")) as conn:
        row = conn.execute("SELECT name FROM servers WHERE id = 'pg-1'").fetchone()
        events = conn.execute("SELECT count(*) FROM audit_events").fetchone()
    assert row == ("pg",)
    assert events is not None and events[0] >= 2  # the admin token, then the server
    pg_cluster.drop_database("up_test")


def pdns_pids(home: Path) -> list[int]:
    from edge_agents import pids_of

    return pids_of(b"pdns_server", home)


def test_up_starts_a_local_edge_node_and_stops_it() -> None:
    """`up` runs one edge node: a domain with a CDN origin is served through the edge HTTP
    port with X-Served-By, and its zone by the node's DNS server; after SIGTERM no nginx and
    no PowerDNS of that node is left."""
    import shutil

    from edge_agents import EdgeAgent, searchable_tmp, wait_for
    from origins import start_origin

    origin = start_origin("app")
    base = searchable_tmp("edgeplane-up-")
    home = base / "home"
    cp = start_up(home, edge=True)
    # The node as the tests see it (for its nginx processes), not started by the test.
    node = EdgeAgent("local", home, cp.http_port or 0, cp.url, "", base / "unused.log")
    token = cp.token
    try:
        headers = {"Authorization": f"Bearer {token}"}
        assert f"http://127.0.0.1:{cp.http_port}" in cp.output()
        assert stat.S_IMODE((home / "edge-token").stat().st_mode) == 0o600
        r = httpx.post(
            f"{cp.url}/api/v1/infrastructure/domains",
            json={"domain": "app.localhost"},
            headers=headers,
        )
        assert r.status_code == 201, r.text
        r = httpx.post(
            f"{cp.url}/api/v1/infrastructure/cdn",
            json={"origins": [{"url": origin.url}], "security": {"force_https": False}},
            headers=headers,
        )
        assert r.status_code in (200, 201), r.text

        def served() -> httpx.Response | None:
            r = node.get("app.localhost", "/hello")
            return r if r.status_code == 200 else None

        r = wait_for(served, 20, "app.localhost through the local edge node")
        assert r.headers["x-origin"] == "app"
        assert r.headers["x-served-by"] == "local"
        assert origin.hits() >= 1
        nodes = httpx.get(f"{cp.url}/api/v1/edge/nodes", headers=headers).json()
        assert [n["name"] for n in nodes] == ["local"] and nodes[0]["region"] == "us-east"
        assert node.nginx_pids()
        assert f"127.0.0.1:{cp.dns_port}" in cp.output()

        def answered() -> list[str] | None:
            q = dns.message.make_query("app.localhost", "A")
            try:
                msg = dns.query.udp(q, "127.0.0.1", port=cp.dns_port or 0, timeout=2)
            except dns.exception.Timeout:
                return None
            found = [r.to_text() for rrset in msg.answer for r in rrset]
            return found or None

        # The auto-configured apex answers with the edge node (its address: 127.0.0.1).
        assert wait_for(answered, 20, "app.localhost from the node's DNS") == ["127.0.0.1"]
        assert pdns_pids(home)
    finally:
        code = cp.stop()
        output = cp.output()
        pids = node.nginx_pids()
        pdns_left = pdns_pids(home)
        shutil.rmtree(base, ignore_errors=True)
        origin.terminate()
    assert code == 0, output
    assert pids == []
    assert pdns_left == []
    assert "stopped" in output
    # The edge token is never printed (it goes to the agent through its environment).
    assert "ep_" not in output.replace(token, "")


def wait_for_line(cp: ControlPlane, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in cp.output():
        assert cp.process.poll() is None, cp.output()
        assert time.monotonic() < deadline, cp.output()
        time.sleep(0.05)


def test_up_says_it_is_up_once_the_api_answers(tmp_path: Path) -> None:
    """The banner comes once the API listens: the first request after it is answered."""
    home = tmp_path / "home"
    port = free_port()
    log = tmp_path / "up.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "edgeplane", "up", "--home", str(home),
             "--api-port", str(port), "--no-edge"],
            stdout=out, stderr=subprocess.STDOUT, text=True, env=clean_env(),
        )  # fmt: skip
    cp = ControlPlane(process, home, f"http://127.0.0.1:{port}", log)
    try:
        wait_for_line(cp, "Edgeplane is up")
        assert httpx.get(f"{cp.url}/healthz", timeout=5).status_code == 200
    finally:
        assert cp.stop() == 0, cp.output()


def test_serve_runs_the_control_plane_alone(tmp_path: Path) -> None:
    """`edgeplane serve`: the API and its background work, no edge node; the same state as
    `up` in its home; SIGTERM stops it."""
    home = tmp_path / "home"
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "edgeplane", "serve", "--home", str(home),
             "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, text=True, env=clean_env(),
        )  # fmt: skip
    cp = ControlPlane(process, home, f"http://127.0.0.1:{port}", log)
    try:
        wait_for_line(cp, f"Edgeplane control plane on {cp.url}")
        headers = {"Authorization": f"Bearer {cp.token}"}
        r = httpx.get(f"{cp.url}/api/v1/whoami", headers=headers, timeout=5)
        assert r.status_code == 200 and r.json()["roles"] == {"default": "admin"}
        assert httpx.get(f"{cp.url}/api/v1/edge/nodes", headers=headers).json() == []
        assert "swagger-ui" in httpx.get(f"{cp.url}/docs").text
    finally:
        code = cp.stop()
    assert code == 0, cp.output()
    assert "stopped" in cp.output()
    assert "edge agent" not in cp.output()


@pytest.mark.parametrize("command", ["serve", "up"])
def test_a_port_in_use_is_a_clear_error_and_creates_no_state(tmp_path: Path, command: str) -> None:
    """The API's port already taken (say by a running `up`): a one-line error and exit 1,
    before any state directory is created."""
    flag = "--port" if command == "serve" else "--api-port"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "edgeplane", command, "--home", str(tmp_path / "home"),
             flag, str(port)],
            env=clean_env(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert f"could not listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stdout == ""  # never said it was up
    assert not (tmp_path / "home").exists()
