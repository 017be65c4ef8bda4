"""The Load Balancer page in a real browser, against the shared ``edgeplane up`` and its local
edge node: a load balancer created through the page with two real origins serves
``lb-app.localhost`` through the edge; health per node turns red when an origin dies; backend
changes made on the page reach the API; the API's refusals land on the right fields; a viewer
sees it all and can change nothing.

Everything lives in a project of its own (``lb-ui``): a project's domains are served through its
only load balancer (or the one its CDN config names), so the tests neither take nor disturb
other pages' traffic."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dashboard import (
    check_page,
    open_page,
    project_api,
    signed_in,
    wait_for,
    write_controls_enabled,
)
from origins import Origin, OriginSet, origin_set
from processes import ControlPlane

PROJECT = "lb-ui"
DOMAIN = "lb-app.localhost"
LB = "/api/v1/infrastructure/loadbalancer"


@pytest.fixture(scope="module")
def api(dash: ControlPlane, admin_api: httpx.Client) -> Iterator[httpx.Client]:
    """The admin API in the module's project (created here)."""
    with project_api(dash, admin_api, PROJECT) as client:
        yield client


@pytest.fixture(scope="module")
def origins() -> Iterator[dict[str, Origin]]:
    with origin_set() as s:
        yield {"a": s.start("lb-a"), "b": s.start("lb-b")}


@pytest.fixture(scope="module")
def spare() -> Iterator[OriginSet]:
    with origin_set() as s:
        yield s


def in_project(page: Any) -> None:
    """Choose the module's project in the top bar (the page reloads for it)."""
    page.get_by_label("Project").select_option(PROJECT)
    page.wait_for_load_state("networkidle")


def the_lb(api: httpx.Client) -> dict[str, Any]:
    items = api.get(LB).json()["items"]
    named = [lb for lb in items if lb["name"] == "lb-app"]
    assert len(named) == 1, items
    return dict(named[0])


def backends(api: httpx.Client) -> dict[str, dict[str, Any]]:
    return {b["address"]: b for b in the_lb(api)["backends"]}


def answers(dash: ControlPlane) -> str | None:
    """The origin that answers ``/`` of the domain through the edge node: over HTTPS, where
    the edge redirects plain HTTP once the domain has its certificate (issued at once for a
    .localhost name)."""
    with httpx.Client(verify=False, timeout=5) as client:
        request = client.build_request(
            "GET",
            f"https://127.0.0.1:{dash.https_port}/",
            headers={"Host": DOMAIN},
            extensions={"sni_hostname": DOMAIN},
        )
        try:
            r = client.send(request)
        except httpx.TransportError:
            return None
    return r.headers.get("x-origin") if r.status_code == 200 else None


def open_lb(page: Any, dash: ControlPlane, lb_id: str) -> None:
    open_page(page, dash.url, f"load-balancers/{lb_id}")
    page.get_by_role("heading", name="Load balancer lb-app").wait_for()


def test_create_with_two_origins_serves_through_the_edge(
    admin_page: tuple[Any, Any], dash: ControlPlane, api: httpx.Client, origins: dict[str, Origin]
) -> None:
    page, watch = admin_page
    open_page(page, dash.url, "load-balancers")
    in_project(page)
    page.get_by_text("No load balancer yet").wait_for()
    check_page(page, watch, "load-balancers-list-empty")

    form = page.get_by_role("form", name="Create a load balancer")
    form.get_by_label("Name", exact=True).fill("lb-app")
    form.get_by_label("Domain (optional)").fill(DOMAIN)
    form.get_by_label("Algorithm").select_option("least_conn")
    form.get_by_label("Backend 1 address").fill(origins["a"].address)
    form.get_by_label("Backend 2 address").fill(origins["b"].address)
    form.get_by_label("Backend 2 weight").fill("200")
    form.get_by_role("button", name="Create load balancer").click()
    page.get_by_role("heading", name="Load balancer lb-app").wait_for()
    assert "#/load-balancers/lb-" in page.url

    lb = the_lb(api)
    assert lb["algorithm"] == "least_conn"
    assert {b["address"]: b["weight"] for b in lb["backends"]} == {
        origins["a"].address: 100,
        origins["b"].address: 200,
    }
    assert lb["domains"] == [DOMAIN]  # served through it: the project's only load balancer

    # Both real origins answer through the real edge node.
    seen: set[str] = set()

    def both() -> bool:
        name = answers(dash)
        if name:
            seen.add(name)
        return seen == {"lb-a", "lb-b"}

    wait_for(both, 45, f"both origins answering for {DOMAIN} (saw {seen})")

    # The page shows the node's checks: both up, with the reason.
    health = page.get_by_role("region", name="Health per edge node")
    wait_for(lambda: health.get_by_text("up", exact=True).count() >= 2, 30, "both backends up")
    page.get_by_text("serves lb-app.localhost").wait_for()

    # The requests each backend answered, as the edge measured them, on the traffic card.
    def answered() -> dict[str, float]:
        r = api.get("/api/v1/metrics", params={"series": "backend_requests"})
        assert r.status_code == 200, r.text
        return {x["object"]: sum(p["value"] for p in x["points"]) for x in r.json()["results"]}

    both_answered = {origins["a"].address, origins["b"].address}
    wait_for(lambda: set(answered()) == both_answered, 30, "requests per backend measured")
    page.reload()
    shares = page.get_by_role("list", name="Share of requests answered")
    shares.wait_for()
    for address in both_answered:
        share = shares.get_by_role("listitem").filter(has_text=address).inner_text()
        percent = float(share.split()[-2])  # "127.0.0.1:4321 33.3 %"
        assert 0 < percent < 100, share
    chart = page.get_by_role("region", name="Traffic distribution")
    chart.get_by_text("Requests per backend").wait_for()
    check_page(page, watch, "load-balancers-detail")

    open_page(page, dash.url, "load-balancers")
    row = page.get_by_role("row").filter(has_text="lb-app")
    row.get_by_text("2 / 2 up").wait_for()
    assert DOMAIN in row.inner_text()
    check_page(page, watch, "load-balancers-list")


