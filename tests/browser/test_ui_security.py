"""The Security page in a real browser, against the shared ``edgeplane up`` and its local edge
node (nginx with ModSecurity and the CRS), with a real origin:

- the WAF's false-positive workflow through the page: a request refused by the edge (403 with
  its request id) is found on the page by that id, its rule excluded on its path from the
  match's row (a bad path refused first, on its field), and the same request then passes
  through the edge;
- the WAF settings saved from the page, a bad threshold refused on its field;
- the under-attack switch turned on and off from the page (checked through the API, and the
  tightened limits shown);
- a domain scored with "Score now", its checks shown as the API has them; a compliance policy
  set on the page and its report shown (a bad value refused on its field);
- a viewer sees every card and can change nothing.

Each test works in a project of its own (``sec-ui-...``), so that the other modules' pages
neither see nor disturb its config, matches or scores."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
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

from edgeplane.node.nginx.local import find_waf_engine

CDN = "/api/v1/infrastructure/cdn"
WAF = f"{CDN}/waf"
SEC = "/api/v1/security"
WAF_PROJECT = "sec-ui-waf"
ATTACK = "/api/search?q=1%27%20or%20%271%27%3D%271"  # 1' or '1'='1: rule 942100
ELSEWHERE = ATTACK.replace("/api/search", "/api/users")
BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Firefox/125.0",
           "Accept": "text/html"}  # fmt: skip


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    with origin_set() as s:
        yield s.start("sec-origin")


@pytest.fixture(scope="module")
def waf_site(dash: ControlPlane, admin_api: httpx.Client, origin: Origin) -> Iterator[Site]:
    """A domain served by the edge from the origin, the WAF blocking (plain HTTP at the edge)."""
    if find_waf_engine() is None:
        pytest.skip("ModSecurity / CRS not installed")
    domain = f"{unique('sec-ui')}.localhost"
    with project_api(dash, admin_api, WAF_PROJECT) as client:
        r = client.post("/api/v1/infrastructure/domains", json={"domain": domain})
        assert r.status_code == 201, r.text
        body = {"origins": [{"url": origin.url}],
                "security": {"force_https": False, "waf": {"mode": "block"}}}  # fmt: skip
        r = client.post(CDN, json=body)
        assert r.status_code in (200, 201), r.text
        applied(admin_api, r.json()["cdn_deployment"]["revision"])
        yield Site(WAF_PROJECT, domain, client)


def open_security(page: Any, dash: ControlPlane, project: str) -> None:
    """The Security page in ``project``, chosen in the top bar."""
    open_page(page, dash.url, "security")
    page.get_by_label("Project", exact=True).select_option(project)
    page.get_by_text(f"compliance of project {project}").wait_for()
    page.get_by_role("heading", name="Web application firewall").wait_for()
    page.wait_for_load_state("networkidle")


def test_false_positive_found_by_request_id_and_excluded(
    admin_page: tuple[Any, Any], dash: ControlPlane, waf_site: Site
) -> None:
    page, watch = admin_page
    site = waf_site

    def refused() -> str | None:
        r = through_edge(dash, site.domain, ATTACK, BROWSER)
        return r.headers["x-request-id"] if r.status_code == 403 else None

    request_id = wait_for(refused, 30, "the attack refused by the edge")
    assert through_edge(dash, site.domain, "/products/1", BROWSER).status_code == 200

    open_security(page, dash, site.project)
    page.get_by_label("Request ID", exact=True).fill(request_id)
    page.get_by_role("button", name="Search", exact=True).click()
    matches = page.get_by_role("table", name=f"Matches of request {request_id}")
    row = matches.get_by_role("row").filter(has_text=request_id)
    # The node ships its matches every few seconds; the page polls every 5 s.
    expect(row).to_contain_text("942100", timeout=30_000)
    expect(row).to_contain_text("SQL Injection")
    expect(row).to_contain_text("blocked")
    expect(row).to_contain_text("/api/search")
    shown = site.api.get(f"{WAF}/matches", params={"request_id": request_id}).json()["items"]
    assert [m["request_id"] for m in shown] == [request_id]
    assert 942100 in {rule["rule"] for rule in shown[0]["rules"]}
    # The anomaly evaluation (949110) refuses because 942100 matched: it is not offered.
    assert row.get_by_role("button", name=re.compile("^Exclude rule 949110")).count() == 0
    check_page(page, watch, "security-waf-match")

    row.get_by_role("button", name="Exclude rule 942100 on this path (/api/search)").click()
    form = page.get_by_role("form", name="Exclude rule 942100")
    assert form.get_by_label("Rules to exclude", exact=True).input_value() == "942100"
    path = form.get_by_label("Path prefix", exact=True)
    expect(path).to_be_focused()
    assert path.input_value() == "/api/search"
    # A path the API refuses: its reason on the field, nothing stored.
    watch.expect(422, "/infrastructure/cdn/waf/exclusions")
    path.fill("/api/se arch")
    form.get_by_role("button", name="Create the exclusion").click()
    wait_for(lambda: field_error(form, "Path prefix"), 15, "the path field's error")
    assert "path prefix starting with /" in field_error(form, "Path prefix")
    assert site.api.get(f"{WAF}/exclusions").json() == []
    path.fill("/api/search")
    form.get_by_role("button", name="Create the exclusion").click()
    exclusions = page.get_by_role("table", name="Rules switched off for the project")
    listed = exclusions.get_by_role("row").filter(has_text="942100")
    expect(listed).to_contain_text("/api/search")
    stored = site.api.get(f"{WAF}/exclusions").json()
    assert [(x["rules"], x["path"]) for x in stored] == [(["942100"], "/api/search")]
    assert request_id in stored[0]["note"]
    made = page.get_by_role("status").filter(has_text=f"Exclusion {stored[0]['id']} created")
    expect(made).to_be_visible()

    # Through the edge: the same request passes once the node has the exclusion, and the rule
    # still refuses it on another path.
    wait_for(
        lambda: through_edge(dash, site.domain, ATTACK, BROWSER).status_code == 200,
        20,
        "the same request let through by the edge",
    )
    assert through_edge(dash, site.domain, ELSEWHERE, BROWSER).status_code == 403
    page.wait_for_load_state("networkidle")
    check_page(page, watch, "security-waf-excluded")

    # Removed from the page: the exclusion is gone from the API too.
    page.get_by_role("button", name=re.compile(f"^Remove exclusion {stored[0]['id']}")).click()
    expect(exclusions.get_by_role("row").filter(has_text="942100")).to_have_count(0)
    assert site.api.get(f"{WAF}/exclusions").json() == []


def test_waf_settings_saved_and_refused_on_their_fields(
    admin_page: tuple[Any, Any], dash: ControlPlane, admin_api: httpx.Client
) -> None:
    page, watch = admin_page
    project = unique("sec-ui-settings")
    with project_api(dash, admin_api, project) as client:
        open_security(page, dash, project)
        page.get_by_text("No match yet. The WAF is off").wait_for()
        page.get_by_label("Mode", exact=True).select_option("detect")
        page.get_by_label("Paranoia level", exact=True).select_option("2")
        page.get_by_label("Anomaly threshold", exact=True).fill("7")
        page.get_by_role("button", name="Save WAF settings").click()
        page.get_by_text("WAF settings saved (mode detect, paranoia 2, threshold 7)").wait_for()
        status = client.get(WAF).json()
        assert (status["mode"], status["paranoia_level"], status["anomaly_threshold"]) == (
            "detect", 2, 7,
        )  # fmt: skip

        watch.expect(422, "/infrastructure/cdn/waf")
        page.get_by_label("Anomaly threshold", exact=True).fill("0")
        page.get_by_role("button", name="Save WAF settings").click()
        wait_for(lambda: field_error(page, "Anomaly threshold"), 15, "the threshold's error")
        assert "greater than or equal to 1" in field_error(page, "Anomaly threshold")
        assert field_error(page, "Mode") == ""
        assert client.get(WAF).json()["anomaly_threshold"] == 7
        check_page(page, watch, "security-waf-settings-refused")


def test_under_attack_switched_on_and_off(
    admin_page: tuple[Any, Any], dash: ControlPlane, admin_api: httpx.Client
) -> None:
    page, watch = admin_page
    project = unique("sec-ui-attack")
    with project_api(dash, admin_api, project) as client:
        open_security(page, dash, project)
        card = page.locator("#sec-under-attack")
        state = card.get_by_test_id("under-attack-state")
        expect(state).to_contain_text("Not under attack")
        check_page(page, watch, "security-not-under-attack")

        card.get_by_role("button", name="Turn on under-attack mode…").click()
        confirm = card.get_by_role("group", name="Turn on under-attack mode")
        expect(confirm).to_contain_text("20 requests a second (bursts of 40)")
        expect(confirm).to_contain_text("5 seconds to send a request header")
        confirm.get_by_role("button", name="Turn on under-attack mode").click()
        expect(state).to_contain_text("Under attack, since", timeout=15_000)
        expect(state).to_contain_text("turned on by")
        doc = client.get(f"{CDN}/under-attack").json()
        assert doc["under_attack"] is True
        assert doc["limits"]["max_connections"] == 20 and doc["limits"]["header_timeout_s"] == 5
        assert doc["rate_limit"] == {"rate": 20, "burst": 40}
        limits = card.locator("dl")
        expect(limits).to_contain_text("16 KiB")
        expect(limits).to_contain_text("20/s, burst 40")
        check_page(page, watch, "security-under-attack")

        card.get_by_role("button", name="Turn off under-attack mode…").click()
        confirm = card.get_by_role("group", name="Turn off under-attack mode")
        confirm.get_by_role("button", name="Turn off under-attack mode").click()
        expect(state).to_contain_text("Not under attack since", timeout=15_000)
        expect(state).to_contain_text("turned off by")
        assert client.get(f"{CDN}/under-attack").json()["under_attack"] is False
        expect(card.locator("dl")).not_to_contain_text("16 KiB")
        check_page(page, watch, "security-under-attack-off")


SQLMAP = "sqlmap/1.7.2#stable (https://sqlmap.org)"


def counted(page: Any, klass: str, action: str) -> str:
    """The count the bots table shows for a class (its row's label) and an action (column)."""
    table = page.get_by_role("table", name=re.compile("^Bot requests by class and action"))
    headers = [h.strip() for h in table.locator("thead th").all_inner_texts()]
    row = table.get_by_role("row").filter(has_text=klass)
    return str(row.get_by_role("cell").nth(headers.index(action)).inner_text()).strip()


def test_bot_settings_saved_and_a_blocked_bot_counted(
    admin_page: tuple[Any, Any], dash: ControlPlane, admin_api: httpx.Client, origin: Origin
) -> None:
    page, watch = admin_page
    project = unique("sec-ui-bots")
    domain = f"{project}.localhost"
    with project_api(dash, admin_api, project) as client:
        r = client.post("/api/v1/infrastructure/domains", json={"domain": domain})
        assert r.status_code == 201, r.text
        body = {"origins": [{"url": origin.url}], "security": {"force_https": False}}
        assert client.post(CDN, json=body).status_code in (200, 201)
        open_security(page, dash, project)
        bots = page.locator("#sec-bots")
        bots.get_by_text("bot protection is off").wait_for()
        form = bots.get_by_role("form", name="Bot protection settings")
        form.get_by_label("Known-bad user agents and impostors", exact=True).select_option("block")
        form.get_by_label("Automated clients", exact=True).select_option("detect")
        form.get_by_role("button", name="Add a good bot").click()
        form.get_by_label("Good bot 1 name", exact=True).fill("google")
        form.get_by_label("Good bot 1 user agent", exact=True).fill("Googlebot")
        form.get_by_label("Good bot 1 addresses", exact=True).fill("66.249.64.0/19, nowhere")
        watch.expect(422, "/infrastructure/cdn/bots/settings")
        form.get_by_role("button", name="Save bot settings").click()
        wait_for(lambda: field_error(form, "Good bot 1 addresses"), 15, "the addresses' error")
        assert "'nowhere' is not an IP address" in field_error(form, "Good bot 1 addresses")
        assert client.get(f"{CDN}/bots/settings").json()["mode"] == "off"
        form.get_by_label("Good bot 1 addresses", exact=True).fill("66.249.64.0/19")
        form.get_by_role("button", name="Save bot settings").click()
        bots.get_by_text("Bot settings saved").wait_for()
        stored = client.get(f"{CDN}/bots/settings").json()
        assert (stored["mode"], stored["automated"]) == ("block", "detect")
        assert stored["good_bots"] == [
            {"name": "google", "user_agent": "Googlebot", "addresses": ["66.249.64.0/19"]}
        ]
        check_page(page, watch, "security-bots-saved")

        # A scanner through the edge: refused, and counted on the page (the node reports
        # every 10 s; the page polls every 5 s).
        def blocked() -> bool:
            r = httpx.get(
                f"http://127.0.0.1:{dash.http_port}/",
                headers={"Host": domain, "User-Agent": SQLMAP},
                timeout=10,
            )
            return r.status_code == 403

        wait_for(blocked, 20, "the scanner blocked by the edge")
        wait_for(lambda: counted(page, "Known bad", "Blocked") != "0", 40, "the block counted")
        summary = client.get(f"{CDN}/bots", params={"timeframe": "1h"}).json()
        got = {(c["bot_class"], c["action"]): c["requests"] for c in summary["counts"]}
        wait_for(
            lambda: counted(page, "Known bad", "Blocked") == str(got[("bad", "block")]),
            15,
            "the page's count as the API's",
        )
        check_page(page, watch, "security-bots-counted")


def test_score_now_and_the_compliance_report(
    admin_page: tuple[Any, Any], dash: ControlPlane, waf_site: Site
) -> None:
    page, watch = admin_page
    site = waf_site
    open_security(page, dash, site.project)
    scores = page.get_by_role("table", name="Security score per domain")
    row = scores.get_by_role("row").filter(has_text=site.domain)
    expect(row).to_be_visible()
    before = site.api.get(f"{SEC}/scores/{site.domain}")
    page.get_by_role("button", name=f"Score now: {site.domain}").click()
    checks = page.get_by_role("table", name="Every check, its points and what was seen")
    expect(checks).to_be_visible(timeout=30_000)
    doc = site.api.get(f"{SEC}/scores/{site.domain}").json()
    if before.status_code == 200:
        assert doc["evaluated_at"] > before.json()["evaluated_at"]
    shown = f"{doc['score']:.1f}".rstrip("0").rstrip(".")
    expect(row.get_by_role("cell").nth(1)).to_have_text(shown)
    expect(row).to_contain_text(doc["grade"])
    waf = checks.get_by_role("row").filter(has_text="Web application firewall")
    expect(waf).to_contain_text("pass")
    expect(waf).to_contain_text("mode: block")
    hsts = checks.get_by_role("row").filter(has_text="HTTP Strict Transport Security")
    expect(hsts).to_contain_text("fail")
    expect(hsts).to_contain_text("Send Strict-Transport-Security")
    expect(row.get_by_role("button", name=f"Hide checks of {site.domain}")).to_have_attribute(
        "aria-expanded", "true"
    )
    check_page(page, watch, "security-score")

    # The compliance policy set on the page; a bad value refused on its field first.
    compliance = page.locator("#sec-compliance")
    compliance.get_by_text("No compliance policy in this project").wait_for()
    policy = compliance.get_by_role("form", name="Compliance policy")
    policy.get_by_label(re.compile("^https_only:")).check()
    policy.get_by_label(re.compile("^waf_blocking:")).check()
    policy.get_by_label(re.compile("^min_score:")).check()
    policy.get_by_label("Least score (0-100)", exact=True).fill("500")
    watch.expect(422, "/api/v1/security/compliance")
    policy.get_by_role("button", name="Save the policy").click()
    wait_for(lambda: field_error(policy, "Least score (0-100)"), 15, "the score's error")
    assert "from 0 to 100" in field_error(policy, "Least score (0-100)")
    assert site.api.get(f"{SEC}/compliance").json()["requirements"] == []
    policy.get_by_label("Least score (0-100)", exact=True).fill("10")
    policy.get_by_role("button", name="Save the policy").click()
    compliance.get_by_text("Policy saved with 3 requirements").wait_for()
    stored = site.api.get(f"{SEC}/compliance").json()["requirements"]
    assert stored == [{"id": "https_only", "value": None}, {"id": "waf_blocking", "value": None},
                      {"id": "min_score", "value": 10}]  # fmt: skip
    report = site.api.get(f"{SEC}/compliance/report").json()
    mine = next(d for d in report["domains"] if d["domain"] == site.domain)
    status = {r["id"]: r["status"] for r in mine["requirements"]}
    assert status == {"https_only": "fail", "waf_blocking": "pass", "min_score": "pass"}, mine
    table = compliance.get_by_role("table", name=f"Requirements of {site.domain}")
    words = {"pass": "met", "fail": "not met"}
    for requirement, result in status.items():
        line = table.get_by_role("row").filter(has_text=requirement)
        expect(line.get_by_role("cell").nth(1)).to_have_text(words[result])
    expect(compliance).to_contain_text("not compliant")
    check_page(page, watch, "security-compliance")


def test_viewer_sees_everything_and_changes_nothing(
    browser: Any, dash: ControlPlane, admin_api: httpx.Client, waf_site: Site
) -> None:
    site = waf_site
    r = admin_api.post(
        "/api/v1/tokens", json={"name": unique("sec-viewer"), "roles": {site.project: "viewer"}}
    )
    assert r.status_code == 201, r.text
    with signed_in(browser, dash.url, r.json()["token"]) as (page, watch):
        open_security(page, dash, site.project)
        for card in ["Under attack", "Web application firewall", "Bots", "Security score",
                     "Compliance"]:  # fmt: skip
            expect(page.get_by_role("heading", name=card, exact=True)).to_be_visible()
        expect(page.get_by_role("button", name="Turn on under-attack mode…")).to_be_disabled()
        expect(page.get_by_label("Mode", exact=True)).to_be_disabled()
        expect(page.get_by_label("Anomaly threshold", exact=True)).to_be_disabled()
        expect(page.get_by_role("button", name="Save WAF settings")).to_be_disabled()
        expect(page.get_by_role("button", name=f"Score now: {site.domain}")).to_be_disabled()
        expect(page.get_by_role("button", name="Save bot settings")).to_be_disabled()
        expect(page.get_by_role("button", name="Save the policy")).to_be_disabled()
        # Reading is open to a viewer: the search by request id works.
        page.get_by_label("Request ID", exact=True).fill("0" * 32)
        page.get_by_role("button", name="Search", exact=True).click()
        page.get_by_text(f"No match for request {'0' * 32} yet").wait_for()
        assert write_controls_enabled(page) == []
        check_page(page, watch, "security-viewer")
