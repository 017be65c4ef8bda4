"""The dashboard's end-to-end flow, through the UI only, on a real ``edgeplane up`` (its edge
node ``local`` in us-east) and a second real edge node in eu-central: sign in with the admin
token → a project of its own → add ``shop.localhost`` and see it verified with its certificate
issued → a load balancer with two real origins → the CDN on it with a cache rule → traffic the
test sends through both nodes appears in the CDN analytics → a purge from the UI shows both
nodes' completion times → the map shows both nodes in their regions, and the eu node turns red
within 10 s of the test stopping it.

What the UI did is checked where it lands: the API's state and the real edge's answers. Every
page visited keeps a screenshot, passes axe, and made no failed request."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dashboard import another_edge_node, check_page, open_page, signed_in, wait_for
from edge_agents import EdgeAgent
from origins import Origin, origin_set
from playwright.sync_api import expect
from processes import ControlPlane

PROJECT = "shop"
DOMAIN = "shop.localhost"
LB = "shop-lb"
EU = "shop-eu"
LOCAL = "local"  # the node of edgeplane up
ASSET = "/static/app.css"


@pytest.fixture(scope="module")
def eu_node(dash: ControlPlane) -> Iterator[EdgeAgent]:
    with another_edge_node(dash, EU, "eu-central") as agent:
        yield agent


@pytest.fixture(scope="module")
def origins() -> Iterator[list[Origin]]:
    with origin_set() as s:
        yield [s.start("shop-a"), s.start("shop-b")]


def through(url: str, path: str = ASSET) -> httpx.Response:
    return httpx.get(f"{url}{path}", headers={"Host": DOMAIN}, timeout=10)


def stat(page: Any, label: str) -> str:
    box = page.locator("#cdn-analytics .stat").filter(
        has=page.locator(".stat-label", has_text=re.compile(f"^{re.escape(label)}$"))
    )
    return str(box.locator(".stat-value").inner_text()).strip()


def test_sign_in_to_purge_to_the_map(
    browser: Any,
    dash: ControlPlane,
    admin_api: httpx.Client,
    eu_node: EdgeAgent,
    origins: list[Origin],
) -> None:
    scope = {"project": PROJECT}
    local_url = f"http://127.0.0.1:{dash.http_port}"
    with signed_in(browser, dash.url, None) as (page, watch):
        # Sign in with the admin token, on the sign-in form.
        page.goto(f"{dash.url}/")
        page.get_by_label("API token").fill(dash.token)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_selector("#page-title")
        check_page(page, watch, "acceptance-1-signed-in")

        # A project of its own, chosen in the top bar.
        open_page(page, dash.url, "access")
        form = page.get_by_role("form", name="New project")
        form.get_by_label("Project ID").fill(PROJECT)
        form.get_by_role("button", name="Create project").click()
        page.get_by_text(f"Project {PROJECT} created").wait_for()
        selector = page.get_by_label("Project", exact=True)
        wait_for(lambda: PROJECT in selector.evaluate("s => [...s.options].map(o => o.value)"),
                 15, "the new project in the selector")  # fmt: skip
        selector.select_option(PROJECT)

        # Add shop.localhost: verified at once (a reserved name), its certificate issued.
        open_page(page, dash.url, "domains")
        name = page.get_by_label("Domain name")
        name.fill(DOMAIN)
        expect(page.locator(".field", has=name).locator(".hint")).to_contain_text(
            f"{DOMAIN} is free"
        )
        page.get_by_role("button", name="Add domain").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(DOMAIN)
        expect(page.locator("#verification .badge").first).to_have_text("verified", timeout=30_000)
        expect(page.locator("#status")).to_contain_text("active · internal", timeout=60_000)
        domain = admin_api.get(f"/api/v1/infrastructure/domains/{DOMAIN}", params=scope).json()
        assert domain["status"] == "active" and domain["verified_at"], domain
        ssl = admin_api.get(f"/api/v1/infrastructure/ssl/{DOMAIN}", params=scope)
        assert ssl.status_code == 200 and DOMAIN in ssl.text, ssl.text
        check_page(page, watch, "acceptance-2-domain-verified")

        # A load balancer with the two real origins.
        open_page(page, dash.url, "load-balancers")
        form = page.get_by_role("form", name="Create a load balancer")
        form.get_by_label("Name", exact=True).fill(LB)
        form.get_by_label("Backend 1 address").fill(origins[0].address)
        form.get_by_label("Backend 2 address").fill(origins[1].address)
        form.get_by_role("button", name="Create load balancer").click()
        page.get_by_role("heading", name=f"Load balancer {LB}").wait_for()
        (lb,) = admin_api.get("/api/v1/infrastructure/loadbalancer", params=scope).json()["items"]
        assert sorted(b["address"] for b in lb["backends"]) == sorted(o.address for o in origins)
        health = page.get_by_role("region", name="Health per edge node")
        wait_for(lambda: health.get_by_text("up", exact=True).count() >= 4, 60,
                 "both backends up on both nodes")  # fmt: skip
        check_page(page, watch, "acceptance-3-load-balancer")

        # The CDN on that load balancer, with a cache rule.
        open_page(page, dash.url, "cdn")
        page.get_by_text("This project has no CDN config yet").wait_for()
        page.get_by_label("Origin type").select_option("lb")
        page.get_by_label("Load balancer", exact=True).select_option(lb["id"])
        page.get_by_label("Redirect HTTP to HTTPS", exact=False).uncheck()
        page.get_by_role("button", name="Set up the CDN").click()
        page.get_by_text("CDN config saved").wait_for()
        page.get_by_label("Pattern").fill("/static/*")
        page.get_by_label("TTL (seconds)").fill("600")
        page.get_by_role("button", name="Add rule").click()
        table = page.get_by_role("table", name="Cache rules in priority order")
        table.get_by_role("cell", name="/static/*", exact=True).wait_for()
        cdn = admin_api.get("/api/v1/infrastructure/cdn", params=scope).json()
        rules = cdn.get("cache_rules") or cdn.get("cdn_deployment", {}).get("cache_rules")
        assert [(r["pattern"], r["ttl"]) for r in rules] == [("/static/*", 600)], cdn
        check_page(page, watch, "acceptance-4-cdn-rule")

        # Traffic through both nodes: a miss, then hits, from the two origins.
        for url in (local_url, eu_node.url):
            wait_for(lambda u=url: through(u).headers.get("x-cache-status") == "HIT", 60,
                     f"a cached {ASSET} at {url}")  # fmt: skip
        for _ in range(4):
            for url in (local_url, eu_node.url):
                r = through(url)
                assert r.status_code == 200 and r.headers.get("x-origin") in ("shop-a", "shop-b")
        totals_api = "/api/v1/infrastructure/cdn/analytics"
        # It appears in the CDN analytics (the nodes report every 10 s, the page polls).
        wait_for(lambda: int(stat(page, "Requests") or 0) >= 10, 60,
                 "the test's requests in the analytics", every=1)  # fmt: skip
        totals = admin_api.get(totals_api, params={**scope, "timeframe": "1h"}).json()
        assert totals["hits"] >= 8, totals
        check_page(page, watch, "acceptance-5-analytics")

        # Purge from the UI: both nodes' completion.
        page.get_by_label("What to purge").select_option("path")
        page.get_by_label("Path", exact=True).fill(ASSET)
        page.get_by_role("button", name="Purge", exact=True).click()
        progress = page.locator(".cdn-purge-progress").first
        done = progress.get_by_role("table", name="Completion per edge node")
        for node in (LOCAL, EU):
            cell = page.get_by_role("cell", name=node, exact=True)
            row = done.get_by_role("row").filter(has=cell)
            row.get_by_text("done", exact=True).wait_for(timeout=30_000)
            cells = " ".join(row.get_by_role("cell").all_inner_texts())
            assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", cells), cells  # completed at
        for url in (local_url, eu_node.url):
            assert through(url).headers.get("x-cache-status") == "MISS"
        check_page(page, watch, "acceptance-6-purged")

        # The map: both nodes in their regions, live; the eu node red within 10 s of its stop.
        open_page(page, dash.url, "map")
        eu = page.locator(f'svg.world a.marker.node[data-node="{EU}"]')
        us = page.locator(f'svg.world a.marker.node[data-node="{LOCAL}"]')
        eu.wait_for()
        assert eu.get_attribute("data-state") == "live" and us.get_attribute("data-state") == "live"
        eu_box, us_box = eu.bounding_box(), us.bounding_box()
        assert eu_box and us_box and eu_box["x"] > us_box["x"] + 100  # Frankfurt, east of Virginia
        check_page(page, watch, "acceptance-7-map")
        eu_node.stop()
        stopped = time.monotonic()
        red = "rgb(220, 38, 38)"
        wait_for(
            lambda: eu.locator("circle").evaluate("c => getComputedStyle(c).fill") == red,
            10 - (time.monotonic() - stopped),
            "the stopped node red on the map",
            every=0.2,
        )
        assert us.get_attribute("data-state") == "live"
        check_page(page, watch, "acceptance-8-node-down")
