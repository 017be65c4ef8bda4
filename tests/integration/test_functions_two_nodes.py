"""Edge functions on two edge nodes (eu-central, us-east) of one control plane: the four
examples of docs/functions.md (``examples/functions/*.js``) deployed through the API with the
routes the docs give them, each answering through both nodes' nginx; ``request.geo`` from the
client's real source address (test addresses on the loopback: 81.2.69.142 is GB, 8.8.8.8 US,
1.1.1.1 AU in the packaged GeoLite2 database); and a rollback that reaches every node within a
second of the API call.

Serial: it times the rollback, and it puts public addresses on the loopback while it runs.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from edge_agents import Api, EdgeAgent, new_agent, wait_for
from origins import Origin, origin_set
from processes import ControlPlane, start_up

from edgeplane.node.functions.find import find_runtime

pytestmark = [pytest.mark.integration, pytest.mark.serial]

if find_runtime() is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError("the edge function runtime is missing on CI (scripts/bootstrap)")
    pytest.skip("needs Node.js and the runtime's npm packages", allow_module_level=True)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "functions"
FN = "/api/v1/infrastructure/functions"
SITE = "shop2.localhost"
COUNTRIES = {"81.2.69.142": "GB", "8.8.8.8": "US", "1.1.1.1": "AU"}
REDIRECTS = {"81.2.69.142": "/uk/", "8.8.8.8": "/us/", "1.1.1.1": "/au/", "127.0.0.1": "/intl/"}
HELLO = """export default {
  async fetch() { return new Response("hello v1"); },
};
"""


@pytest.fixture(scope="module")
def cp(tmp_module: Path) -> Iterator[ControlPlane]:
    cp = start_up(tmp_module / "cp")
    yield cp
    cp.stop()


@pytest.fixture(scope="module")
def admin(cp: ControlPlane) -> Iterator[Api]:
    api = Api(cp)
    yield api
    api.close()


@pytest.fixture(scope="module")
def nodes(cp: ControlPlane, admin: Api, tmp_module: Path) -> Iterator[list[EdgeAgent]]:
    agents = [
        new_agent(cp, admin, tmp_module, name, region=region).start()
        for name, region in (("fn-eu", "eu-central"), ("fn-us", "us-east"))
    ]
    try:
        wait_for(
            lambda: {
                n["name"] for n in admin.nodes() if n["live"] and n.get("functions") is True
            }
            >= {"fn-eu", "fn-us"},
            60,
            "both nodes live, with the function runtime",
        )
        yield agents
    finally:
        for agent in agents:
            agent.stop()


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    with origin_set() as s:
        yield s.start("o")


@pytest.fixture(scope="module")
def addresses() -> Iterator[dict[str, str]]:
    """The test addresses on the loopback, for clients to send from (removed afterwards)."""
    if os.geteuid() != 0:
        pytest.skip("adding addresses to the loopback needs root")
    added = []
    try:
        for ip in COUNTRIES:
            r = subprocess.run(["ip", "addr", "add", f"{ip}/32", "dev", "lo"], capture_output=True)
            assert r.returncode == 0, r.stderr
            added.append(ip)
        yield COUNTRIES
    finally:
        for ip in added:
            subprocess.run(["ip", "addr", "del", f"{ip}/32", "dev", "lo"], capture_output=True)


@pytest.fixture(scope="module")
def site(admin: Api, origin: Origin, nodes: list[EdgeAgent]) -> str:
    admin.ok("POST", "/api/v1/infrastructure/domains", json={"domain": SITE})
    admin.ok("POST", "/api/v1/infrastructure/cdn", json={
        "origins": [{"url": origin.url}],
        "cache_rules": [{"pattern": "/static/*", "ttl": 300}],
        "security": {"force_https": False},
    })  # fmt: skip
    for node in nodes:
        wait_for(lambda node=node: node.get(SITE, "/x").status_code == 200, 30, f"{node.name}")
    return SITE


def route(text: str) -> dict[str, Any]:
    """A route as the CLI takes it (``HOST/PATH[@METHOD,...]``) in the API's shape."""
    pattern, _, methods = text.partition("@")
    return {"pattern": pattern, **({"methods": methods.split(",")} if methods else {})}


def deploy(api: Api, name: str, code: str, routes: list[str], **kw: Any) -> Any:
    body = {"code": code, "routes": [route(r) for r in routes], **kw}
    return api.ok("PUT", f"{FN}/{name}", json=body)


def live(api: Api, name: str) -> None:
    """Wait until the function's newest version is active, served by every node."""

    def everywhere() -> bool:
        current = api.ok("GET", f"{FN}/{name}")["current"]
        return current["status"] == "active" and all(
            p["serving"] == p["nodes"] > 0 for p in current["progress"]
        )

    wait_for(everywhere, 60, f"{name} active on every node")