def test_health_and_backend_changes(
    admin_page: tuple[Any, Any],
    dash: ControlPlane,
    api: httpx.Client,
    origins: dict[str, Origin],
    spare: OriginSet,
) -> None:
    page, watch = admin_page
    lb_id = the_lb(api)["id"]
    open_page(page, dash.url, "load-balancers")
    in_project(page)
    open_lb(page, dash, lb_id)

    # A quicker health check, through the form.
    check = page.get_by_role("form", name="Health check")
    check.get_by_label("Path").fill("/health")
    check.get_by_label("Interval (s)").fill("1")
    check.get_by_label("Timeout (s)").fill("0.5")
    check.get_by_label("Healthy threshold", exact=True).fill("1")
    check.get_by_label("Unhealthy threshold").fill("1")
    check.get_by_role("button", name="Save health check").click()
    check.get_by_text("Saved.").wait_for()
    hc = the_lb(api)["health_check"]
    assert (hc["path"], hc["interval_s"], hc["timeout_s"]) == ("/health", 1.0, 0.5)
    assert (hc["healthy_threshold"], hc["unhealthy_threshold"]) == (1, 1)

    # Stop origin b: the node reports it down, with the reason, on the page (polled).
    origins["b"].kill()
    b_row = (
        page.get_by_role("region", name="Health per edge node")
        .get_by_role("row")
        .filter(has_text=origins["b"].address)
    )
    wait_for(lambda: "down" in b_row.inner_text(), 30, "origin b shown down")
    cells = b_row.get_by_role("cell").all_inner_texts()
    assert cells[1:3] == ["local", "down"], cells  # the edge node's name, its verdict
    reason = cells[3].lower()  # the node's reason: connect refused, ReadError, timeout...
    assert reason not in ("", "ok", "—") and any(
        word in reason for word in ("refused", "error", "timeout", "reset", "status")
    ), cells
    page.get_by_text("1 / 2").first.wait_for()
    check_page(page, watch, "load-balancers-backend-down")
    # Failover: the edge keeps answering, from a alone.
    assert {answers(dash) for _ in range(4)} == {"lb-a"}

    # Weight of a, through its own form.
    a = origins["a"].address
    page.get_by_role("spinbutton", name=f"Weight of {a}").fill("300")
    page.get_by_role("form", name=f"Weight of {a}").get_by_role(
        "button", name="Save weight"
    ).click()
    wait_for(lambda: backends(api)[a]["weight"] == 300, 30, "weight 300 stored")

    b = origins["b"].address
    page.get_by_role("button", name=f"Drain {b}").click()
    wait_for(lambda: backends(api)[b]["state"] == "draining", 30, "b draining")
    page.get_by_role("button", name=f"Return {b} to rotation").wait_for()
    backends_card = page.get_by_role("region", name="Backends")
    backends_card.get_by_role("row").filter(has_text=b).get_by_text("draining").wait_for()
    check_page(page, watch, "load-balancers-draining")

    page.get_by_role("button", name=f"Disable {b}").click()
    wait_for(lambda: backends(api)[b]["state"] == "disabled", 30, "b disabled")
    backends_card.get_by_role("row").filter(has_text=b).get_by_text("disabled").wait_for()
    page.get_by_role("button", name=f"Enable {b}").click()
    wait_for(lambda: backends(api)[b]["state"] == "active", 30, "b active again")
    page.get_by_role("button", name=f"Disable {b}").wait_for()
    page.get_by_role("button", name=f"Make {b} a backup").click()
    wait_for(lambda: backends(api)[b]["backup"] is True, 30, "b a backup")
    page.get_by_text(f"{b} takes traffic only while every primary is down").wait_for()

    # Add a backend, then remove it.
    c = spare.start("lb-c").address
    add = page.get_by_role("form", name="Add a backend")
    add.get_by_label("Address", exact=True).fill(c)
    add.get_by_label("Weight", exact=True).fill("50")
    add.get_by_role("button", name="Add backend").click()
    wait_for(lambda: backends(api).get(c, {}).get("weight") == 50, 30, "c added")
    page.get_by_role("button", name=f"Remove {c}").click()
    wait_for(lambda: c not in backends(api), 30, "c removed")

    # The algorithm, through the settings form.
    settings = page.get_by_role("form", name="Algorithm and failover")
    settings.get_by_label("Algorithm").select_option("round_robin")
    settings.get_by_label("Retries on the next backend").fill("2")
    settings.get_by_role("button", name="Save settings").click()
    settings.get_by_text("Saved.").wait_for()
    lb = the_lb(api)
    assert (lb["algorithm"], lb["retries"]) == ("round_robin", 2)
    check_page(page, watch, "load-balancers-changed")


