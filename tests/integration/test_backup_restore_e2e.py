"""Disaster recovery of the control plane, end to end (issue 16's first acceptance point): a
real control plane backs up to a second host over SFTP (sshd in a network namespace); the
machine's state is wiped; ``edgeplane restore`` from the off-site copy alone brings back the
same exported state, and the old tokens work; the edge node served its cached content the
whole time (a client loop from before the backup to after the restore: zero failed requests;
the requests that go to the origin are counted and reported) and reconnects by itself."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from edge_agents import Api, EdgeAgent, new_agent, wait_for
from origins import OriginSet, origin_set
from processes import clean_env, start_up
from sshd import SshServer

pytestmark = pytest.mark.integration
DOMAIN = "dr.localhost"
EDGEPLANE = [sys.executable, "-m", "edgeplane"]


@pytest.fixture
def origins() -> Iterator[OriginSet]:
    with origin_set() as s:
        yield s


class Loop(threading.Thread):
    """GETs through the edge until stopped: a cached path and an origin path."""

    def __init__(self, node: EdgeAgent) -> None:
        super().__init__(daemon=True)
        self.node = node
        self.stopping = threading.Event()
        self.results: dict[str, Counter[str]] = {"cached": Counter(), "origin": Counter()}

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stopping.is_set():
                for kind, path in (("cached", "/static/app.css"), ("origin", "/api/items")):
                    try:
                        r = client.get(f"{self.node.url}{path}", headers={"Host": DOMAIN})
                        outcome = "ok" if r.status_code == 200 else str(r.status_code)
                    except httpx.HTTPError as exc:
                        outcome = type(exc).__name__
                    self.results[kind][outcome] += 1
                time.sleep(0.02)

    def stop(self) -> dict[str, Counter[str]]:
        self.stopping.set()
        self.join(10)
        return self.results


def cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EDGEPLANE, *args],
        env=clean_env(EDGEPLANE_HOME=str(home), **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_backup_wipe_restore_from_offsite_while_the_edge_serves(
    sshd_host: SshServer, origins: OriginSet, tmp_path: Path
) -> None:
    offsite = sshd_host.url("cp-backups", name="offsite")
    env = clean_env(EDGEPLANE_BACKUP_TARGETS=offsite, EDGEPLANE_BACKUP_SCHEDULE="off")
    home = tmp_path / "cp"
    cp = start_up(home, env=env)
    port = int(cp.url.rsplit(":", 1)[1])
    admin = Api(cp)
    agent: EdgeAgent | None = None
    loop: Loop | None = None
    try:
        agent = new_agent(cp, admin, tmp_path, "dr-edge").start()
        origin = origins.start("app")
        admin.ok("POST", "/api/v1/infrastructure/domains", json={"domain": DOMAIN})
        admin.ok(
            "POST",
            "/api/v1/infrastructure/cdn",
            json={
                "origins": [{"url": origin.url}],
                "cache_rules": [{"pattern": "/static/*", "ttl": 3600}],
                "security": {"force_https": False},
            },
        )
        node = agent
        wait_for(lambda: node.get(DOMAIN, "/static/app.css").status_code == 200, 30, "served")
        loop = Loop(node)
        loop.start()
        editor = admin.ok(
            "POST", "/api/v1/tokens", json={"name": "ci", "roles": {"default": "editor"}}
        )
        before: dict[str, Any] = admin.ok("GET", "/api/v1/iac/export")

        made = cli(
            home, "backup", "create", "--json", EDGEPLANE_URL=cp.url, EDGEPLANE_TOKEN=cp.token
        )
        assert made.returncode == 0, made.stderr
        assert '"offsite"' in made.stdout and '"local"' in made.stdout
        key = tmp_path / "backup.key"
        shutil.copyfile(home / "backup.key", key)  # the operator keeps it off the machine
        admin_token = cp.token

        # The machine is lost: the control plane's process and every file of its home.
        cp.stop()
        shutil.rmtree(home)
        refused = cli(home, "restore", "--from", offsite, "--key-file", str(tmp_path / "nokey"))
        assert refused.returncode != 0 and "no backup key file" in refused.stderr
        restored = cli(home, "restore", "--from", offsite, "--key-file", str(key), "--json")
        assert restored.returncode == 0, restored.stderr
        assert not (home / "backups").exists() or not any((home / "backups").iterdir())

        cp = start_up(home, env=env, api_port=port)
        assert cp.token == admin_token
        admin2 = Api(cp)
        try:
            assert admin2.ok("GET", "/api/v1/iac/export") == before
            r = httpx.get(
                f"{cp.url}/api/v1/infrastructure/domains",
                headers={"Authorization": f"Bearer {editor['token']}"},
            )
            assert r.status_code == 200 and DOMAIN in r.text
            # The node reconnects by itself and takes the restored state.
            restarted = time.time()
            wait_for(
                lambda: any(
                    n["name"] == "dr-edge"
                    and n["status"] == "online"
                    and n["last_seen_at"]
                    and _ts(n["last_seen_at"]) > restarted
                    for n in admin2.nodes()
                ),
                20,
                "the edge node reconnected",
            )
            time.sleep(1.0)
        finally:
            admin2.close()
        results = loop.stop()
        loop = None
        print("requests through the edge during backup, loss and restore:", dict(results))
        assert results["cached"]["ok"] > 50
        assert set(results["cached"]) == {"ok"}, results  # not one failed cached request
        assert results["origin"]["ok"] > 0
    finally:
        if loop is not None:
            loop.stop()
        if agent is not None:
            agent.stop()
        admin.close()
        cp.stop()


def _ts(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_the_schedule_makes_and_verifies_backups_by_itself(tmp_path: Path) -> None:
    """The runner's backup jobs, with spec 004's periods shortened: a full, then incrementals
    extending it, a configuration backup, each verified by a restore, without a call."""
    env = clean_env(
        EDGEPLANE_BACKUP_SCHEDULE="on",
        EDGEPLANE_BACKUP_START_DELAY="0",
        EDGEPLANE_BACKUP_INCREMENTAL_EVERY="2",
        EDGEPLANE_BACKUP_VERIFY_EVERY="2",
    )
    cp = start_up(tmp_path / "cp", env=env)
    admin = Api(cp)
    try:
        admin.ok(
            "POST",
            "/api/v1/infrastructure/datacenters",
            json={"id": "dc-1", "name": "DC 1", "location": "us-east", "tier": 3,
                  "capacity": {"cpu": 8, "memory": 32, "storage": 100}},
        )  # fmt: skip

        def made() -> list[dict[str, Any]] | None:
            items: list[dict[str, Any]] = admin.ok("GET", "/api/v1/backups")["items"]
            kinds = {b["kind"] for b in items if b["verify_ok"] is True}
            return items if {"full", "incremental", "config"} <= kinds else None

        items = wait_for(made, 30, "a full, an incremental and a config backup, verified")
        full = next(b for b in items if b["kind"] == "full")
        incremental = next(b for b in items if b["kind"] == "incremental")
        assert incremental["chain"][0] == full["id"]
        assert not [b for b in items if b["verify_ok"] is False], items
        assert (cp.home / "backups" / f"{full['id']}.backup").is_file()
    finally:
        admin.close()
        cp.stop()
