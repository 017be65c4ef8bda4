"""Edge functions observed end to end: ``edgeplane up`` with its local edge node (real nginx
and the real function runtime, analytics every second), a function that logs and one that
throws; their console lines reach ``GET /functions/{name}/logs`` (and ``edgeplane function
logs``), their invocations the function metrics and the ``function_*`` series, and the node's
Prometheus metrics count them by outcome.

Skipped where the runtime is missing (Node.js, isolated-vm), except on CI (``CI=true``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from edge_agents import Api, searchable_tmp, wait_for
from origins import Origin, origin_set
from processes import ControlPlane, clean_env, start_up

from edgeplane.node.functions.find import find_runtime

pytestmark = [pytest.mark.integration]

if find_runtime() is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError("the edge function runtime is missing on CI (scripts/bootstrap)")
    pytest.skip("needs Node.js and the runtime's npm packages", allow_module_level=True)

INV = "/api/v1/infrastructure"
FN = f"{INV}/functions"
SITE = "obs.localhost"

TALK = """export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname.endsWith("/boom")) {
      console.warn("about to fail");
      throw new Error("kaboom at " + url.pathname);
    }
    console.log("hello from " + url.pathname);
    return new Response("talked");
  },
};
"""


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    with origin_set() as s:
        yield s.start("o")


@pytest.fixture(scope="module")
def world(origin: Origin) -> Iterator[tuple[ControlPlane, Api]]:
    tmp = searchable_tmp("function-obs-")
    cp = start_up(tmp / "cp", env=clean_env(EDGEPLANE_ANALYTICS_INTERVAL="1"), edge=True)
    api = Api(cp)
    try:
        wait_for(lambda: [n for n in api.nodes() if n["live"] and n.get("functions")], 60,
                 "the node is live and runs functions")  # fmt: skip
        api.ok("POST", f"{INV}/domains", json={"domain": SITE})
        api.ok("POST", f"{INV}/cdn", json={
            "origins": [{"url": origin.url}], "security": {"force_https": False},
        })  # fmt: skip
        yield cp, api
    finally:
        api.close()
        cp.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def edge(cp: ControlPlane, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{cp.http_port}{path}", headers={"Host": SITE}, timeout=10)


def test_console_lines_and_invocations_reach_the_control_plane(
    world: tuple[ControlPlane, Api],
) -> None:
    cp, api = world
    api.ok("PUT", f"{FN}/talk", json={"code": TALK, "routes": [{"pattern": f"{SITE}/talk/*"}]})
    wait_for(lambda: edge(cp, "/talk/warm").text == "talked", 60, "the function answers")
    for path in ("/talk/a", "/talk/b", "/talk/c"):
        assert edge(cp, path).text == "talked"
    boom = edge(cp, "/talk/boom")
    assert boom.status_code == 500, boom.text

    def lines() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = api.ok("GET", f"{FN}/talk/logs")["items"]
        messages = " ".join(x["message"] for x in items)
        return items if "hello from /talk/c" in messages and "kaboom" in messages else None

    items = wait_for(lines, 30, "the console lines reach the control plane", every=0.5)
    print("console:", [(x["level"], x["message"][:60]) for x in reversed(items)])
    hello = next(x for x in items if x["message"] == "hello from /talk/a")
    assert hello["level"] == "log" and hello["node"] and hello["version"] == 1
    assert hello["request_id"]
    assert any(x["level"] == "warn" and x["message"] == "about to fail" for x in items)
    assert any(x["level"] == "error" and "kaboom at /talk/boom" in x["message"] for x in items)
    errors = api.ok("GET", f"{FN}/talk/logs", params={"level": "error"})["items"]
    assert errors and all(x["level"] == "error" for x in errors)

    def counted() -> dict[str, Any] | None:
        doc: dict[str, Any] = api.ok("GET", f"{FN}/talk/metrics", params={"since": "15m"})
        total = doc["total"]
        return doc if total["invocations"] >= 5 and total["errors"]["exception"] >= 1 else None

    doc = wait_for(counted, 30, "the invocations reach the control plane", every=0.5)
    print("metrics:", doc["total"])
    total = doc["total"]
    assert total["invocations"] == 5 and total["errors"]["exception"] == 1
    assert total["error_rate"] == 20.0 and total["p50_ms"] is not None
    assert [r["region"] for r in doc["regions"]] == [api.nodes()[0]["region"]]
    points = api.ok("GET", "/api/v1/metrics", params={
        "series": "function_invocations", "function": "talk", "since": "15m", "step": 900,
    })  # fmt: skip
    assert [(r["object"], r["points"][0]["value"]) for r in points["results"]] == [("talk", 5.0)]

    # The CLI against this control plane.
    env = {**os.environ, "EDGEPLANE_URL": cp.url, "EDGEPLANE_TOKEN": cp.token}
    out = subprocess.run(
        [sys.executable, "-m", "edgeplane", "function", "logs", "talk", "--level", "warn"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "about to fail" in out.stdout and "hello from" not in out.stdout

    # The node's Prometheus metrics (the port `up` printed), by outcome.
    found = re.search(r"and (http://[0-9.:]+/metrics) \(edge node\)", cp.output())
    assert found is not None, cp.output()[-3000:]
    token = (cp.home / "metrics-token").read_text().strip()
    text = httpx.get(found.group(1), headers={"Authorization": f"Bearer {token}"}).text
    for outcome, n in (("ok", 4), ("exception", 1)):
        assert (f'edgeplane_edge_function_invocations_total{{function="talk",outcome="{outcome}",'
                f'site="default"}} {n:.1f}') in text, text[-3000:]  # fmt: skip
    assert 'edgeplane_edge_function_duration_seconds_count{function="talk",site="default"} 5.0' in (
        text
    )
