"""The dashboard's operations pages in a real browser, against the shared ``edgeplane up``:
the overview, the inventory (each tab, a data center's capacity), alerts (rules, channels,
silences, budgets), the audit log and access (tokens, logins, projects).

- every page and tab opens clean for the admin (screenshot, axe, no failed request);
- a data center created through the inventory page, a bad one refused with the API's reasons
  on the fields it names (and nothing stored), then deleted through the page;
- a viewer token created through the access page (its secret shown once, and it works), then
  revoked; a login created there signs in on a fresh browser and is a viewer;
- a viewer visits every route of the dashboard with every write control disabled, and a forged
  write from its page, with or without the session's CSRF token, is refused (403);
- an alert rule created through the page, a bad threshold refused on its field; a rule that
  fires on a server of this module's is acknowledged through the page.

Everything this module creates is named ``ops-...``."""

from __future__ import annotations

import re
import secrets
from typing import Any

import httpx
from dashboard import ROOT, check_page, open_page, signed_in, wait_for, write_controls_enabled
from playwright.sync_api import expect
from processes import ControlPlane

INV = "/api/v1/infrastructure"
WEB = ROOT / "src" / "edgeplane" / "web"


def routes() -> list[tuple[str, str]]:
    """(key, module) of every route of routes.js."""
    text = (WEB / "js" / "routes.js").read_text()
    found = re.findall(r'key:\s*"([^"]*)"[^}]*module:\s*"([^"]+)"', text)
    assert found and ("", "overview") in found, text
    return found


def field_error(form: Any, label: str) -> str:
    """The error shown under the form's field labelled ``label`` (aria-describedby)."""
    control = form.get_by_label(label, exact=True)
    expect(control).to_have_attribute("aria-invalid", "true")
    described = control.get_attribute("aria-describedby")
    assert described, f"{label}: no error described"
    return str(form.locator(f'[id="{described}"]').inner_text())


def suffix() -> str:
    return secrets.token_hex(3)


# 1. Every page opens clean for the admin ---------------------------------------------------


