"""The Scaling page in a real browser, against the shared ``edgeplane up``: its scaling
controller and local driver start real origin processes (``edgeplane demo-origin``), which its
local edge node checks before they serve.

- a group created through the page's form (a bad one first: min above max, refused on the
  minimum's field, nothing stored) gets its instance serving, and its history shows the first
  action succeeded with its steps; "Set size" to 2 shows a new action and two instances
  serving; the list shows the group in words; deleting it through the page drains and
  removes it (202, then gone);
- a group whose command exits at once stops, the list and its view say why, and Resume
  (offered only then) lets it try again; a viewer of its project sees it and can change
  nothing.

Each test works in a project of its own (``sc-ui``, ``sc-ui-stop``): the edge serves a
project's domains through its only load balancer, the one the group backs. Everything is
removed at the end, projects included, even when a test fails."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from dashboard import (
    check_page,
    field_error,
    open_page,
    project_api,
    signed_in,
    wait_for,
    write_controls_enabled,
)
from playwright.sync_api import expect
from processes import ControlPlane

INV = "/api/v1/infrastructure"
SG = f"{INV}/scaling-groups"
LB = f"{INV}/loadbalancer"
ORIGIN = f"{sys.executable} -m edgeplane demo-origin --port {{port}}"
EXITS = f'{sys.executable} -c "raise SystemExit(3)" {{port}}'  # every launch fails
HEALTH_CHECK = {"path": "/health", "interval_s": 1, "timeout_s": 0.5,
                "healthy_threshold": 1, "unhealthy_threshold": 2}  # fmt: skip


@dataclass
class World:
    """A test's project with a data center and a load balancer, and the admin API in it."""

    project: str
    api: httpx.Client
    lb: str
    dc: str


def ok(r: httpx.Response, *status: int) -> Any:
    assert r.status_code in (status or (200,)), r.text
    return r.json() if r.content else None


@contextmanager
def world(
    dash: ControlPlane, admin_api: httpx.Client, project: str, domain: str | None = None
) -> Iterator[World]:
    """``project`` with a data center ``<project>-dc`` and a load balancer ``<project>-lb``
    (checked every second), serving ``domain`` if given; on the way out its scaling groups
    are deleted (waiting until their instances are gone), then the rest and the project."""
    dc, lb = f"{project}-dc", f"{project}-lb"
    with project_api(dash, admin_api, project) as api:
        try:
            ok(api.post(f"{INV}/datacenters", json={
                "id": dc, "name": "Scaling DC", "tier": 3, "location": "us-east",
                "capacity": {"cpu": 64, "memory": 256, "storage": 2000},
            }), 201)  # fmt: skip
            ok(api.post(LB, json={"id": lb, "backends": [], "health_check": HEALTH_CHECK}), 201)
            if domain:
                ok(api.post(f"{INV}/domains", json={"domain": domain}), 201)
            yield World(project, api, lb, dc)
        finally:
            for g in api.get(SG).json()["items"]:
                assert api.delete(f"{SG}/{g['id']}").status_code in (202, 204, 404)
            wait_for(lambda: api.get(SG).json()["items"] == [], 60, f"{project}'s groups gone")
            if domain:
                assert api.delete(f"{INV}/domains/{domain}").status_code in (204, 404)
            assert api.delete(f"{LB}/{lb}").status_code in (204, 404)
            assert api.delete(f"{INV}/datacenters/{dc}").status_code in (204, 404)
            r = admin_api.delete(f"/api/v1/projects/{project}")
            assert r.status_code == 204, r.text


def open_scaling(page: Any, dash: ControlPlane, project: str, where: str = "scaling") -> None:
    """``#/<where>`` in ``project``, chosen in the top bar."""
    open_page(page, dash.url, where)
    page.get_by_label("Project", exact=True).select_option(project)
    page.wait_for_load_state("networkidle")


def group_row(page: Any, group_id: str) -> Any:
    return (
        page.get_by_role("table", name="The project's scaling groups")
        .get_by_role("row")
        .filter(has=page.get_by_role("link", name=group_id, exact=True))
    )