def get(node: EdgeAgent, path: str, source: str | None = None, **kw: Any) -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=source) if source else None
    with httpx.Client(transport=transport, timeout=10) as client:
        headers = {"Host": SITE, **kw.pop("headers", {})}
        return client.request(kw.pop("method", "GET"), f"{node.url}{path}", headers=headers, **kw)


@pytest.fixture(scope="module")
def examples(admin: Api, site: str, nodes: list[EdgeAgent]) -> None:
    """The four examples with the routes docs/functions.md gives them (on this site)."""
    code = {p.stem: p.read_text() for p in EXAMPLES.glob("*.js")}
    deploy(admin, "ab-test", code["ab-test"], [f"{site}/*"], env={"B_SHARE": "0"})
    deploy(admin, "geo-redirect", code["geo-redirect"], [f"{site}/"])
    deploy(admin, "header-rewrite", code["header-rewrite"], ["*/static/*@GET,HEAD"])
    deploy(admin, "json-api", code["json-api"], ["*/api/*"], env={"REGION_LABEL": "eu"})
    for name in ("ab-test", "geo-redirect", "header-rewrite", "json-api"):
        live(admin, name)


@pytest.mark.usefixtures("examples")
def test_the_ab_test_keeps_each_visitor_in_a_group_on_both_nodes(nodes: list[EdgeAgent]) -> None:
    for node in nodes:
        new = get(node, "/landing")
        assert new.status_code == 200, new.text
        assert new.headers["x-edge-function"].startswith("ab-test@")
        assert new.headers["x-ab-group"] == "A"  # B_SHARE 0
        assert new.text.rstrip().endswith(" /landing"), new.text
        assert "ab=A" in new.headers["set-cookie"]
        b = get(node, "/landing", headers={"Cookie": "ab=B"})
        assert b.headers["x-ab-group"] == "B" and b.text.rstrip().endswith(" /b/landing"), b.text
        assert "set-cookie" not in b.headers  # a known visitor: no new cookie


@pytest.mark.usefixtures("examples")
def test_the_geo_redirect_follows_the_clients_address_on_both_nodes(
    nodes: list[EdgeAgent], addresses: dict[str, str]
) -> None:
    for node in nodes:
        for source, target in REDIRECTS.items():
            r = get(node, "/", source=source)
            assert r.status_code == 302, (node.name, source, r.status_code, r.text)
            assert r.headers["location"] == f"http://{SITE}{target}", (node.name, source)


@pytest.mark.usefixtures("examples")
def test_the_header_rewrite_on_both_nodes(nodes: list[EdgeAgent]) -> None:
    for node in nodes:
        r = get(node, "/static/app.css?echo=1", headers={"Cookie": "session=secret"})
        assert r.status_code == 200, r.text
        assert r.headers["x-edge-function"].startswith("header-rewrite@")
        sent = {h.strip() for h in r.headers["x-origin-request-headers"].lower().split(",")}
        assert "cookie" not in sent and "x-edge-function" in sent, sent
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"


@pytest.mark.usefixtures("examples")
def test_the_json_api_answers_at_the_edge_on_both_nodes(
    nodes: list[EdgeAgent], origin: Origin, addresses: dict[str, str]
) -> None:
    before = origin.hits()
    for node in nodes:
        for source, country in addresses.items():
            r = get(node, "/api/time", source=source)
            assert r.status_code == 200, r.text
            doc = r.json()
            assert (doc["country"], doc["region"]) == (country, "eu"), (node.name, source, doc)
        echo = get(node, "/api/echo", method="POST", json={"order": 7})
        assert echo.json() == {"received": {"order": 7}}
    assert origin.hits() == before  # nothing reached the origin


def test_a_rollback_reaches_every_node_within_a_second(
    admin: Api, site: str, nodes: list[EdgeAgent]
) -> None:
    deploy(admin, "hello", HELLO, [f"{site}/hello"])
    live(admin, "hello")
    deploy(admin, "hello", HELLO.replace("v1", "v2"), [f"{site}/hello"])
    live(admin, "hello")
    for node in nodes:
        assert get(node, "/hello").text == "hello v2"
    started = time.monotonic()
    admin.ok("POST", f"{FN}/hello/rollback")
    took = {}
    deadline = started + 1.0
    while len(took) < len(nodes) and time.monotonic() < deadline:
        for node in nodes:
            if node.name not in took and get(node, "/hello").text == "hello v1":
                took[node.name] = time.monotonic() - started
    print(f"\nrollback: the API call to v1 answered by each node: {took}")
    assert set(took) == {n.name for n in nodes}, took