def test_every_page_opens_clean_for_the_admin(
    admin_page: tuple[Any, Any], dash: ControlPlane, admin_api: httpx.Client
) -> None:
    page, watch = admin_page
    dc = f"ops-dc-{suffix()}"
    r = admin_api.post(
        f"{INV}/datacenters",
        json={"id": dc, "name": "Ops DC", "tier": 3, "location": "us-east",
              "capacity": {"cpu": 64, "memory": 256, "storage": 2000}},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    server = {"id": f"{dc}-s1", "name": "Ops server", "type": "edge", "data_center_id": dc,
              "capacity": {"cpu": 16, "memory": 64, "storage": 500}}  # fmt: skip
    assert admin_api.post(f"{INV}/servers", json=server).status_code == 201
    metrics = {"cpu_percent": 37, "memory_percent": 50, "storage_percent": 20,
               "requests_per_second": 12}  # fmt: skip
    r = admin_api.post(f"{INV}/servers/{dc}-s1/metrics", json=metrics)
    assert r.status_code == 200, r.text
    try:
        open_page(page, dash.url, "")
        # Live propagation: the shared edge node, with its applied revision.
        prop = page.locator("#ov-propagation")
        expect(prop.get_by_role("cell", name="local", exact=True)).to_be_visible()
        expect(page.locator("#ov-health")).to_contain_text("edge nodes live")
        expect(page.locator("#ov-costs")).to_contain_text("month to date")
        check_page(page, watch, "ops-overview")

        for tab, title in [("regions", "Regions"), ("datacenters", "Data centers"),
                           ("servers", "Servers"), ("services", "Services"),
                           ("dr", "DR configs")]:  # fmt: skip
            open_page(page, dash.url, f"inventory/{tab}")
            expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()
            expect(page.locator("tbody")).not_to_contain_text("Loading")
            check_page(page, watch, f"ops-inventory-{tab}")
        open_page(page, dash.url, "inventory/servers")
        row = page.get_by_role("row").filter(has_text=f"{dc}-s1")
        expect(row).to_contain_text("CPU 37 %")
        open_page(page, dash.url, "inventory/datacenters")
        page.get_by_role("link", name=f"Capacity of {dc}").click()
        capacity = page.locator("#inv-capacity")
        expect(capacity.get_by_role("row").filter(has_text="CPU cores")).to_contain_text("48")
        expect(capacity).to_contain_text(f"{dc}-s1")
        check_page(page, watch, "ops-inventory-capacity")

        for tab in ["alerts", "rules", "channels", "silences", "budgets"]:
            open_page(page, dash.url, f"alerts/{tab}")
            expect(page.get_by_role("tab", name=tab.capitalize())).to_have_attribute(
                "aria-selected", "true"
            )
            check_page(page, watch, f"ops-alerts-{tab}")

        open_page(page, dash.url, "audit")
        page.get_by_label("Object").fill(dc)
        page.get_by_role("button", name="Apply filters").click()
        events = page.locator("#audit-events")
        created = events.get_by_role("row").filter(has_text="data_center")
        expect(created).to_have_count(1)
        # The filter matches the server too ("<dc>-s1"): open the data center's own event.
        created.get_by_role("button", name=re.compile("Show the changes")).click()
        diff = page.locator("#audit-diff")
        expect(diff.get_by_role("row").filter(has_text="capacity.cpu")).to_contain_text("64")
        check_page(page, watch, "ops-audit")

        open_page(page, dash.url, "access")
        expect(page.locator("#access-you")).to_contain_text("admin")
        check_page(page, watch, "ops-access")
    finally:
        admin_api.delete(f"{INV}/servers/{dc}-s1")
        admin_api.delete(f"{INV}/datacenters/{dc}")


# 2. Inventory: create, refuse, delete ------------------------------------------------------


def test_data_center_created_refused_and_deleted(
    admin_page: tuple[Any, Any], dash: ControlPlane, admin_api: httpx.Client
) -> None:
    page, watch = admin_page
    dc = f"ops-dc-ui-{suffix()}"
    open_page(page, dash.url, "inventory/datacenters")
    page.get_by_role("button", name="New data center").click()
    form = page.get_by_role("form", name="New data center")
    form.get_by_label("ID", exact=True).fill(dc)
    form.get_by_label("Name", exact=True).fill("Ops UI DC")
    form.get_by_label("Location", exact=True).fill("nowhere")
    form.get_by_label("Tier", exact=True).select_option("2")
    form.get_by_label("CPU cores", exact=True).fill("-4")
    form.get_by_label("Memory (GB)", exact=True).fill("64")
    form.get_by_label("Storage (GB)", exact=True).fill("500")
    watch.expect(422, f"{INV}/datacenters")
    form.get_by_role("button", name="Create data center").click()
    assert "greater than or equal to 0" in field_error(form, "CPU cores")
    # Then the location (the API judges the shape of the body first).
    form.get_by_label("CPU cores", exact=True).fill("32")
    form.get_by_role("button", name="Create data center").click()
    assert "unknown region 'nowhere'" in field_error(form, "Location")
    expect(form.get_by_label("CPU cores", exact=True)).not_to_have_attribute("aria-invalid", "true")
    assert admin_api.get(f"{INV}/datacenters/{dc}").status_code == 404
    check_page(page, watch, "ops-inventory-dc-refused")

    form.get_by_label("Location", exact=True).fill("eu-west")
    form.get_by_role("button", name="Create data center").click()
    expect(page.get_by_role("status").filter(has_text=f"Created data center {dc}")).to_be_visible()
    row = page.get_by_role("row").filter(has_text=dc)
    expect(row).to_contain_text("eu-west")
    stored = admin_api.get(f"{INV}/datacenters/{dc}").json()
    assert (stored["location"], stored["tier"], stored["capacity"]["cpu"]) == ("eu-west", 2, 32)

    # Edit: the tier, sent as a merge patch.
    page.get_by_role("button", name=f"Edit data center {dc}").click()
    edit = page.get_by_role("form", name=f"Edit data center {dc}")
    edit.get_by_label("Tier", exact=True).select_option("4")
    edit.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text=f"Saved data center {dc}")).to_be_visible()
    assert admin_api.get(f"{INV}/datacenters/{dc}").json()["tier"] == 4
    check_page(page, watch, "ops-inventory-dc-created")

    page.get_by_role("button", name=f"Delete data center {dc}").click()
    page.get_by_role("button", name=f"Confirm: delete data center {dc}").click()
    expect(page.get_by_role("status").filter(has_text=f"Deleted data center {dc}")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text=dc)).to_have_count(0)
    assert admin_api.get(f"{INV}/datacenters/{dc}").status_code == 404
    check_page(page, watch, "ops-inventory-dc-deleted")


