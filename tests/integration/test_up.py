"""`edgeplane up`: serves the API, writes the admin token 0600, stops cleanly on signals."""

from __future__ import annotations

import signal
import stat
from pathlib import Path

import httpx
import pytest
from processes import start_up


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