def test_bad_input_on_the_fields(
    admin_page: tuple[Any, Any], dash: ControlPlane, api: httpx.Client
) -> None:
    page, watch = admin_page
    watch.expect(422, "/api/v1/infrastructure/loadbalancer")
    open_page(page, dash.url, "load-balancers")
    in_project(page)
    before = api.get(LB).json()["items"]

    form = page.get_by_role("form", name="Create a load balancer")
    form.get_by_label("Name", exact=True).fill("lb-bad")
    form.get_by_label("Backend 1 address").fill("127.0.0.1:8080")
    form.get_by_label("Backend 1 weight").fill("0")
    form.get_by_label("Backend 2 address").fill("not an address")
    form.get_by_role("button", name="Create load balancer").click()
    weight = form.get_by_label("Backend 1 weight")
    page.locator(f"#{weight.get_attribute('id')}-error").wait_for()
    assert (
        "greater than or equal to 1"
        in page.locator(f"#{weight.get_attribute('id')}-error").inner_text()
    )
    address = form.get_by_label("Backend 2 address")
    assert address.get_attribute("aria-invalid") == "true"
    assert (
        "neither a server id" in page.locator(f"#{address.get_attribute('id')}-error").inner_text()
    )
    assert api.get(LB).json()["items"] == before  # nothing stored
    check_page(page, watch, "load-balancers-create-refused")

    lb_id = the_lb(api)["id"]
    stored = the_lb(api)["backends"]
    open_lb(page, dash, lb_id)
    add = page.get_by_role("form", name="Add a backend")
    add.get_by_label("Address", exact=True).fill("zz zz")
    add.get_by_label("Weight", exact=True).fill("5000")
    add.get_by_role("button", name="Add backend").click()
    add.get_by_text("less than or equal to 1000").wait_for()
    add.get_by_text("'zz zz' is neither a server id").wait_for()
    assert add.get_by_label("Address", exact=True).get_attribute("aria-invalid") == "true"

    check = page.get_by_role("form", name="Health check")
    check.get_by_label("Interval (s)").fill("2")
    check.get_by_label("Timeout (s)").fill("3")
    check.get_by_role("button", name="Save health check").click()
    check.get_by_text("timeout_s must be shorter than interval_s").wait_for()
    assert check.get_by_label("Timeout (s)").get_attribute("aria-invalid") == "true"
    lb = the_lb(api)
    assert lb["backends"] == stored and lb["health_check"]["interval_s"] == 1.0
    check_page(page, watch, "load-balancers-backend-refused")


def test_viewer_sees_everything_and_changes_nothing(
    browser: Any, dash: ControlPlane, api: httpx.Client, admin_api: httpx.Client
) -> None:
    r = admin_api.post(
        "/api/v1/tokens",
        json={"name": "lb-viewer", "roles": {"default": "viewer", PROJECT: "viewer"}},
    )
    r.raise_for_status()
    lb_id = the_lb(api)["id"]
    with signed_in(browser, dash.url, r.json()["token"]) as (page, watch):
        open_page(page, dash.url, "load-balancers")
        in_project(page)
        page.get_by_role("link", name="lb-app").wait_for()
        assert write_controls_enabled(page) == []
        check_page(page, watch, "load-balancers-list-viewer")

        open_lb(page, dash, lb_id)
        page.get_by_role("region", name="Health per edge node").get_by_text(
            "local"
        ).first.wait_for()
        page.get_by_role("button", name="Save health check").wait_for()
        assert page.get_by_role("button", name="Save health check").is_disabled()
        assert write_controls_enabled(page) == []
        check_page(page, watch, "load-balancers-detail-viewer")