# 3. Access: a viewer token and a login -----------------------------------------------------


def test_token_and_login_created_through_the_page(
    admin_page: tuple[Any, Any], browser: Any, dash: ControlPlane, admin_api: httpx.Client
) -> None:
    page, watch = admin_page
    name = f"ops-token-{suffix()}"
    open_page(page, dash.url, "access")
    tokens = page.locator("#access-tokens")
    tokens.get_by_label("Token name").fill(name)
    tokens.get_by_label("Project 1", exact=True).select_option("default")
    tokens.get_by_label("Role in project 1", exact=True).select_option("viewer")
    tokens.get_by_role("button", name="Create token").click()
    secret = tokens.get_by_test_id("token-secret").inner_text().strip()
    assert secret.startswith("ep_")
    expect(tokens.get_by_role("button", name=re.compile("^Copy the token"))).to_be_visible()
    who = httpx.get(f"{dash.url}/api/v1/whoami", headers={"Authorization": f"Bearer {secret}"})
    assert who.status_code == 200 and who.json()["roles"] == {"default": "viewer"}, who.text
    check_page(page, watch, "ops-access-token-created")
    # Shown once: after "Done" (or a reload) the secret is nowhere on the page.
    tokens.get_by_role("button", name="Done").click()
    expect(page.get_by_text(secret)).to_have_count(0)
    token_id = next(t["id"] for t in admin_api.get("/api/v1/tokens").json() if t["name"] == name)
    page.get_by_role("button", name=f"Revoke token {name} ({token_id})").click()
    expect(tokens.get_by_role("row").filter(has_text=name)).to_contain_text("revoked")
    gone = httpx.get(f"{dash.url}/api/v1/whoami", headers={"Authorization": f"Bearer {secret}"})
    assert gone.status_code == 401

    login = f"ops-login-{suffix()}"
    password = secrets.token_urlsafe(12)
    logins = page.locator("#access-logins")
    logins.get_by_label("Login name").fill(login)
    logins.get_by_label("Password").fill("short")
    logins.get_by_label("Project 1", exact=True).select_option("default")
    logins.get_by_label("Role in project 1", exact=True).select_option("viewer")
    watch.expect(422, "/api/v1/logins")
    logins.get_by_role("button", name="Create login").click()
    assert "at least 10" in field_error(logins, "Password")
    assert login not in [x["name"] for x in admin_api.get("/api/v1/logins").json()]
    logins.get_by_label("Password").fill(password)
    logins.get_by_role("button", name="Create login").click()
    expect(logins.get_by_role("row").filter(has_text=login)).to_contain_text("viewer")
    check_page(page, watch, "ops-access-login-created")

    with signed_in(browser, dash.url, None) as (fresh, fresh_watch):
        fresh.goto(f"{dash.url}/")
        fresh.get_by_role("button", name="Login", exact=True).click()
        fresh.get_by_label("Login name").fill(login)
        fresh.get_by_label("Password").fill(password)
        fresh.get_by_role("button", name="Sign in").click()
        who_box = fresh.get_by_label("Signed in as")
        expect(who_box).to_contain_text(login)
        expect(who_box.locator(".badge")).to_have_text("viewer")
        open_page(fresh, dash.url, "access")
        expect(fresh.locator("#access-you")).to_contain_text(login)
        assert write_controls_enabled(fresh) == []
        check_page(fresh, fresh_watch, "ops-access-as-login")

    page.get_by_role("button", name=f"Delete login {login}").click()
    expect(logins.get_by_role("row").filter(has_text=login)).to_have_count(0)
    assert login not in [x["name"] for x in admin_api.get("/api/v1/logins").json()]


