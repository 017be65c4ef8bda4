"""The Global Deployment Map in a real browser, against the shared ``edgeplane up`` (its local
edge node in ``us-east``) and a second real edge node of this module's own in ``eu-central``:
both nodes on the map where their regions are, live; the region's details and the text table;
traffic flows from client countries; an edge deployment's versions and rollout per region,
deployed and rolled back through the page (the real edge serves the bundle it says); a viewer
sees it all and can change nothing; and the second node, stopped, turns red within 10 s.

Everything the module writes lives in projects of its own (``map-ui``, ``map-quiet``); the
shared node is never stopped."""

from __future__ import annotations

import io
import re
import tarfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from dashboard import (
    another_edge_node,
    check_page,
    open_page,
    project_api,
    signed_in,
    wait_for,
    write_controls_enabled,
)
from edge_agents import EdgeAgent
from playwright.sync_api import expect
from processes import ControlPlane

PROJECT = "map-ui"
QUIET = "map-quiet"
DOMAIN = "map-ui.localhost"
EDGE = "/api/v1/infrastructure/edge"
NODE = "map-eu"
FRANKFURT = (8.6821, 50.1109)  # eu-central's coordinates (the seeded regions)
RED = "rgb(220, 38, 38)"
GREEN = "rgb(21, 128, 61)"


def bundle(text: str) -> bytes:
    """A tar of one index.html saying ``text``."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        data = f"<!doctype html><title>{text}</title><h1>{text}</h1>\n".encode()
        info = tarfile.TarInfo("index.html")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.fixture(scope="module")
def api(dash: ControlPlane, admin_api: httpx.Client) -> Iterator[httpx.Client]:
    """The admin API in the module's project (created here, with a served domain)."""
    r = admin_api.post("/api/v1/projects", json={"id": QUIET})
    assert r.status_code in (201, 409), r.text
    with project_api(dash, admin_api, PROJECT) as client:
        r = client.post("/api/v1/infrastructure/domains", json={"domain": DOMAIN})
        assert r.status_code in (201, 409), r.text
        yield client


@pytest.fixture(scope="module")
def eu_node(dash: ControlPlane) -> Iterator[EdgeAgent]:
    with another_edge_node(dash, NODE, "eu-central") as agent:
        yield agent


def in_project(page: Any, project: str) -> None:
    """Choose a project in the top bar (the page reloads for it)."""
    select = page.get_by_label("Project")
    wait_for(
        lambda: project in select.evaluate("s => [...s.options].map(o => o.value)"),
        15,
        f"project {project} listed",
    )
    select.select_option(project)
    page.wait_for_load_state("networkidle")


def open_map(page: Any, base: str, project: str, where: str = "map") -> None:
    open_page(page, base, where)
    in_project(page, project)
    page.locator("svg.world a.marker").first.wait_for()


def node_marker(page: Any, name: str) -> Any:
    return page.locator(f'svg.world a.marker.node[data-node="{name}"]')


def fill(locator: Any) -> str:
    return str(locator.locator("circle").evaluate("c => getComputedStyle(c).fill"))


def shared_node(admin_api: httpx.Client) -> dict[str, Any]:
    nodes = [n for n in admin_api.get("/api/v1/edge/nodes").json() if n["region"] == "us-east"]
    assert nodes, "the shared edge node is missing"
    return dict(nodes[0])


def test_the_projection_places_points_as_d3_does(admin_page: Any, dash: ControlPlane) -> None:
    """The page's Natural Earth 1 projection against d3-geo's (geoNaturalEarth1().scale(175)
    .translate([480, 260]), the constants of world.json), for a few known points."""
    page, watch = admin_page
    open_page(page, dash.url, "map")
    got = page.evaluate(
        """async () => {
          const geo = await import('/ui/js/pages/map_geo.js');
          const world = await geo.loadWorld();
          const at = (lon, lat) => geo.project(world.projection, lon, lat);
          return [world.projection, at(8.6821, 50.1109), at(-77.4874, 39.0438),
                  at(151.2, -33.87), at(0, 0), at(179, 80)];
        }"""
    )
    assert got[0] == {
        "name": "naturalEarth1",
        "width": 960,
        "height": 500,
        "scale": 175,
        "tx": 480,
        "ty": 260,
    }
    d3 = [
        (500.2175688565556, 105.84369103813017),
        (289.12177040493447, 139.43663078831213),
        (860.0331873076616, 364.58790681049516),
        (480, 260),
        (801.9489543309053, 26.01881000248926),
    ]
    for (x, y), (ex, ey) in zip(got[1:], d3, strict=True):
        assert x == pytest.approx(ex, abs=1e-6) and y == pytest.approx(ey, abs=1e-6)
    watch.assert_clean()