def test_a_group_made_on_the_page_serves_grows_and_is_deleted(
    admin_page: tuple[Any, Any], dash: ControlPlane, admin_api: httpx.Client
) -> None:
    page, watch = admin_page
    gid = "sc-web"
    with world(dash, admin_api, "sc-ui", "sc-app.localhost") as w:
        open_scaling(page, dash, w.project)
        page.get_by_text("No scaling group yet").wait_for()
        check_page(page, watch, "scaling-list-empty")

        # Refused: the minimum above the maximum, named on the minimum's field.
        form = page.get_by_role("form", name="Create a scaling group")
        form.get_by_label("ID (optional)").fill(gid)
        form.get_by_label("Load balancer", exact=True).select_option(w.lb)
        form.get_by_label("Data center", exact=True).select_option(w.dc)
        form.get_by_label("Command", exact=True).fill(ORIGIN)
        form.get_by_label("Minimum size").fill("3")
        form.get_by_label("Maximum size").fill("2")
        watch.expect(422, SG)
        form.get_by_role("button", name="Create scaling group").click()
        expect(form.get_by_label("Minimum size")).to_have_attribute("aria-invalid", "true")
        assert field_error(form, "Minimum size") == "is 3, above max_size (2)"
        assert field_error(form, "Maximum size") == ""
        assert w.api.get(SG).json()["items"] == []  # nothing stored
        check_page(page, watch, "scaling-create-refused")

        # Made: the page opens the group, whose instance serves once the edge's checks pass.
        form.get_by_label("Minimum size").fill("1")
        form.get_by_label("Maximum size").fill("3")
        form.get_by_label("Target requests/s per instance").fill("50")
        form.get_by_role("button", name="Create scaling group").click()
        page.get_by_role("heading", name=f"Scaling group {gid}").wait_for()
        assert page.url.endswith(f"#/scaling/{gid}")
        made = w.api.get(f"{SG}/{gid}").json()
        assert (made["min_size"], made["max_size"], made["desired"]) == (1, 3, 1)
        assert made["template"]["command"] == ORIGIN
        assert made["policies"] == [
            {"type": "target_tracking", "metric": "requests_per_second", "target": 50.0}
        ]

        instances = page.get_by_role("region", name="Instances", exact=True)
        serving = instances.get_by_role("row").filter(
            has=page.get_by_role("cell", name="serving", exact=True)
        )
        expect(serving).to_have_count(1, timeout=30_000)
        address = serving.get_by_role("cell").nth(2).inner_text()
        assert re.fullmatch(r"127\.0\.0\.1:\d+", address), address
        history = page.get_by_role("table", name="The group's scaling actions")
        first = history.get_by_role("row").filter(has_text="created with 1 instance(s)")
        expect(first).to_contain_text("succeeded", timeout=30_000)
        expect(first).to_contain_text("scale out")
        expect(first).to_contain_text("0 → 1")
        steps = first.get_by_role("cell").last.inner_text()
        assert re.fullmatch(
            r"triggered \+0\.0 s · provisioned \+\d+\.\d s · registered \+\d+\.\d s"
            r" · healthy \+\d+\.\d s · done",
            steps,
        ), steps
        page.get_by_text("1 / 1", exact=True).wait_for()  # serving / desired
        check_page(page, watch, "scaling-group")

        # Set size 2: a manual action in the history, then two instances serving.
        sized = page.get_by_role("form", name="Set size")
        sized.get_by_label("Desired size").fill("2")
        sized.get_by_role("button", name="Set size").click()
        sized.get_by_text("Desired size set to 2.").wait_for()
        manual = history.get_by_role("row").filter(has_text="desired set to 2 by")
        expect(manual).to_contain_text("1 → 2")
        expect(manual).to_contain_text("succeeded", timeout=30_000)
        expect(serving).to_have_count(2, timeout=10_000)
        assert history.get_by_role("row").nth(1).inner_text() == manual.inner_text()  # newest
        got = w.api.get(f"{SG}/{gid}").json()
        assert got["size"] == 2 and got["desired"] == 2
        check_page(page, watch, "scaling-group-two")

        # The list, in words.
        page.get_by_role("link", name="All scaling groups").click()
        row = group_row(page, gid)
        expect(row).to_contain_text("2 / 2")
        cells = row.get_by_role("cell").all_inner_texts()
        assert cells[1:6] == [w.lb, "local", "2 / 2", "1-3", "steady"], cells
        assert cells[6] == "requests/s per instance → 50", cells
        # no traffic: 0 once its samples cover half the window (15 s), not measured before
        assert re.fullmatch(r"requests/s per instance: (0|not measured yet)", cells[7]), cells
        check_page(page, watch, "scaling-list")

        # Deleted through the page: asked first, then drained (202) and gone.
        row.get_by_role("link", name=gid, exact=True).click()
        page.get_by_role("button", name="Delete…").click()
        confirm = page.get_by_role("group", name=f"Delete scaling group {gid}")
        expect(confirm).to_contain_text("Its 2 instances drain and are removed first.")
        with page.expect_response(lambda r: r.request.method == "DELETE") as answer:
            confirm.get_by_role("button", name=f"Confirm: delete {gid}").click()
        assert answer.value.status == 202
        page.get_by_text(f"Deleting scaling group {gid}").wait_for()
        assert page.url.endswith(f"#/scaling?deleting={gid}")
        page.get_by_text(f"Scaling group {gid} deleted").wait_for(timeout=45_000)
        expect(group_row(page, gid)).to_have_count(0)
        assert w.api.get(f"{SG}/{gid}").status_code == 404
        check_page(page, watch, "scaling-deleted")