# 4. A viewer across the whole dashboard ----------------------------------------------------

MINE = {
    "": [""],
    "inventory": [
        f"inventory/{t}" for t in ("regions", "datacenters", "servers", "services", "dr")
    ],
    "alerts": [f"alerts/{t}" for t in ("alerts", "rules", "channels", "silences", "budgets")],
    "audit": ["audit"],
    "access": ["access"],
}


def test_viewer_can_change_nothing(
    viewer_page: tuple[Any, Any], dash: ControlPlane, admin_api: httpx.Client
) -> None:
    page, watch = viewer_page
    visited = []
    for key, module in routes():
        if not (WEB / "js" / "pages" / f"{module}.js").exists():
            continue  # a page still being written elsewhere
        for where in MINE.get(key, [key]):
            open_page(page, dash.url, where)
            assert write_controls_enabled(page) == [], where
            if key in MINE:
                check_page(page, watch, f"ops-viewer-{where.replace('/', '-') or 'overview'}")
            else:  # another's page: judged here only on its writes and its requests
                assert watch.failed == [] and watch.left == [], where
                watch.clear()
            visited.append(where)
    assert {"", "inventory/regions", "alerts/rules", "audit", "access"} <= set(visited)

    # An edit form opened by a viewer is read only, its Save included.
    open_page(page, dash.url, "inventory/regions")
    page.get_by_role("button", name="Edit region us-east").click()
    expect(page.get_by_role("form", name="Edit region us-east")).to_be_visible()
    assert write_controls_enabled(page) == []
    expect(page.get_by_role("button", name="Save")).to_be_disabled()
    expect(page.get_by_role("button", name="New region")).to_be_disabled()

    # Forged writes from the viewer's own page: with the session's CSRF token (the role
    # refuses it) and without (the missing token refuses it).
    domain = f"ops-forged-{suffix()}.localhost"
    watch.expect(403, f"{INV}/domains")
    got = page.evaluate(
        """async (domain) => {
            const session = await (await fetch('/api/v1/session')).json();
            const post = (headers) => fetch('/api/v1/infrastructure/domains', {
                method: 'POST', credentials: 'same-origin',
                headers: {'Content-Type': 'application/json', ...headers},
                body: JSON.stringify({domain}),
            }).then(async (r) => [r.status, (await r.json()).detail]);
            return {
                csrf: !!session.csrf_token,
                withToken: await post({'X-CSRF-Token': session.csrf_token}),
                without: await post({}),
            };
        }""",
        domain,
    )
    assert got["csrf"]
    assert got["withToken"][0] == 403, got
    assert "role" in got["withToken"][1], got
    assert got["without"][0] == 403, got
    assert "X-CSRF-Token" in got["without"][1], got
    assert admin_api.get(f"{INV}/domains/{domain}").status_code == 404
    watch.assert_clean()


# 5. Alerts: a rule through the page, and an alert acknowledged -----------------------------


