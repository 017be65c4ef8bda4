"""The CDN Configuration page in a real browser, against the shared ``edgeplane up`` and its local
edge node, with a real origin: a first CDN config and two cache rules made on the page, reordered
on the page (the order checked through the API), a bad TTL refused on its field with the API's
words; traffic sent through the edge (a MISS, then HITs) shown in the page's analytics; a purge
made on the page showing the node's completion, after which the edge misses again; the cost
estimator showing what the API computes; a viewer sees it all and can change nothing.

Each test works in a project of its own (``cdn-ui-setup`` starts empty; ``cdn-ui-live`` is
configured through the API with a ``/static/*`` rule), so the pages of other modules neither take
nor disturb its traffic, config or analytics."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dashboard import (
    EDGE_NODE,
    Site,
    applied,
    check_page,
    field_error,
    open_page,
    project_api,
    signed_in,
    through_edge,
    wait_for,
    write_controls_enabled,
)
from origins import Origin, origin_set
from processes import ControlPlane

SETUP = "cdn-ui-setup"
LIVE = "cdn-ui-live"
CDN = "/api/v1/infrastructure/cdn"


def make_site(dash: ControlPlane, admin_api: httpx.Client, project: str) -> Iterator[Site]:
    domain = f"{project}-{uuid.uuid4().hex[:6]}.localhost"
    with project_api(dash, admin_api, project) as client:
        r = client.post("/api/v1/infrastructure/domains", json={"domain": domain})
        assert r.status_code == 201, r.text
        assert r.json()["domain_config"]["status"] == "active"
        yield Site(project, domain, client)


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    with origin_set() as s:
        yield s.start("cdn-origin")


@pytest.fixture(scope="module")
def setup_site(dash: ControlPlane, admin_api: httpx.Client) -> Iterator[Site]:
    yield from make_site(dash, admin_api, SETUP)


@pytest.fixture(scope="module")
def live_site(dash: ControlPlane, admin_api: httpx.Client, origin: Origin) -> Iterator[Site]:
    """A project served by the edge from the origin, ``/static/*`` cached for 10 minutes,
    applied by the local edge node (no request sent: every request of the project is the
    tests')."""
    for site in make_site(dash, admin_api, LIVE):
        body = {
            "origins": [{"url": origin.url}],
            "cache_rules": [{"pattern": "/static/*", "ttl": 600}],
            "security": {"force_https": False},
        }
        r = site.api.post(CDN, json=body)
        assert r.status_code in (200, 201), r.text
        applied(admin_api, r.json()["cdn_deployment"]["revision"])
        yield site


def open_cdn(page: Any, dash: ControlPlane, project: str) -> None:
    """The CDN page in ``project``, chosen in the top bar."""
    open_page(page, dash.url, "cdn")
    page.get_by_label("Project", exact=True).select_option(project)
    page.get_by_text(f"costs of project {project}").wait_for()
    page.get_by_role("heading", name="Origin and domains").wait_for()
    page.wait_for_load_state("networkidle")


def rule_order(page: Any) -> list[str]:
    table = page.get_by_role("table", name="Cache rules in priority order")
    return [c.strip() for c in table.locator("tbody tr td:nth-child(2)").all_inner_texts()]


def api_order(site: Site) -> list[str]:
    r = site.api.get(f"{CDN}/rules")
    assert r.status_code == 200, r.text
    return [rule["pattern"] for rule in r.json()]


def test_first_config_rules_and_their_order(
    admin_page: tuple[Any, Any], dash: ControlPlane, admin_api: httpx.Client, setup_site: Site,
    origin: Origin,
) -> None:  # fmt: skip
    page, watch = admin_page
    site = setup_site
    open_cdn(page, dash, site.project)
    page.get_by_text("This project has no CDN config yet").wait_for()
    page.get_by_role("link", name=site.domain).wait_for()  # the domain it will serve
    check_page(page, watch, "cdn-first-config")

    # The first config: the real origin, plain HTTP at the edge.
    page.get_by_label("Origin 1 URL").fill(origin.url)
    page.get_by_label("Redirect HTTP to HTTPS", exact=False).uncheck()
    page.get_by_role("button", name="Set up the CDN").click()
    page.get_by_text("CDN config saved").wait_for()
    state = site.api.get(f"{CDN}/state").json()
    assert state["configured"] and state["domains"] == [site.domain]
    deployment = state["cdn_deployment"]
    assert [o["url"] for o in deployment["origins"]] == [origin.url]
    assert deployment["security"]["force_https"] is False
    applied(admin_api, deployment["revision"])
    r = through_edge(dash, site.domain, "/hello")
    assert r.status_code == 200 and r.headers["x-origin"] == "cdn-origin", r.text

    # Two cache rules made on the page.
    page.get_by_label("Pattern").fill("/static/*")
    page.get_by_label("TTL (seconds)").fill("600")
    page.get_by_role("button", name="Add rule").click()
    wait_for(lambda: rule_order(page) == ["/static/*"], 15, "the first rule listed")
    page.get_by_label("Pattern").fill("*.css")
    page.get_by_label("TTL (seconds)").fill("120")
    page.get_by_label("Origin Cache-Control").select_option("honour")
    page.get_by_label("Serve stale content at once while refreshing", exact=False).check()
    page.get_by_label("Query string").select_option("list")
    page.get_by_label("Query parameters").fill("v, lang")
    page.get_by_label("Headers", exact=True).fill("Accept-Language")
    page.get_by_role("button", name="Add rule").click()
    wait_for(lambda: rule_order(page) == ["/static/*", "*.css"], 15, "both rules listed")
    assert api_order(site) == ["/static/*", "*.css"]
    css = site.api.get(f"{CDN}/rules").json()[1]
    assert css["ttl"] == 120 and css["origin_cache_control"] == "honour"
    assert css["stale_while_revalidate"] is True and css["stale_if_error"] is True
    assert css["cache_key"] == {
        "host": True, "query": ["v", "lang"], "headers": ["accept-language"], "cookies": []
    }  # fmt: skip
    check_page(page, watch, "cdn-two-rules")

    # Reorder on the page: *.css first, checked through the API.
    page.get_by_role("button", name="Move rule *.css up").click()
    wait_for(lambda: rule_order(page) == ["*.css", "/static/*"], 15, "*.css moved up")
    assert api_order(site) == ["*.css", "/static/*"]
    assert page.get_by_role("button", name="Move rule *.css up").is_disabled()  # first already
    page.get_by_role("button", name="Move rule *.css down").click()
    wait_for(lambda: rule_order(page) == ["/static/*", "*.css"], 15, "*.css moved down")
    assert api_order(site) == ["/static/*", "*.css"]

    # A bad TTL: the API's own reason, on the TTL field; nothing stored.
    bad = {"pattern": "/bad/*", "ttl": -5}
    expected = site.api.post(f"{CDN}/rules", json=bad)
    assert expected.status_code == 422 and expected.json()["field"] == "ttl", expected.text
    watch.expect(422, "/infrastructure/cdn/rules")
    page.get_by_label("Pattern").fill("/bad/*")
    page.get_by_label("TTL (seconds)").fill("-5")
    page.get_by_role("button", name="Add rule").click()
    wait_for(lambda: field_error(page, "TTL (seconds)"), 15, "the TTL field's error")
    assert field_error(page, "TTL (seconds)") == expected.json()["errors"][0]["reason"]
    assert page.get_by_label("TTL (seconds)").get_attribute("aria-invalid") == "true"
    assert field_error(page, "Pattern") == ""
    assert api_order(site) == ["/static/*", "*.css"]
    check_page(page, watch, "cdn-bad-ttl")

    # Edit a rule on the page, then delete it.
    page.get_by_role("button", name="Edit rule *.css").click()
    form = page.get_by_role("form", name="Edit cache rule *.css")
    form.get_by_role("button", name="Save rule").wait_for()
    assert form.get_by_label("TTL (seconds)").input_value() == "120"
    form.get_by_label("TTL (seconds)").fill("300")
    form.get_by_role("button", name="Save rule").click()
    wait_for(lambda: site.api.get(f"{CDN}/rules").json()[1]["ttl"] == 300, 15, "the TTL saved")
    page.get_by_role("button", name="Delete rule *.css").click()
    page.get_by_role("button", name="Confirm: delete rule *.css").click()
    wait_for(lambda: rule_order(page) == ["/static/*"], 15, "*.css deleted")
    assert api_order(site) == ["/static/*"]
    check_page(page, watch, "cdn-rule-deleted")

    # Remove the config on the page: the project is back to none.
    page.get_by_role("button", name="Remove CDN config…").click()
    page.get_by_role("button", name="Remove the CDN config").click()
    page.get_by_text("This project has no CDN config yet").wait_for()
    assert site.api.get(f"{CDN}/state").json()["configured"] is False
    wait_for(lambda: rule_order(page) == [], 15, "no rule listed")
    check_page(page, watch, "cdn-removed")


def stat(page: Any, label: str) -> str:
    """The value of the analytics stat labelled ``label``."""
    box = page.locator("#cdn-analytics .stat").filter(
        has=page.locator(".stat-label", has_text=re.compile(f"^{re.escape(label)}$"))
    )
    return str(box.locator(".stat-value").inner_text()).strip()


def test_traffic_shows_in_the_analytics(
    admin_page: tuple[Any, Any], dash: ControlPlane, live_site: Site
) -> None:
    page, watch = admin_page
    site = live_site
    path = f"/static/app-{uuid.uuid4().hex[:6]}.js"
    caches = [through_edge(dash, site.domain, path).headers.get("x-cache-status") for _ in range(5)]
    assert caches == ["MISS", "HIT", "HIT", "HIT", "HIT"], caches
    open_cdn(page, dash, site.project)
    page.get_by_role("group", name="Time range").get_by_role("button", name="Last hour").wait_for()
    # The edge node reports every 10 s; the page polls every 5 s.
    wait_for(lambda: stat(page, "Requests") == "5", 60, "5 requests on the page", every=1)
    assert stat(page, "Hit ratio") == "80.0 %"
    assert stat(page, "Hits / misses") == "4 / 1"
    totals = site.api.get(f"{CDN}/analytics", params={"timeframe": "1h"}).json()
    assert (totals["requests"], totals["hits"], totals["misses"]) == (5, 4, 1)
    bars = page.get_by_role("list", name="Requests by status class")
    assert bars.locator("li").filter(has_text="2xx").locator(".bar-value").inner_text() == "5"
    domains = page.get_by_role("table", name="Per domain")
    domains.get_by_role("cell", name=site.domain).wait_for()
    page.get_by_role("button", name="Last 24 hours").click()
    assert page.get_by_role("button", name="Last 24 hours").get_attribute("aria-pressed") == "true"
    wait_for(lambda: stat(page, "Requests") == "5", 15, "5 requests over 24 hours")
    page.get_by_role("img", name=re.compile("^Requests per step")).wait_for()
    page.wait_for_load_state("networkidle")
    check_page(page, watch, "cdn-analytics")


def test_purge_shows_the_node_and_the_edge_misses(
    admin_page: tuple[Any, Any], dash: ControlPlane, live_site: Site
) -> None:
    page, watch = admin_page
    site = live_site
    path = f"/static/purged-{uuid.uuid4().hex[:6]}.css"
    through_edge(dash, site.domain, path)
    assert through_edge(dash, site.domain, path).headers["x-cache-status"] == "HIT"
    open_cdn(page, dash, site.project)
    page.get_by_label("What to purge").select_option("path")
    page.get_by_label("Path", exact=True).fill(path)
    page.get_by_role("button", name="Purge", exact=True).click()
    progress = page.locator(".cdn-purge-progress").first
    heading = progress.get_by_role("heading", name=re.compile("^Purge purge-"))
    purge_id = heading.inner_text().split()[-1]
    table = progress.get_by_role("table", name="Completion per edge node")
    row = table.get_by_role("row").filter(has=page.get_by_role("cell", name=EDGE_NODE, exact=True))
    row.get_by_text("done", exact=True).wait_for(timeout=30_000)
    result = site.api.get(f"{CDN}/purges/{purge_id}").json()
    node = next(n for n in result["nodes"] if n["node"] == EDGE_NODE)
    assert node["completed_at"] and node["purged_count"] == 1 and node["error"] is None
    cells = [c.strip() for c in row.get_by_role("cell").all_inner_texts()]
    shown_at = node["completed_at"].replace("T", " ")[:19] + " UTC"
    assert cells[0] == EDGE_NODE and cells[2] == shown_at, cells
    assert re.fullmatch(r"[\d.]+ m?s", cells[3]), cells
    assert cells[4] == "1", cells
    # The purge reached the edge: the next request goes to the origin again.
    assert through_edge(dash, site.domain, path).headers["x-cache-status"] == "MISS"
    page.wait_for_load_state("networkidle")
    check_page(page, watch, "cdn-purged")

    # A bad prefix: the API's reason on the prefix field.
    watch.expect(422, "/infrastructure/cdn/purge")
    page.get_by_label("What to purge").select_option("prefix")
    page.get_by_label("Prefix").fill("/static*")
    page.get_by_role("button", name="Purge", exact=True).click()
    wait_for(lambda: field_error(page, "Prefix"), 15, "the prefix field's error")
    assert "after a /" in field_error(page, "Prefix")
    check_page(page, watch, "cdn-purge-refused")


def money(amount: float) -> str:
    return f"${amount:,.2f}"


def test_cost_estimator_shows_what_the_api_computes(
    admin_page: tuple[Any, Any], dash: ControlPlane, live_site: Site
) -> None:
    page, watch = admin_page
    site = live_site
    open_cdn(page, dash, site.project)
    page.get_by_label("Requests per month").fill("25000000")
    page.get_by_label("GB served per month (egress)").fill("1234.5")
    page.get_by_role("button", name="Estimate the monthly cost").click()
    shown = page.get_by_test_id("cdn-estimate-monthly")
    shown.wait_for()
    computed = site.api.post(
        "/api/v1/costs/estimate", json={"requests": 25_000_000, "cdn_gb": 1234.5}
    ).json()
    assert computed["currency"] == "USD" and computed["monthly"] > 0
    assert shown.inner_text().strip() == money(computed["monthly"])
    check_page(page, watch, "cdn-estimate")

    # From the measured traffic of the last 30 days.
    totals = site.api.get(f"{CDN}/analytics", params={"timeframe": "30d"}).json()
    page.get_by_role("button", name="Use the last 30 days' traffic").click()
    wait_for(
        lambda: page.get_by_label("Requests per month").input_value() == str(totals["requests"]),
        15,
        "the measured requests filled in",
    )
    gb = float(page.get_by_label("GB served per month (egress)").input_value())
    model = site.api.get("/api/v1/costs/model").json()
    assert gb == pytest.approx(totals["bytes_out"] / model["gb_bytes"], abs=1e-6)
    computed = site.api.post("/api/v1/costs/estimate", json={"cdn_gb": gb}).json()
    wait_for(lambda: shown.inner_text().strip() == money(computed["monthly"]), 15, "estimate")
    check_page(page, watch, "cdn-estimate-measured")


def test_viewer_sees_everything_and_changes_nothing(
    browser: Any, dash: ControlPlane, admin_api: httpx.Client, live_site: Site
) -> None:
    site = live_site
    r = admin_api.post(
        "/api/v1/tokens", json={"name": "cdn-viewer", "roles": {site.project: "viewer"}}
    )
    assert r.status_code == 201, r.text
    with signed_in(browser, dash.url, r.json()["token"]) as (page, watch):
        open_cdn(page, dash, site.project)
        page.get_by_role("link", name=site.domain).wait_for()
        assert rule_order(page) == ["/static/*"]
        page.get_by_role("heading", name="Purge the cache").wait_for()
        page.get_by_role("heading", name="Analytics").wait_for()
        page.get_by_role("heading", name="Cost estimator").wait_for()
        assert page.get_by_role("button", name="Move rule /static/* up").is_disabled()
        assert page.get_by_role("button", name="Delete rule /static/*").is_disabled()
        assert page.get_by_role("button", name="Purge", exact=True).is_disabled()
        assert page.get_by_label("Origin 1 URL").is_disabled()
        assert write_controls_enabled(page) == []
        check_page(page, watch, "cdn-viewer")
        # An estimate changes nothing: a viewer may ask for one.
        page.get_by_label("GB served per month (egress)").fill("300")
        page.get_by_role("button", name="Estimate the monthly cost").click()
        page.get_by_test_id("cdn-estimate-monthly").wait_for()
        assert write_controls_enabled(page) == []
        check_page(page, watch, "cdn-viewer-estimate")
