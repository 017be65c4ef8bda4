"""The Functions page in a real browser, against the shared ``edgeplane up``, whose local edge
node runs edge functions in the real runtime (Node.js and isolated-vm):

- a function deployed from the page's form (a syntax error first: refused with its line and
  column on the code field, nothing made; "Check" says the same, then "ok") goes active, the
  edge answers with it, and its console line and its invocation reach its page; v2 deployed
  from the function's page (its form starts from v1; an env line removed there is gone from
  v2) goes active, "Roll back" brings v1 back at the edge; Delete (asked twice)
  removes it;
- a viewer of the project sees a function's page and the list with no write control.

Each test works in a project of its own with a domain of its own; everything is removed at the
end, projects included, even when a test fails."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from dashboard import (
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
from playwright.sync_api import expect
from processes import ControlPlane

from edgeplane.node.functions.find import find_runtime

INV = "/api/v1/infrastructure"
FN = f"{INV}/functions"

if find_runtime() is None:
    pytest.skip("needs Node.js and the function runtime's npm packages", allow_module_level=True)


def code(answer: str) -> str:
    return f"""export default {{
  async fetch(request) {{
    const url = new URL(request.url);
    console.log("{answer} served " + url.pathname);
    return new Response("{answer}");
  }},
}};
"""


BROKEN = """export default {
  async fetch(request) {
    return new Response("oops";
  },
};
"""


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    with origin_set() as s:
        yield s.start("fn-origin")


@contextmanager
def site(
    dash: ControlPlane, admin_api: httpx.Client, project: str, origin: Origin | None = None
) -> Iterator[Site]:
    """``project`` with a domain of its own (served by the edge from ``origin`` when given,
    applied by the edge node); on the way out its functions, the domain and the project are
    deleted."""
    domain = f"{project}-{uuid.uuid4().hex[:6]}.localhost"
    with project_api(dash, admin_api, project) as api:
        try:
            r = api.post(f"{INV}/domains", json={"domain": domain})
            assert r.status_code == 201, r.text
            if origin is not None:
                body = {"origins": [{"url": origin.url}], "security": {"force_https": False}}
                r = api.post(f"{INV}/cdn", json=body)
                assert r.status_code in (200, 201), r.text
                applied(admin_api, r.json()["cdn_deployment"]["revision"])
            yield Site(project, domain, api)
        finally:
            for f in api.get(FN).json()["items"]:
                assert api.delete(f"{FN}/{f['name']}").status_code in (204, 404)
            assert api.delete(f"{INV}/domains/{domain}").status_code in (204, 404)
            r = admin_api.delete(f"/api/v1/projects/{project}")
            assert r.status_code == 204, r.text


def open_functions(page: Any, dash: ControlPlane, project: str, where: str = "functions") -> None:
    """``#/<where>`` in ``project``, chosen in the top bar."""
    open_page(page, dash.url, where)
    page.get_by_label("Project", exact=True).select_option(project)
    page.wait_for_load_state("networkidle")


def answers(dash: ControlPlane, domain: str, path: str, text: str) -> bool:
    try:
        return through_edge(dash, domain, path).text == text
    except httpx.HTTPError:
        return False


def deploy_from_form(page: Any, name: str, source: str, routes: str) -> None:
    form = page.get_by_role("form", name="Deploy a function")
    form.get_by_label("Name", exact=True).fill(name)
    form.get_by_label("Code", exact=True).fill(source)
    form.get_by_label("Routes", exact=True).fill(routes)
    form.get_by_role("button", name="Deploy").click()


def test_a_function_deployed_on_the_page_serves_rolls_back_and_is_deleted(
    admin_page: tuple[Any, Any], dash: ControlPlane, admin_api: httpx.Client, origin: Origin
) -> None:
    page, watch = admin_page
    name = "hello-ui"
    with site(dash, admin_api, "fn-ui", origin) as s:
        open_functions(page, dash, s.project)
        page.get_by_text("No function yet").wait_for()

        # A syntax error: "Check" shows where; Deploy is refused on the code field.
        form = page.get_by_role("form", name="Deploy a function")
        form.get_by_label("Code", exact=True).fill(BROKEN)
        form.get_by_role("button", name="Check").click()
        result = form.get_by_role("status", name="Check result")
        expect(result).to_have_text(re.compile(r"^line 3, column \d+: .+"))
        watch.expect(422, FN)
        deploy_from_form(page, name, BROKEN, f"{s.domain}/fn/*@GET")
        expect(form.get_by_label("Code", exact=True)).to_have_attribute("aria-invalid", "true")
        reason = field_error(form, "Code")
        assert re.fullmatch(r"line 3, column \d+: .+", reason), reason
        assert field_error(form, "Routes") == ""
        assert s.api.get(FN).json()["items"] == []  # nothing made
        check_page(page, watch, "functions-refused")

        # v1: checked; a route on a host of no domain of the project refused on its line; then
        # deployed, active, and the edge answers with it.
        form.get_by_label("Code", exact=True).fill(code("v1"))
        form.get_by_role("button", name="Check").click()
        expect(result).to_have_text("ok")
        form.get_by_label("Routes", exact=True).fill(f"{s.domain}/fn/*@GET\nelsewhere.localhost/x")
        form.get_by_role("button", name="Deploy").click()
        expect(form.get_by_label("Routes", exact=True)).to_have_attribute("aria-invalid", "true")
        assert field_error(form, "Routes") == (
            f"line 2: elsewhere.localhost is not a domain of project '{s.project}'"
        )
        assert field_error(form, "Code") == ""
        assert s.api.get(FN).json()["items"] == []
        form.get_by_label("Routes", exact=True).fill(f"{s.domain}/fn/*@GET")
        form.get_by_label("Environment", exact=True).fill("GREETING=hi")
        form.get_by_label("Timeout (ms)").fill("2000")
        form.get_by_role("button", name="Deploy").click()
        page.get_by_role("heading", name=f"Function {name}").wait_for()
        assert page.url.endswith(f"#/functions/{name}")
        made = s.api.get(f"{FN}/{name}").json()["current"]
        assert made["routes"] == [{"pattern": f"{s.domain}/fn/*", "methods": ["GET"]}]
        assert made["env"] == {"GREETING": "hi"} and made["limits"]["timeout_ms"] == 2000
        current = page.get_by_role("region", name="Current version", exact=True)
        expect(current).to_contain_text("v1 active", timeout=30_000)
        expect(current).to_contain_text("GREETING=hi")
        rollout = page.get_by_role("table", name="Rollout of version 1 per region")
        expect(rollout.get_by_role("row").nth(1)).to_contain_text("1 of 1")
        wait_for(lambda: answers(dash, s.domain, "/fn/a", "v1"), 30, "the edge answers v1")

        # Its console line and its invocation reach its page.
        logs = page.get_by_role("table", name="The function's latest console lines")
        expect(logs).to_contain_text("v1 served /fn/a", timeout=30_000)
        metrics = page.get_by_role(
            "table", name="The function's invocations per region over the last hour"
        )
        total = metrics.get_by_role("row").filter(has_text="Total")
        expect(total).to_be_visible(timeout=30_000)
        cells = total.get_by_role("cell").all_inner_texts()
        assert int(cells[1]) >= 1 and cells[2] == "0", cells
        expect(page.locator("pre.fn-source")).to_contain_text('new Response("v1")')
        check_page(page, watch, "functions-detail")

        # The list, then v2 from the function's page: the form starts from v1 (code, routes, env,
        # limits); the env line removed there is gone from v2, the check path set, then Roll back.
        page.get_by_role("link", name="All functions").click()
        row = page.get_by_role("table", name="The project's functions").get_by_role("row")
        expect(row.nth(1)).to_contain_text(name)
        cells = row.nth(1).get_by_role("cell").all_inner_texts()
        assert cells[:4] == [name, "v1", "active", f"{s.domain}/fn/*@GET"], cells
        check_page(page, watch, "functions-list")
        row.nth(1).get_by_role("link", name=name).click()
        page.get_by_role("button", name="Edit and deploy…").click()
        form = page.get_by_role("form", name=f"Deploy a new version of {name}")
        expect(form.get_by_label("Code", exact=True)).to_have_value(code("v1"))
        expect(form.get_by_label("Routes", exact=True)).to_have_value(f"{s.domain}/fn/*@GET")
        expect(form.get_by_label("Environment", exact=True)).to_have_value("GREETING=hi")
        expect(form.get_by_label("Timeout (ms)")).to_have_value("2000")
        check_page(page, watch, "functions-edit")
        form.get_by_label("Code", exact=True).fill(code("v2"))
        form.get_by_label("Environment", exact=True).fill("")
        form.get_by_label("Check path").fill("/fn/health")
        form.get_by_label("Message").fill("v2 without GREETING")
        form.get_by_role("button", name="Deploy").click()
        page.get_by_text("Version 2 made: it rolls out, canary first.").wait_for()
        made = s.api.get(f"{FN}/{name}/versions/2").json()
        assert made["env"] == {} and made["check_path"] == "/fn/health", made
        assert made["routes"] == [{"pattern": f"{s.domain}/fn/*", "methods": ["GET"]}]
        assert made["limits"]["timeout_ms"] == 2000 and made["message"] == "v2 without GREETING"
        expect(current).to_contain_text("v2 active", timeout=30_000)
        expect(current).not_to_contain_text("GREETING=hi")
        expect(current).to_contain_text("/fn/health")
        wait_for(lambda: answers(dash, s.domain, "/fn/b", "v2"), 30, "the edge answers v2")
        versions = page.get_by_role("table", name="The function's versions")
        expect(versions.get_by_role("button", name="Activate v1")).to_be_enabled()
        check_page(page, watch, "functions-v2")
        page.get_by_role("button", name="Roll back").click()
        # (a new version with v1's content, everywhere at once)
        page.get_by_text("Version 3 goes out everywhere: version 1 again.").wait_for()
        expect(current).to_contain_text("v3 active", timeout=30_000)
        wait_for(lambda: answers(dash, s.domain, "/fn/c", "v1"), 30, "the edge answers v1 again")
        assert s.api.get(f"{FN}/{name}").json()["active_version"] == 3
        expect(versions.get_by_role("row").nth(1)).to_contain_text("version 1 again")
        expect(page.get_by_role("button", name="Roll back")).to_be_enabled()  # to v2 now
        expect(versions.get_by_role("button", name="Activate v2")).to_be_enabled()
        expect(versions.get_by_role("button", name="Activate v1")).to_have_count(0)  # v3's code
        expect(page.get_by_text("refreshed every 5 s")).to_be_visible()
        expect(page.locator("pre.fn-source")).to_contain_text('new Response("v1")')
        check_page(page, watch, "functions-rolled-back")

        # Deleted, asked first. (The page stops polling the function first; a poll already
        # on its way may still meet the deletion: a 404 then is no fault.)
        watch.expect(404, f"{FN}/{name}")
        page.get_by_role("button", name="Delete…").click()
        confirm = page.get_by_role("group", name=f"Delete function {name}")
        with page.expect_response(lambda r: r.request.method == "DELETE") as answer:
            confirm.get_by_role("button", name=f"Confirm: delete {name}").click()
        assert answer.value.status == 204
        page.get_by_text(f"Function {name} deleted").wait_for()
        page.get_by_text("No function yet").wait_for()
        assert s.api.get(f"{FN}/{name}").status_code == 404
        check_page(page, watch, "functions-deleted")


def test_a_viewer_sees_a_function_and_changes_nothing(
    browser: Any, dash: ControlPlane, admin_api: httpx.Client
) -> None:
    name = "seen"
    with site(dash, admin_api, "fn-ui-viewer") as s:
        r = s.api.put(f"{FN}/{name}", json={
            "code": code("seen"), "routes": [{"pattern": f"{s.domain}/seen"}],
            "env": {"MODE": "view"}, "secrets": {"API_KEY": "never-shown"},
        })  # fmt: skip
        assert r.status_code == 202, r.text
        r = admin_api.post(
            "/api/v1/tokens", json={"name": "fn-viewer", "roles": {s.project: "viewer"}}
        )
        assert r.status_code == 201, r.text
        token = r.json()
        try:
            with signed_in(browser, dash.url, token["token"]) as (page, watch):
                open_functions(page, dash, s.project, f"functions/{name}")
                page.get_by_role("heading", name=f"Function {name}").wait_for()
                current = page.get_by_role("region", name="Current version", exact=True)
                expect(current).to_contain_text("API_KEY (set)")
                expect(current).to_contain_text("MODE=view")
                assert "never-shown" not in page.content()
                expect(page.get_by_role("button", name="Delete…")).to_be_disabled()
                expect(page.get_by_role("button", name="Roll back")).to_be_disabled()
                expect(page.locator("pre.fn-source")).to_contain_text('new Response("seen")')
                expect(page.get_by_role("button", name="Edit and deploy…")).to_be_disabled()
                assert write_controls_enabled(page) == []
                check_page(page, watch, "functions-detail-viewer")
                open_functions(page, dash, s.project)
                page.get_by_role("link", name=name, exact=True).wait_for()
                expect(page.get_by_role("button", name="Deploy")).to_be_disabled()
                assert write_controls_enabled(page) == []
                check_page(page, watch, "functions-list-viewer")
        finally:
            assert admin_api.delete(f"/api/v1/tokens/{token['id']}").status_code == 200
