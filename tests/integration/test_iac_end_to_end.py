"""Infrastructure as code on real control planes and edge nodes: ``edgeplane up`` on SQLite
(A) and on PostgreSQL (B), each with its edge node (nginx and PowerDNS), and a real origin.

- A project built by API calls on A is exported, applied to the empty B, exported again: the
  two files are equal, and B's edge serves the same site.
- A file with one change of each kind plans exactly those, applies, and plans nothing after.
- A file whose 50th of 100 domains is invalid is refused naming it; nothing changes anywhere
  (revision, objects, edge).
- A record changed through the API after an apply: ``drift`` names it and the token.
- staging -> prod: ``promote`` applies only the differences; prod's token cannot touch staging.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from edge_agents import Api, wait_for
from processes import ControlPlane, clean_env, free_port, start_up

from pgcluster import PostgresCluster

pytestmark = pytest.mark.integration

INV = "/api/v1/infrastructure"
SITE = "shop.localhost"  # reserved: verified at once
WEBHOOK_SECRET = "webhook-secret-9f3K"


def cli(
    cp: ControlPlane,
    *args: str,
    code: int = 0,
    token: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "edgeplane", *args],
        env=clean_env(
            EDGEPLANE_URL=cp.url, EDGEPLANE_TOKEN=token or cp.token, COLUMNS="200", **(env or {})
        ),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done


@pytest.fixture(scope="module")
def origin() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeplane", "demo-origin", "--port", str(port)],
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200,
            20,
            "the demo origin",
        )
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="module")
def a(tmp_module: Path) -> Iterator[ControlPlane]:
    cp = start_up(tmp_module / "a", edge=True)
    yield cp
    cp.stop()


@pytest.fixture(scope="module")
def b(tmp_module: Path, pg_cluster: PostgresCluster) -> Iterator[ControlPlane]:
    url = pg_cluster.create_database("iac_e2e_b")
    cp = start_up(tmp_module / "b", edge=True, env=clean_env(EDGEPLANE_DATABASE_URL=url))
    yield cp
    cp.stop()
    pg_cluster.drop_database("iac_e2e_b")


def edge_get(cp: ControlPlane, host: str, path: str = "/") -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{cp.http_port}{path}", headers={"Host": host}, timeout=5)


def build_by_api(api: Api, origin: int, site: Path) -> None:
    api.ok(
        "POST",
        f"{INV}/datacenters",
        json={
            "id": "dc-na",
            "name": "NA",
            "location": "us-east",
            "tier": 3,
            "capacity": {"cpu": 100, "memory": 400, "storage": 1000},
        },
    )
    api.ok(
        "POST",
        f"{INV}/datacenters",
        json={
            "id": "dc-eu",
            "name": "EU",
            "location": "eu-west",
            "tier": 3,
            "capacity": {"cpu": 100, "memory": 400, "storage": 1000},
        },
    )
    api.ok(
        "POST",
        f"{INV}/servers",
        json={
            "id": "srv-1",
            "name": "web 1",
            "type": "primary",
            "data_center_id": "dc-na",
            "capacity": {"cpu": 8, "memory": 32, "storage": 100},
        },
    )
    api.ok("POST", f"{INV}/services", json={"id": "svc-web", "server_id": "srv-1", "type": "web"})
    api.ok(
        "POST",
        f"{INV}/dr-configs",
        json={
            "id": "dr-1",
            "name": "NA to EU",
            "primary_dc": "dc-na",
            "backup_dc": "dc-eu",
            "rpo": 15,
            "rto": 60,
        },
    )
    api.ok(
        "POST",
        f"{INV}/loadbalancer",
        json={
            "id": "web",
            "name": "Web",
            "algorithm": "least_connections",
            "backends": [{"address": f"127.0.0.1:{origin}", "weight": 100}],
            "health_check": {"path": "/health", "interval_s": 3, "timeout_s": 1},
        },
    )
    api.ok("POST", f"{INV}/domains", json={"domain": SITE})
    api.ok(
        "PATCH",
        f"{INV}/domains/{SITE}/records",
        json={
            "set": [
                {"name": "blog", "type": "CNAME", "values": [f"{SITE}."], "ttl": 300},
                {"name": "@", "type": "TXT", "values": ["hello from the file"], "ttl": 600},
            ]
        },
    )
    api.ok(
        "POST",
        f"{INV}/cdn",
        json={
            "origins": [{"load_balancer": "web"}],
            "cache_rules": [{"id": "static", "pattern": "/static/*", "ttl": 600}],
            "security": {"force_https": False},
        },
    )
    api.ok(
        "POST",
        "/api/v1/alerts/channels",
        json={
            "id": "ops",
            "name": "Ops hook",
            "config": {
                "kind": "webhook",
                "url": "http://127.0.0.1:9/hook",
                "secret": WEBHOOK_SECRET,
            },
        },
    )
    api.ok(
        "POST",
        "/api/v1/alerts/rules",
        json={
            "id": "slow",
            "name": "Slow",
            "series": "response_time_p95_ms",
            "comparison": ">",
            "threshold": 800,
            "channels": ["ops"],
        },
    )
    api.ok("POST", "/api/v1/costs/budgets", json={"id": "monthly", "amount": 250})
    upload = httpx.post(
        f"{api.cp.url}{INV}/edge/bundles",
        content=_tar(site),
        headers={
            "Authorization": f"Bearer {api.cp.token}",
            "Content-Type": "application/octet-stream",
        },
        timeout=60,
    )
    assert upload.status_code in (200, 201), upload.text
    api.ok("POST", f"{INV}/edge/deploy", json={"bundle": upload.json()["bundle"]["id"]})


def _tar(root: Path) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for p in sorted(root.rglob("*")):
            tar.add(p, arcname=str(p.relative_to(root)), recursive=False)
    return buf.getvalue()


def served(cp: ControlPlane) -> bool:
    page = edge_get(cp, SITE, "/")
    asset = edge_get(cp, SITE, "/static/app.js")
    return page.status_code == 200 and "made by the file" in page.text and asset.status_code == 200


def test_round_trip_sqlite_to_postgresql_serves_the_same_site(
    a: ControlPlane, b: ControlPlane, origin: int, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>made by the file</h1>\n")
    api_a = Api(a)
    build_by_api(api_a, origin, site)
    wait_for(lambda: served(a), 30, "A's edge serves the site")

    work = tmp_path / "work"
    work.mkdir()
    cli(a, "export", "-o", "a.yaml", "--bundle-dir", "bundles", cwd=work)
    exported = yaml.safe_load((work / "a.yaml").read_text())
    secret = exported["channels"][0]["config"]["secret"]
    assert list(secret) == ["env"] and WEBHOOK_SECRET not in (work / "a.yaml").read_text()

    env = {secret["env"]: WEBHOOK_SECRET}
    before = httpx.get(
        f"{b.url}/api/v1/edge/nodes", headers={"Authorization": f"Bearer {b.token}"}
    ).json()
    shown = cli(b, "apply", "-f", "a.yaml", "--yes", "--wait", cwd=work, env=env)
    assert (
        "Applied as revision" in shown.stdout
        and "Every online edge node serves it." in shown.stdout
    )
    assert before[0]["applied_revision"] is not None
    cli(b, "export", "-o", "b.yaml", "--bundle-dir", "bundles", cwd=work)
    assert (work / "b.yaml").read_text() == (work / "a.yaml").read_text()
    wait_for(lambda: served(b), 30, "B's edge serves the same site")
    assert edge_get(b, SITE, "/").text == edge_get(a, SITE, "/").text
    again = cli(b, "plan", "-f", "a.yaml", "--detailed-exitcode", cwd=work, env=env)
    assert "No changes" in again.stdout


def test_plan_is_exact_and_a_second_plan_shows_nothing(b: ControlPlane, tmp_path: Path) -> None:
    doc = json.loads(cli(b, "export", "--json").stdout)
    doc.pop("channels", None)  # its secret is not this test's subject
    doc["domains"].append({"name": "blog.localhost"})  # create
    www = next(r for r in doc["domains"][0]["records"] if r.get("name") == "blog")
    www["ttl"] = 120  # update
    doc["services"][0]["type"] = "api"  # replace: a service's type cannot change in place
    doc["budgets"] = []  # delete (pruned)
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(doc))
    plan = json.loads(cli(b, "plan", "-f", str(path), "--prune", "--json").stdout)
    got = {(c["section"], c["key"], c["action"]) for c in plan["changes"]}
    assert got == {
        ("domains", "blog.localhost", "create"),
        ("domains", SITE, "update"),
        ("services", "svc-web", "replace"),
        ("budgets", "monthly", "delete"),
    }
    update = next(c for c in plan["changes"] if c["action"] == "update")
    assert [(f["before"], f["after"]) for f in update["fields"] if f["path"].endswith(".ttl")] == [
        (300, 120)
    ]
    replace = next(c for c in plan["changes"] if c["action"] == "replace")
    assert ("type", "web", "api") in [
        (f["path"], f["before"], f["after"]) for f in replace["fields"]
    ]
    cli(b, "apply", "-f", str(path), "--prune", "--yes")
    done = cli(b, "plan", "-f", str(path), "--prune", "--detailed-exitcode")
    assert "No changes" in done.stdout
    wait_for(lambda: edge_get(b, "blog.localhost").status_code != 421, 10, "blog served")


def test_the_50th_of_100_invalid_changes_nothing_anywhere(b: ControlPlane, tmp_path: Path) -> None:
    headers = {"Authorization": f"Bearer {b.token}"}
    nodes = httpx.get(f"{b.url}/api/v1/edge/nodes", headers=headers).json()
    revision = nodes[0]["applied_revision"]
    domains = [
        {
            "name": f"bulk{n}.localhost",
            "records": [{"name": "www", "type": "A", "values": ["127.0.0.1"]}],
        }
        for n in range(1, 101)
    ]
    domains[49]["records"][0]["values"] = ["not-an-address"]
    path = tmp_path / "bulk.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "domains": domains}))
    for verb in ("plan", "apply"):
        err = cli(
            b, verb, "-f", str(path), "--yes" if verb == "apply" else "--prune", code=1
        ).stderr
        assert "domains[bulk50.localhost]" in err and "records" in err and "(item 50" in err
    listed = httpx.get(f"{b.url}{INV}/domains", params={"q": "bulk"}, headers=headers).json()
    assert listed["domains"] == []
    nodes = httpx.get(f"{b.url}/api/v1/edge/nodes", headers=headers).json()
    assert nodes[0]["applied_revision"] == revision
    assert edge_get(b, "bulk1.localhost").status_code != 200


def test_drift_names_the_record_and_the_token(b: ControlPlane) -> None:
    api = Api(b)
    doc = json.loads(cli(b, "export", "--json").stdout)
    doc.pop("channels", None)
    path = b.home.parent / "drift.json"
    path.write_text(json.dumps(doc))
    cli(b, "apply", "-f", str(path), "--yes")
    assert "No drift" in cli(b, "drift").stdout
    token = api.ok(
        "POST", "/api/v1/tokens", json={"name": "night-shift", "roles": {"default": "editor"}}
    )
    r = httpx.patch(
        f"{b.url}{INV}/domains/{SITE}/records",
        json={"set": [{"name": "@", "type": "TXT", "values": ["changed by hand"], "ttl": 600}]},
        headers={"Authorization": f"Bearer {token['token']}"},
    )
    assert r.status_code == 200, r.text
    report = json.loads(cli(b, "drift", "--json", code=0).stdout)
    assert [(d["section"], d["key"], d["change"]) for d in report["drifted"]] == [
        ("domains", SITE, "changed")
    ]
    d = report["drifted"][0]
    assert any("changed by hand" in json.dumps(f["after"]) for f in d["fields"])
    assert [e["actor"] for e in d["changed_by"]] == [f"night-shift ({token['id']})"]
    text = cli(b, "drift", "--detailed-exitcode", code=2).stdout
    assert f"domains[{SITE}]" in text and "night-shift" in text


def test_promote_staging_to_prod_applies_only_the_differences(
    a: ControlPlane, tmp_path: Path
) -> None:
    api = Api(a)
    for project in ("shop-staging", "shop-prod"):
        api.in_project(project)
    source: dict[str, Any] = {
        "version": 1,
        "variables": {"ttl": 300},
        "environments": {
            "staging": {"project": "shop-staging", "variables": {"apex": "shop-staging.localhost"}},
            "prod": {"project": "shop-prod", "variables": {"apex": "shop-prod.localhost"}},
        },
        "domains": [
            {
                "name": "${apex}",
                "records": [{"name": "www", "type": "TXT", "values": ["v1"], "ttl": "${ttl}"}],
            }
        ],
        "budgets": [{"id": "monthly", "amount": 100}],
    }
    path = tmp_path / "shop.yaml"
    path.write_text(yaml.safe_dump(source))
    cli(a, "apply", "-f", str(path), "--env", "staging", "--yes")
    first = json.loads(
        cli(
            a, "promote", "-f", str(path), "--from", "staging", "--to", "prod", "--yes", "--json"
        ).stdout
    )
    assert first["summary"]["create"] == 2 and first["project"] == "shop-prod"
    # staging moves on; the working copy is not what is promoted: staging's applied file is
    source["domains"][0]["records"][0]["values"] = ["v2"]
    path.write_text(yaml.safe_dump(source))
    cli(a, "apply", "-f", str(path), "--env", "staging", "--yes")
    second = json.loads(
        cli(
            a, "promote", "-f", str(path), "--from", "staging", "--to", "prod", "--yes", "--json"
        ).stdout
    )
    assert [(c["section"], c["key"], c["action"]) for c in second["changes"]] == [
        ("domains", "shop-prod.localhost", "update")
    ]
    prod = Api(a, "shop-prod")
    records = prod.ok("GET", f"{INV}/domains/shop-prod.localhost/records")
    assert ['"v2"'] in [
        r["values"] for r in records["records"] if r["name"] == "www"
    ]  # TXT: quoted
    # prod's token cannot touch staging
    token = api.ok(
        "POST", "/api/v1/tokens", json={"name": "prod-deployer", "roles": {"shop-prod": "editor"}}
    )
    err = cli(a, "--project", "shop-staging", "export", token=token["token"], code=1).stderr
    assert "no role in project 'shop-staging'" in err
    err = cli(
        a,
        "promote",
        "-f",
        str(path),
        "--from",
        "staging",
        "--to",
        "prod",
        "--yes",
        token=token["token"],
        code=1,
    ).stderr
    assert "shop-staging" in err