def test_an_empty_project_says_so(admin_page: Any, dash: ControlPlane, api: Any) -> None:
    page, watch = admin_page
    open_map(page, dash.url, QUIET)
    page.get_by_text("No traffic yet in the last hour").wait_for(timeout=5000)
    page.get_by_text("No deployment yet in this project.").wait_for(timeout=5000)
    assert page.locator("svg.world path.flow").count() == 0
    check_page(page, watch, "map-empty-project")


def test_both_nodes_on_the_map_and_a_region_inspected(
    admin_page: Any,
    dash: ControlPlane,
    api: httpx.Client,
    admin_api: httpx.Client,
    eu_node: EdgeAgent,
) -> None:
    page, watch = admin_page
    us = shared_node(admin_api)
    open_map(page, dash.url, PROJECT)
    eu_mark, us_mark = node_marker(page, NODE), node_marker(page, us["name"])
    eu_mark.wait_for()
    assert eu_mark.get_attribute("data-state") == "live"
    assert us_mark.get_attribute("data-state") == "live"
    assert fill(eu_mark) == GREEN and fill(us_mark) == GREEN
    eu_box, us_box = eu_mark.bounding_box(), us_mark.bounding_box()
    assert eu_box and us_box
    assert eu_box["x"] > us_box["x"] + 100  # Frankfurt lies far east of Virginia
    assert eu_box["y"] < us_box["y"]  # and north of it
    # The node's marker sits on a small ring around its region's point, as projected.
    region = page.locator('svg.world a.marker.region[data-region="eu-central"] circle')
    cx, cy = float(region.get_attribute("cx")), float(region.get_attribute("cy"))
    assert cx == pytest.approx(500.2176, abs=0.01) and cy == pytest.approx(105.8437, abs=0.01)
    circle = eu_mark.locator("circle")
    ncx, ncy = float(circle.get_attribute("cx")), float(circle.get_attribute("cy"))
    assert abs(ncx - cx) <= 15 and abs(ncy - cy) <= 15
    assert eu_mark.get_attribute("aria-label") == f"Edge node {NODE} in eu-central: live"
    check_page(page, watch, "map-two-nodes")

    # The keyboard reaches the region's marker; Enter selects it: its details panel.
    region_link = page.locator('svg.world a.marker.region[data-region="eu-central"]')
    region_link.focus()
    page.keyboard.press("Enter")
    details = page.locator("#map-details")
    details.get_by_role("heading", name="Region eu-central").wait_for()
    assert "Europe Central (Frankfurt)" in details.inner_text()
    nodes_table = details.get_by_role("table", name="Edge nodes")
    row = nodes_table.get_by_role("row").filter(has_text=NODE)
    assert re.search(r"live", row.inner_text())
    assert str(eu_node_revision(admin_api)) in row.inner_text()
    # The text equivalent of the map lists both nodes in their regions.
    table = page.get_by_role("table", name=re.compile("what the map shows"))
    assert NODE in table.get_by_role("row").filter(has_text="eu-central").first.inner_text()
    assert us["name"] in table.get_by_role("row").filter(has_text="us-east").first.inner_text()
    check_page(page, watch, "map-region-eu-central")

    # A node selected from the table: its own details.
    details.get_by_role("link", name=NODE).click()
    details.get_by_role("heading", name=f"Edge node {NODE}").wait_for()
    assert "Last heartbeat" in details.inner_text()
    check_page(page, watch, "map-node-details")


