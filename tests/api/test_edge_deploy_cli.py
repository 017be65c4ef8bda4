"""``edgeplane deploy`` and ``edgeplane deployment``, run in-process (Typer's runner) in
embedded mode on the test database, so that the test registers edge nodes and answers for
them while the command follows the rollout."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from api.test_edge_deploy_api import DEPLOY, Node, add_site_domain, nodes, site, tar_of
from conftest import Api, Cli

# The CLI / SDK / contract over the API: the API itself runs on both databases elsewhere.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def write_site(root: Path, version: str = "v1") -> Path:
    for name, data in site(version).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_a_link_out_of_the_directory_is_bad_input(cli: Cli, api: Api, tmp_path: Path) -> None:
    root = write_site(tmp_path / "site")
    (tmp_path / "secret.txt").write_text("not for the edge")
    os.symlink(tmp_path / "secret.txt", root / "assets" / "secret.txt")
    err = cli.fails("deploy", str(root), code=2)
    assert str(root / "assets" / "secret.txt") in err
    # Nothing was uploaded.
    assert api.get(f"{DEPLOY}/bundles").json() == []


def test_an_oversized_file_is_bad_input(
    cli: Cli, api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_site(tmp_path / "site")
    (root / "video.mp4").write_bytes(b"\0" * 5000)
    monkeypatch.setenv("EDGEPLANE_BUNDLE_MAX_FILE_BYTES", "4096")
    err = cli.fails("deploy", str(root), "--no-wait", code=2)
    assert "video.mp4" in err and "limit" in err
    assert api.get(f"{DEPLOY}/bundles").json() == []


def test_bad_arguments(cli: Cli, tmp_path: Path) -> None:
    archive = tmp_path / "site.tar"
    archive.write_bytes(tar_of(site("v1")))
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    err = cli.fails("deploy", str(tmp_path / "missing"), code=2)
    assert "missing" in err and "no such file" in err
    err = cli.fails("deploy", str(notes), code=2)
    assert "notes.txt" in err and "archive" in err
    err = cli.fails("deploy", str(archive), "--strategy", "fastest", code=2)
    assert "fastest" in err
    assert cli.run("deploy", code=2).exit_code == 2  # no source
    err = cli.fails("deployment", "update", "dep-x", code=2)
    assert "nothing to change" in err


def test_deploy_without_a_domain_is_refused(cli: Cli, api: Api, tmp_path: Path) -> None:
    nodes(api, ("eu-1", "eu-central"))
    archive = tmp_path / "site.tar"
    archive.write_bytes(tar_of(site("v1")))
    err = cli.fails("deploy", str(archive), "--no-wait", code=1)
    assert "verified domain" in err
    # The bundle was uploaded before the deploy was refused.
    assert len(cli.json("deployment", "bundles")) == 1


def _answer_for_nodes(
    api: Api, made: dict[str, Node], version: int, state: str
) -> threading.Thread:
    """A thread playing the edge nodes: once ``version`` exists, its canary reports ``state``,
    then (when good) every other node reports it active."""
    by_id = {n.id: n for n in made.values()}

    def play() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            versions = api.get(f"{DEPLOY}/deployments").json()
            dep = next((d for d in versions if d["version"] == version), None)
            if dep is None:
                pass
            elif dep["status"] == "canary":
                if state == "failed":
                    by_id[dep["canary_node"]].report(dep, "failed", "GET / answered 502")
                    return
                by_id[dep["canary_node"]].report(dep, "active")
            elif dep["status"] == "rolling":
                for n in made.values():
                    n.report(dep, "active")
            else:
                return
            time.sleep(0.05)

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    return thread


def test_deploy_follows_the_rollout(cli: Cli, api: Api, tmp_path: Path) -> None:
    add_site_domain(api)
    made = nodes(api, ("eu-1", "eu-central"), ("us-1", "us-east"))
    root = write_site(tmp_path / "site")

    player = _answer_for_nodes(api, made, 1, "active")
    result = cli.run("deploy", str(root), "--regions", "eu-central,us-east", "--spa",
                     "--origin-path", "/api/", "--timeout", "20")  # fmt: skip
    player.join(5)
    out = result.stdout
    assert "version 1 active in eu-central (eu, europe), us-east (na, americas) on 2 nodes" in out
    assert "$0.00 per month" in out
    assert "http" not in out  # a summary without URLs
    for region in ("eu-central", "us-east"):
        assert region in result.stderr  # the progress bars
    [dep] = cli.json("deployment", "list")
    assert dep["status"] == "active" and dep["options"]["spa"] is True
    assert dep["options"]["origin_paths"] == ["/api/"]

    # The same content again: the same bundle, a failed canary is exit code 1.
    player = _answer_for_nodes(api, made, 2, "failed")
    result = cli.run("deploy", str(root), "--timeout", "20", "--json", code=1)
    player.join(5)
    doc = json.loads(result.stdout)
    assert doc["created"] is False and doc["bundle"]["id"] == dep["bundle"]
    assert doc["deployment"]["status"] == "failed" and doc["deployment"]["version"] == 2
    assert "502" in result.stderr and "version 2 failed" in result.stderr
    current = cli.json("deployment", "current")
    assert current["id"] == dep["id"]


def test_deployment_commands(cli: Cli, api: Api, tmp_path: Path) -> None:
    add_site_domain(api)
    nodes(api, ("eu-1", "eu-central"), ("us-1", "us-east"))
    archive = tmp_path / "site.tar"
    archive.write_bytes(tar_of(site("v1")))
    doc = cli.json("deploy", str(archive), "--no-wait", "--strategy", "closest",
                   "--location", "DE", "--location", "FR@2")  # fmt: skip
    assert doc["created"] is True and doc["regions_deployed"] == ["eu-central"]
    dep = doc["deployment"]
    assert dep["status"] == "canary" and dep["strategy"] == "closest"
    # A bundle id deploys without an upload.
    again = cli.json("deploy", doc["bundle"]["id"], "--no-wait", "--region", "us-east")
    assert "bundle" not in again and again["deployment"]["regions"] == ["us-east"]
    assert again["deployment"]["bundle"] == doc["bundle"]["id"]

    table = cli.run("deployment", "list").stdout
    assert "VERSION" in table and "cancelled" in table and "canary" in table
    shown = cli.run("deployments", "show", again["deployment"]["id"]).stdout
    assert "us-east" in shown and "canary" in shown
    metrics = cli.json("deployment", "metrics", dep["id"], "--region", "eu-central")
    assert [r["region"] for r in metrics["regions"]] == ["eu-central"]
    err = cli.fails("deployment", "metrics", dep["id"], "--region", "us-east", code=1)
    assert "us-east" in err
    updated = cli.json("deployment", "update", again["deployment"]["id"], "--spa")
    assert updated["deployment"]["version"] == 3 and updated["deployment"]["options"]["spa"]
    locations = cli.run("locations").stdout
    assert "eu-central" in locations and "us-east" in locations and "1/1 live" in locations
    assert [loc["region"] for loc in cli.json("deployment", "locations")] == [
        "eu-central",
        "us-east",
    ]
    err = cli.fails("deployment", "rollback", code=1)
    assert "no active edge deployment" in err
    err = cli.fails("deployment", "show", "dep-nope", code=1)
    assert "dep-nope" in err
