"""Access logs end to end: a real control plane, a real edge node (nginx and its agent) and an
origin; requests through the edge show in ``GET .../domains/{domain}/logs`` within seconds, the
filters apply to them, and ``edgeplane logs`` (the console script, ``--json``, ``--follow``)
prints them."""

from __future__ import annotations

import json
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from edge_agents import Api, EdgeAgent, new_agent, wait_for
from origins import OriginSet, origin_set
from processes import ControlPlane, clean_env, start_up

pytestmark = pytest.mark.integration

EDGEPLANE = shutil.which("edgeplane", path=str(Path(sys.executable).parent))
DOMAIN = "shop.localhost"
LOGS = f"/api/v1/infrastructure/domains/{DOMAIN}/logs"
AGENT = "access-log-test/1.0"


@pytest.fixture(scope="module")
def cp(tmp_module: Path) -> Iterator[ControlPlane]:
    cp = start_up(tmp_module / "cp")
    yield cp
    cp.stop()


@pytest.fixture(scope="module")
def node(cp: ControlPlane, admin: Api, tmp_module: Path) -> Iterator[EdgeAgent]:
    agent = new_agent(cp, admin, tmp_module, "edge-logs", analytics_interval=1.0).start()
    try:
        wait_for(
            lambda: any(
                n["name"] == "edge-logs" and n["applied_revision"] is not None
                for n in admin.nodes()
            ),
            30,
            "the node registered and applied",
        )
        yield agent
    finally:
        agent.stop()


@pytest.fixture(scope="module")
def origins() -> Iterator[OriginSet]:
    with origin_set() as s:
        yield s


@pytest.fixture(scope="module")
def site(admin: Api, origins: OriginSet, node: EdgeAgent) -> str:
    origin = origins.start("shop")
    admin.ok("POST", "/api/v1/infrastructure/domains", json={"domain": DOMAIN})
    body = {
        "origins": [{"url": origin.url}],
        "cache_rules": [{"pattern": "/static/*", "ttl": 300}],
        "security": {"force_https": False},
    }
    admin.ok("POST", "/api/v1/infrastructure/cdn", json=body)
    wait_for(lambda: node.get(DOMAIN, "/").status_code == 200, 15, f"{DOMAIN} served")
    return DOMAIN


def send(node: EdgeAgent, path: str) -> int:
    return node.get(DOMAIN, path, headers={"User-Agent": AGENT}).status_code


def logged(admin: Api, paths: set[str], **params: Any) -> list[dict[str, Any]]:
    """The domain's lines once every one of ``paths`` is among them (polling)."""

    def look() -> list[dict[str, Any]] | None:
        lines: list[dict[str, Any]] = admin.ok("GET", LOGS, params=params)["lines"]
        return lines if paths <= {x["path"] for x in lines} else None

    return wait_for(look, 20, f"{sorted(paths)} in the access log", every=0.25)


def test_requests_through_the_edge_show_with_their_fields(
    admin: Api, node: EdgeAgent, site: str
) -> None:
    run = uuid.uuid4().hex[:8]
    sent = {
        f"/api/items?run={run}": 200,
        f"/api/broken?run={run}&status=503": 503,
        f"/missing?run={run}&status=404": 404,
        f"/static/app.css?run={run}": 200,
    }
    for path, status in sent.items():
        assert send(node, path) == status
    assert send(node, f"/static/app.css?run={run}") == 200  # from the cache now
    lines = logged(admin, set(sent))
    mine = [x for x in lines if f"run={run}" in x["path"]]
    assert len(mine) == 5
    # Newest first, to the second (nginx's workers write the lines of one second in any order).
    assert [x["at"] for x in lines] == sorted((x["at"] for x in lines), reverse=True)
    assert {x["path"]: x["status"] for x in mine} == sent
    static = [x["cache"] for x in mine if x["path"].startswith("/static/")]
    assert sorted(static) == ["HIT", "MISS"]
    for x in mine:
        assert x["node"] == "edge-logs" and x["domain"] == DOMAIN
        assert x["method"] == "GET" and x["client"] == "127.0.0.1"
        assert x["user_agent"] == AGENT and x["bytes_sent"] > 0
        assert x["request_ms"] is not None and x["request_ms"] >= 0
    broken = next(x for x in mine if "broken" in x["path"])
    assert broken["upstream_ms"] is not None  # it went to the origin

    def paths(**params: Any) -> list[str]:
        found = admin.ok("GET", LOGS, params=params)["lines"]
        return [x["path"] for x in found if f"run={run}" in x["path"]]

    assert paths(status="5xx") == [f"/api/broken?run={run}&status=503"]
    assert paths(status="404") == [f"/missing?run={run}&status=404"]
    assert paths(path_prefix="/static/") == [f"/static/app.css?run={run}"] * 2
    assert paths(cache="hit") == [f"/static/app.css?run={run}"]
    assert len(paths(client="127.0.0.0/8")) == 5
    assert paths(client="10.0.0.0/8") == []
    r = admin.http.get(LOGS, params={"status": "7xx"})
    assert r.status_code == 422 and r.json()["field"] == "status"
    r = admin.http.get("/api/v1/infrastructure/domains/nope.localhost/logs")
    assert r.status_code == 404


@pytest.mark.skipif(EDGEPLANE is None, reason="the edgeplane script is not installed")
def test_the_cli_prints_them_and_follows(
    cp: ControlPlane, admin: Api, node: EdgeAgent, site: str
) -> None:
    assert EDGEPLANE is not None
    env = clean_env(EDGEPLANE_URL=cp.url, EDGEPLANE_TOKEN=cp.token, COLUMNS="200")
    run = uuid.uuid4().hex[:8]
    before = f"/before?run={run}"
    assert send(node, before) == 200
    logged(admin, {before})
    done = subprocess.run(
        [EDGEPLANE, "logs", DOMAIN, "--json", "--path", "/before"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert before in [x["path"] for x in doc["lines"]]
    table = subprocess.run(
        [EDGEPLANE, "logs", DOMAIN, "--status", "2xx", "--limit", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert table.returncode == 0, table.stderr
    assert table.stdout.split("\n")[0].split()[:3] == ["TIME", "NODE", "STATUS"]
    assert before in table.stdout.split("\n")[-2]  # the newest last

    follow = subprocess.Popen(
        [EDGEPLANE, "logs", DOMAIN, "--follow", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out: queue.Queue[str] = queue.Queue()
    assert follow.stdout is not None
    reader = threading.Thread(target=_lines, args=(follow.stdout, out), daemon=True)
    reader.start()
    try:
        _expect(out, before, "the latest lines printed first")
        after = f"/after?run={run}"
        assert send(node, after) == 200
        line = _expect(out, after, "a request sent after it started")
        assert line["status"] == 200 and line["node"] == "edge-logs"
    finally:
        follow.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            code = follow.wait(15)
        except subprocess.TimeoutExpired:
            follow.kill()
            follow.wait()
            assert follow.stderr is not None
            raise AssertionError(f"Ctrl-C did not end it: {follow.stderr.read()}") from None
    assert follow.stderr is not None
    stderr = follow.stderr.read()
    assert code == 0 and "Traceback" not in stderr, stderr


def _lines(stream: IO[str], out: queue.Queue[str]) -> None:
    for text in stream:
        out.put(text)


def _expect(out: queue.Queue[str], path: str, what: str, timeout: float = 20) -> Any:
    """The first JSON line printed for ``path``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = out.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        doc = json.loads(text)  # every line is one JSON object
        if doc["path"] == path:
            return doc
    raise AssertionError(f"{what}: {path} not printed within {timeout} s")