def eu_node_revision(admin_api: httpx.Client) -> int:
    (node,) = [n for n in admin_api.get("/api/v1/edge/nodes").json() if n["name"] == NODE]
    return int(node["applied_revision"])


def test_traffic_flows_from_client_countries(
    admin_page: Any,
    dash: ControlPlane,
    api: httpx.Client,
    eu_node: EdgeAgent,
    admin_api: httpx.Client,
) -> None:
    """Traffic the eu node reports (the edge protocol's analytics, as its agent sends them)
    becomes arcs from the client countries to eu-central, and rows of the table."""
    (node,) = [n for n in admin_api.get("/api/v1/edge/nodes").json() if n["name"] == NODE]
    minute = (datetime.now(UTC) - timedelta(minutes=2)).replace(second=0, microsecond=0)
    report = {
        "minutes": [
            {
                "site": PROJECT,
                "domain": f"flows.{DOMAIN}",
                "minute": minute.isoformat(),
                "requests": 70,
                "misses": 70,
                "bytes_out": 7000,
                "countries": {"DE": 40, "FR": 20, "BR": 10},
            }
        ]
    }
    r = httpx.post(
        f"{dash.url}/api/v1/edge/nodes/{node['id']}/analytics",
        json=report,
        headers={"Authorization": f"Bearer {eu_node.token}"},
        timeout=10,
    )
    assert r.status_code == 204, r.text
    page, watch = admin_page
    open_map(page, dash.url, PROJECT, "map/eu-central")
    flows = page.locator('svg.world path.flow[data-to="eu-central"]')
    flows.first.wait_for()
    assert sorted(flows.evaluate_all("ps => ps.map(p => p.dataset.from)")) == ["BR", "DE", "FR"]
    widths = {
        f: float(page.locator(f'path.flow[data-from="{f}"]').get_attribute("stroke-width") or 0)
        for f in ("DE", "BR")
    }
    assert widths["DE"] > widths["BR"]  # more requests, a wider arc
    table = page.get_by_role("table", name=re.compile("what the map shows"))
    assert "DE 40" in table.get_by_role("row").filter(has_text="eu-central").first.inner_text()
    details = page.locator("#map-details")
    assert "DE 40, FR 20, BR 10" in details.inner_text()
    # Turning the layer off removes the arcs.
    page.get_by_label("Traffic flows").uncheck()
    expect(page.locator("svg.world path.flow")).to_have_count(0)
    check_page(page, watch, "map-traffic-flows")