def test_a_stopped_group_says_why_and_resumes_and_a_viewer_changes_nothing(
    admin_page: tuple[Any, Any], browser: Any, dash: ControlPlane, admin_api: httpx.Client
) -> None:
    page, watch = admin_page
    gid = "sc-broken"
    with world(dash, admin_api, "sc-ui-stop") as w:
        ok(w.api.post(SG, json={
            "id": gid, "load_balancer": w.lb, "data_center": w.dc,
            "template": {"command": EXITS}, "min_size": 1, "max_size": 2, "max_failures": 1,
        }), 201)  # fmt: skip
        wait_for(
            lambda: w.api.get(f"{SG}/{gid}").json()["status"] == "stopped", 30, "the group stopped"
        )
        open_scaling(page, dash, w.project)
        group_row(page, gid).wait_for()
        cells = group_row(page, gid).get_by_role("cell").all_inner_texts()
        assert cells[5].startswith("stopped") and "exited on start" in cells[5], cells
        check_page(page, watch, "scaling-list-stopped")

        group_row(page, gid).get_by_role("link", name=gid, exact=True).click()
        page.get_by_role("heading", name=f"Scaling group {gid}").wait_for()
        page.get_by_text("Stopped: 1 launches failed in a row; last: exited on start").wait_for()
        failed = page.get_by_role("table", name="The group's scaling actions").get_by_role("row")
        expect(failed.nth(1)).to_contain_text("failed")
        check_page(page, watch, "scaling-group-stopped")

        # A viewer of the project sees it all and can change nothing.
        r = admin_api.post(
            "/api/v1/tokens", json={"name": "sc-viewer", "roles": {w.project: "viewer"}}
        )
        assert r.status_code == 201, r.text
        token = r.json()
        try:
            with signed_in(browser, dash.url, token["token"]) as (vpage, vwatch):
                open_scaling(vpage, dash, w.project, f"scaling/{gid}")
                vpage.get_by_role("heading", name=f"Scaling group {gid}").wait_for()
                expect(vpage.get_by_role("button", name="Resume")).to_be_disabled()
                expect(vpage.get_by_role("button", name="Set size")).to_be_disabled()
                assert write_controls_enabled(vpage) == []
                check_page(vpage, vwatch, "scaling-group-viewer")
                open_scaling(vpage, dash, w.project)
                group_row(vpage, gid).wait_for()
                assert write_controls_enabled(vpage) == []
                check_page(vpage, vwatch, "scaling-list-viewer")
        finally:
            assert admin_api.delete(f"/api/v1/tokens/{token['id']}").status_code == 200

        # Resume: the group tries again (and, its command failing again, stops again).
        with page.expect_response(lambda r: "/resume?" in r.url) as answer:
            page.get_by_role("button", name="Resume").click()
        assert answer.value.status == 200
        assert answer.value.json()["status"] == "steady"

        def launched_again() -> bool:
            ended = w.api.get(f"{SG}/{gid}/instances", params={"ended": "true"}).json()
            return len(ended) >= 2

        wait_for(launched_again, 30, "a new launch after Resume")
        page.get_by_role("checkbox", name="Show ended instances").check()
        ended = page.get_by_role("region", name="Instances", exact=True).get_by_role("row")
        expect(ended.filter(has_text="failed")).to_have_count(2, timeout=10_000)
        check_page(page, watch, "scaling-group-resumed")
