"""The WAF's false-positive workflow end to end: a real control plane, a real edge node (its
agent, nginx with ModSecurity and the CRS) and an origin.

A request refused in block mode names its request id; the match reaches the API under that id
with its rule, and the node counts it in its metrics; an exclusion of that rule under the
request's path, made through the API, reaches the edge and the same request passes (and only
under that path).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_agents import Api, EdgeAgent, new_agent, wait_for
from origins import OriginSet, origin_set
from processes import ControlPlane, start_up

from edgeplane.node.nginx.local import find_waf_engine

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(find_waf_engine() is None, reason="ModSecurity / CRS not installed"),
]

DOMAIN = "waf.localhost"
WAF = "/api/v1/infrastructure/cdn/waf"
ATTACK = "/api/search?q=1%27%20or%20%271%27%3D%271"
BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Firefox/125.0",
           "Accept": "text/html"}  # fmt: skip


@pytest.fixture(scope="module")
def cp(tmp_module: Path) -> Iterator[ControlPlane]:
    cp = start_up(tmp_module / "cp")
    yield cp
    cp.stop()


@pytest.fixture(scope="module")
def node(cp: ControlPlane, admin: Api, tmp_module: Path) -> Iterator[EdgeAgent]:
    agent = new_agent(cp, admin, tmp_module, "edge-waf", analytics_interval=1.0).start()
    try:
        yield agent
    finally:
        agent.stop()


@pytest.fixture(scope="module")
def origins() -> Iterator[OriginSet]:
    with origin_set() as s:
        yield s


def test_blocked_request_to_match_to_exclusion(
    admin: Api, node: EdgeAgent, origins: OriginSet
) -> None:
    origin = origins.start("waf-app")
    admin.ok("POST", "/api/v1/infrastructure/domains", json={"domain": DOMAIN})
    admin.ok("POST", "/api/v1/infrastructure/cdn", json={
        "origins": [{"url": origin.url}],
        "security": {"force_https": False, "waf": {"mode": "block"}},
    })  # fmt: skip

    def refused() -> str | None:
        r = node.get(DOMAIN, ATTACK, headers=BROWSER)
        return r.headers["x-request-id"] if r.status_code == 403 else None

    request_id = wait_for(refused, 30, "the attack refused by the edge")
    r = node.get(DOMAIN, "/products/1", headers=BROWSER)
    assert r.status_code == 200 and r.headers["x-request-id"] != request_id
    blocked = node.get(DOMAIN, ATTACK, headers=BROWSER)
    assert blocked.status_code == 403 and blocked.headers["x-request-id"] in blocked.text

    def found() -> dict | None:  # type: ignore[type-arg]
        items = admin.ok("GET", f"{WAF}/matches", params={"request_id": request_id})["items"]
        return items[0] if items else None

    match = wait_for(found, 20, "the match in the API")
    assert match["action"] == "blocked" and match["domain"] == DOMAIN
    assert 942100 in {rule["rule"] for rule in match["rules"]}
    assert match["uri"] == ATTACK and match["anomaly_score"] >= 5
    counted = 'edgeplane_waf_matches_total{action="blocked",project="default",rule="942100"}'
    wait_for(lambda: counted in node.scrape().text, 10, "the match in the node's metrics")

    exclusion = admin.ok(
        "POST", f"{WAF}/exclusions", json={"rules": ["942100"], "path": "/api/search"}
    )
    wait_for(
        lambda: node.get(DOMAIN, ATTACK, headers=BROWSER).status_code == 200,
        30,
        "the same request passes once the edge has the exclusion",
    )
    elsewhere = ATTACK.replace("/api/search", "/api/users")
    assert node.get(DOMAIN, elsewhere, headers=BROWSER).status_code == 403
    status = admin.ok("GET", WAF)
    assert (status["mode"], status["exclusions"]) == ("block", 1)
    assert status["blocked_24h"] >= 1
    assert admin.ok("GET", f"{WAF}/exclusions")[0]["id"] == exclusion["id"]