def test_deploy_and_roll_back_through_the_page(
    admin_page: Any, dash: ControlPlane, api: httpx.Client, eu_node: EdgeAgent
) -> None:
    first = api.post(
        f"{EDGE}/bundles", content=bundle("map v1"), headers={"Content-Type": "application/x-tar"}
    )
    second = api.post(
        f"{EDGE}/bundles", content=bundle("map v2"), headers={"Content-Type": "application/x-tar"}
    )
    assert first.status_code in (200, 201) and second.status_code in (200, 201), first.text
    b1, b2 = first.json()["bundle"]["id"], second.json()["bundle"]["id"]
    r = api.post(f"{EDGE}/deploy", json={"bundle": b1, "regions": ["eu-central"]})
    assert r.status_code == 202, r.text
    v1 = r.json()["deployment"]
    wait_for(
        lambda: api.get(f"{EDGE}/deployments/{v1['id']}").json()["status"] == "active",
        60,
        "version 1 active",
    )

    page, watch = admin_page
    open_map(page, dash.url, PROJECT, "map/eu-central")
    card = page.locator("#map-deployments")
    card.get_by_role("heading", name=re.compile(r"Version \d+: active")).wait_for()
    rollout = card.get_by_role("table", name=re.compile("Rollout of version"))
    assert "done" in rollout.get_by_role("row").filter(has_text="eu-central").inner_text()
    check_page(page, watch, "map-deployment-active")

    # Deploy the second bundle to eu-central, chosen on the map's details panel.
    page.locator("#map-details").get_by_role(
        "button", name="Choose eu-central for a deploy"
    ).click()
    assert card.get_by_label("eu-central (1 live)").is_checked()
    card.get_by_label("Bundle").select_option(b2)
    card.get_by_role("button", name="Deploy", exact=True).click()
    card.get_by_text(re.compile(r"Version \d+ is rolling out to eu-central")).wait_for()
    card.get_by_role("heading", name=re.compile(r"Version \d+: active")).wait_for(timeout=60_000)
    current = api.get(f"{EDGE}/deployments/current").json()
    assert current["bundle"] == b2 and current["regions"] == ["eu-central"]
    wait_for(lambda: "map v2" in eu_node.get(DOMAIN, "/").text, 30, "the edge serving v2")
    page.get_by_role("table", name=re.compile("what the map shows")).get_by_role("row").filter(
        has_text="eu-central"
    ).filter(has_text=f"v{current['version']}").first.wait_for()
    check_page(page, watch, "map-deployed")

    # Roll back through the page: the first bundle again, on the real edge.
    card.get_by_role("button", name=f"Roll back to v{v1['version']}").click()
    card.get_by_text(re.compile(rf"reactivates version {v1['version']}")).wait_for()
    back = wait_for(
        lambda: (c := api.get(f"{EDGE}/deployments/current").json())["bundle"] == b1 and c,
        30,
        "the rollback current",
    )
    assert back["reactivates"] == v1["id"]
    wait_for(lambda: "map v1" in eu_node.get(DOMAIN, "/").text, 30, "the edge serving v1 again")
    # The versions table shows the third version (the rollback) at the page's next refresh.
    versions = card.get_by_role("table", name="Versions")
    expect(versions.get_by_role("row")).to_have_count(1 + 3, timeout=15_000)
    check_page(page, watch, "map-rolled-back")


def test_a_viewer_sees_everything_and_changes_nothing(
    browser: Any,
    dash: ControlPlane,
    admin_api: httpx.Client,
    api: httpx.Client,
    eu_node: EdgeAgent,
) -> None:
    # A viewer in the default project too: the shell opens there before the project is chosen.
    roles = {"default": "viewer", PROJECT: "viewer"}
    r = admin_api.post("/api/v1/tokens", json={"name": "map-viewer", "roles": roles})
    assert r.status_code == 201, r.text
    with signed_in(browser, dash.url, r.json()["token"]) as (page, watch):
        open_map(page, dash.url, PROJECT, "map/eu-central")
        node_marker(page, NODE).wait_for()
        page.locator("#map-details").get_by_role("heading", name="Region eu-central").wait_for()
        page.get_by_role("table", name="Versions").wait_for()
        assert page.get_by_role("button", name="Deploy", exact=True).is_disabled()
        assert write_controls_enabled(page) == []
        check_page(page, watch, "map-viewer")


def test_a_stopped_node_turns_red_within_10_s(
    admin_page: Any,
    dash: ControlPlane,
    admin_api: httpx.Client,
    eu_node: EdgeAgent,
    api: httpx.Client,
) -> None:
    page, watch = admin_page
    us = shared_node(admin_api)
    open_map(page, dash.url, PROJECT)
    marker = node_marker(page, NODE)
    marker.wait_for()
    assert marker.get_attribute("data-state") == "live"
    stopped = time.monotonic()
    eu_node.stop()
    page.wait_for_function(
        f"""() => {{
          const m = document.querySelector('svg.world a.marker.node[data-node="{NODE}"]');
          return m && m.dataset.state !== 'live';
        }}""",
        timeout=10_000,
        polling=200,
    )
    assert time.monotonic() - stopped <= 10.0
    assert fill(marker) == RED
    assert marker.get_attribute("data-state") in ("stale", "offline")
    assert node_marker(page, us["name"]).get_attribute("data-state") == "live"  # untouched
    region = page.locator('svg.world a.marker.region[data-region="eu-central"]')
    assert region.get_attribute("data-state") == "down"
    table = page.get_by_role("table", name=re.compile("what the map shows"))
    assert re.search(rf"{NODE} \((stale|offline)", table.inner_text())
    check_page(page, watch, "map-node-down")