def test_alert_rule_created_and_alert_acknowledged(
    admin_page: tuple[Any, Any], dash: ControlPlane, admin_api: httpx.Client
) -> None:
    page, watch = admin_page
    tag = suffix()
    rule, server = f"ops-rule-{tag}", f"ops-hot-{tag}"
    body = {"id": server, "name": "Ops hot server", "type": "edge", "location": "us-east",
            "capacity": {"cpu": 4, "memory": 8, "storage": 50}}  # fmt: skip
    assert admin_api.post(f"{INV}/servers", json=body).status_code == 201
    try:
        open_page(page, dash.url, "alerts/rules")
        page.get_by_role("button", name="New rule").click()
        form = page.get_by_role("form", name="New rule")
        form.get_by_label("ID", exact=True).fill(rule)
        form.get_by_label("Name", exact=True).fill(f"Ops server hot {tag}")
        form.get_by_label("Series", exact=True).select_option("cpu_percent")
        form.get_by_label("Comparison", exact=True).select_option(">")
        form.get_by_label("Threshold", exact=True).fill("eighty")
        form.get_by_label("Window (seconds)", exact=True).fill("60")
        form.get_by_label("Selector (JSON)", exact=True).fill(f'{{"server": "{server}"}}')
        watch.expect(422, "/api/v1/alerts/rules")
        form.get_by_role("button", name="Create rule").click()
        assert "must be a number" in field_error(form, "Threshold")
        assert admin_api.get(f"/api/v1/alerts/rules/{rule}").status_code == 404
        form.get_by_label("Threshold", exact=True).fill("80")
        form.get_by_role("button", name="Create rule").click()
        row = page.get_by_role("row").filter(has_text=rule)
        expect(row).to_contain_text("cpu_percent > 80")
        expect(row).to_contain_text(f"server={server}")
        stored = admin_api.get(f"/api/v1/alerts/rules/{rule}").json()
        assert (stored["threshold"], stored["selector"], stored["window_s"]) == (
            80, {"server": server}, 60)  # fmt: skip
        check_page(page, watch, "ops-alerts-rule-created")

        # Disable and enable it again through the page.
        page.get_by_role("button", name=f"Disable rule {rule}").click()
        expect(row).to_contain_text("disabled")
        assert admin_api.get(f"/api/v1/alerts/rules/{rule}").json()["enabled"] is False
        page.get_by_role("button", name=f"Enable rule {rule}").click()
        expect(row.get_by_role("button", name=f"Disable rule {rule}")).to_be_visible()

        # The server runs hot: the rule fires (the engine runs every few seconds).
        hot = {"cpu_percent": 97, "memory_percent": 40, "storage_percent": 10}
        assert admin_api.post(f"{INV}/servers/{server}/metrics", json=hot).status_code == 200

        def firing() -> list[dict[str, Any]]:
            got = admin_api.get("/api/v1/alerts", params={"rule": rule, "state": "firing"})
            return list(got.json())

        alert = wait_for(firing, 60, "the rule to fire")[0]
        open_page(page, dash.url, "alerts")
        alert_row = page.get_by_role("row").filter(has_text=f"Ops server hot {tag}")
        expect(alert_row).to_contain_text("firing", timeout=20_000)
        alert_row.get_by_role("button", name=re.compile("^Acknowledge")).click()
        expect(alert_row).to_contain_text("acknowledged by")
        acked = admin_api.get(f"/api/v1/alerts/{alert['id']}").json()
        assert acked["acknowledged_at"] and acked["acknowledged_by"]
        check_page(page, watch, "ops-alerts-acknowledged")

        # The overview lists it among the firing alerts.
        open_page(page, dash.url, "")
        expect(page.locator("#ov-alerts")).to_contain_text(f"Ops server hot {tag}")
        check_page(page, watch, "ops-overview-firing")
    finally:
        admin_api.delete(f"/api/v1/alerts/rules/{rule}")
        admin_api.delete(f"{INV}/servers/{server}")
