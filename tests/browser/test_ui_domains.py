"""The Domain Manager in a real browser: a domain added through the UI with the API's validation
shown as you type (public suffix, clash, punycode) and seen verified; the DNS records table
editor (an A record added, edited and deleted; a CNAME at the apex refused on its row, nothing
stored); DNSSEC with its DS record, the lock refusing deletion; the list searched and paged by
the API over 240 domains; a viewer sees it all with every write control disabled."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from dashboard import check_page, open_page, write_controls_enabled
from playwright.sync_api import expect

INV = "/api/v1/infrastructure"
DOMAINS = f"{INV}/domains"
WAIT_MS = 30_000
# Domains of the search test (in a project of its own): 80 match "beta", four pages of 25.
COUNT = 240


@pytest.fixture(autouse=True)
def patient_expect() -> Iterator[None]:
    """The machine is shared with other tests: give each expectation of the module 15 s (the
    pages' own default) rather than 5, and put the previous default back."""
    before = expect._timeout
    expect.set_options(timeout=15_000)
    try:
        yield
    finally:
        expect.set_options(timeout=before)


def ensure_domain(api: httpx.Client, name: str, project: str | None = None) -> dict[str, Any]:
    params = {"project": project} if project else None
    r = api.post(DOMAINS, json={"domain": name}, params=params)
    assert r.status_code in (201, 409), r.text
    got = api.get(f"{DOMAINS}/{name}", params=params)
    got.raise_for_status()
    return dict(got.json())


def dry_run_refusal(api: httpx.Client, name: str, status: int) -> str:
    r = api.post(DOMAINS, params={"dry_run": "true"}, json={"domain": name})
    assert r.status_code == status, r.text
    doc = r.json()
    assert doc["field"] == "domain", doc
    return str(doc["errors"][0]["reason"] if "errors" in doc else doc["detail"])


def user_records(api: httpx.Client, name: str) -> list[tuple[str, str, int, list[str]]]:
    r = api.get(f"{DOMAINS}/{name}/records")
    r.raise_for_status()
    return sorted(
        (x["name"], x["type"], x["ttl"], x["values"])
        for x in r.json()["records"]
        if not x["managed"]
    )


def test_add_a_domain_with_validation_as_you_type(
    admin_page: Any, dash: Any, admin_api: httpx.Client
) -> None:
    page, watch = admin_page
    ensure_domain(admin_api, "dm-clash.localhost")
    watch.expect(422, "dry_run=true")
    watch.expect(409, "dry_run=true")
    open_page(page, dash.url, "domains")
    check_page(page, watch, "domains-list")
    name = page.get_by_label("Domain name")
    field = page.locator(".field", has=name)

    # A bare public suffix: the API's own reason, on the field.
    name.fill("co.uk")
    reason = dry_run_refusal(admin_api, "co.uk", 422)
    assert "public suffix" in reason
    expect(field.locator(".field-error")).to_have_text(reason)
    expect(name).to_have_attribute("aria-invalid", "true")
    check_page(page, watch, "domains-add-public-suffix")

    # A clash with a domain the project has already.
    name.fill("DM-Clash.localhost")
    reason = dry_run_refusal(admin_api, "dm-clash.localhost", 409)
    expect(field.locator(".field-error")).to_have_text(reason)
    assert "already added" in reason

    # A Unicode name: its punycode form is shown before anything is created.
    name.fill("dm-bücher.localhost")
    expect(field.locator(".hint")).to_contain_text("Stored as xn--dm-bcher-")
    expect(field.locator(".field-error")).to_have_count(0)
    assert admin_api.get(f"{DOMAINS}", params={"q": "bücher"}).json()["domains"] == []

    # A free name, added with one click: the domain's page, verified (a .localhost name).
    name.fill("dm-shop.localhost")
    expect(field.locator(".hint")).to_contain_text("dm-shop.localhost is free")
    page.get_by_role("button", name="Add domain").click()
    page.wait_for_url(re.compile(r"#/domains/dm-shop\.localhost$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("dm-shop.localhost")
    badge = page.locator("#verification .badge").first
    expect(badge).to_have_text("verified", timeout=WAIT_MS)
    expect(page.locator("#status")).to_contain_text("active · internal")
    page.wait_for_load_state("networkidle")
    check_page(page, watch, "domains-detail")
    doc = admin_api.get(f"{DOMAINS}/dm-shop.localhost").json()
    assert doc["status"] == "active" and doc["certificate"]["status"] == "active"

    # Listed, with its status.
    page.get_by_role("link", name="All domains").click()
    page.get_by_label("Search domains").fill("dm-shop")
    row = page.locator(
        "#domain-list tbody tr", has=page.get_by_role("link", name="dm-shop.localhost")
    )
    expect(row).to_have_count(1)
    expect(row).to_contain_text("verified")
    expect(page.locator("#domain-list tbody tr")).to_have_count(1)
    check_page(page, watch, "domains-list-search-one")


def test_dns_records_table_editor(admin_page: Any, dash: Any, admin_api: httpx.Client) -> None:
    page, watch = admin_page
    name = "dm-records.localhost"
    ensure_domain(admin_api, name)
    open_page(page, dash.url, f"domains/{name}")
    records = page.locator("#records")
    before = user_records(admin_api, name)

    # Add an A record through the table editor.
    records.get_by_role("button", name="Add record").click()
    page.get_by_label("Name of new record").fill("api")
    page.get_by_label("Type of new record").select_option("A")
    page.get_by_label("TTL of new record").fill("120")
    page.get_by_label("Values of new record").fill("192.0.2.10")
    records.get_by_role("button", name="Save").click()
    row = records.locator('tr[data-key="api A"]')
    expect(row.locator("textarea")).to_have_count(0)
    expect(row).to_contain_text("192.0.2.10")
    assert ("api", "A", 120, ["192.0.2.10"]) in user_records(admin_api, name)
    check_page(page, watch, "domains-records-added")

    # Edit it: a second value.
    row.get_by_role("button", name="Edit A api").click()
    page.get_by_label("Values of record A api").fill("192.0.2.10\n192.0.2.11")
    records.get_by_role("button", name="Save").click()
    expect(row.locator("textarea")).to_have_count(0)
    expect(row).to_contain_text("192.0.2.11")
    assert ("api", "A", 120, ["192.0.2.10", "192.0.2.11"]) in user_records(admin_api, name)
    stored = user_records(admin_api, name)

    # A CNAME at the apex: the API's reason on that row's type, and nothing stored.
    watch.expect(422, "/records")
    records.get_by_role("button", name="Add record").click()
    page.get_by_label("Name of new record").fill("@")
    page.get_by_label("Type of new record").select_option("CNAME")
    page.get_by_label("Values of new record").fill("target.example.com")
    records.get_by_role("button", name="Save").click()
    bad = records.locator("tr.editing.invalid")
    expect(bad).to_have_count(1)
    type_cell = bad.locator("td", has=page.get_by_label("Type of new record"))
    type_error = type_cell.locator(".field-error")
    expect(type_error).to_contain_text("a CNAME is not allowed at the zone apex")
    expect(page.get_by_label("Type of new record")).to_have_attribute("aria-invalid", "true")
    assert user_records(admin_api, name) == stored
    check_page(page, watch, "domains-records-cname-apex")
    records.get_by_role("button", name="Cancel").click()
    expect(records.locator("tr.editing")).to_have_count(0)

    # Delete the A record.
    row.get_by_role("button", name="Delete A api").click()
    expect(row).to_have_count(0)
    assert user_records(admin_api, name) == before


def test_dnssec_lock_and_delete(admin_page: Any, dash: Any, admin_api: httpx.Client) -> None:
    page, watch = admin_page
    name = "dm-secure.localhost"
    ensure_domain(admin_api, name)
    open_page(page, dash.url, f"domains/{name}")

    page.get_by_label("DNSSEC: sign the zone").check()
    ds_text = page.locator("#protection .dm-copy-text")
    expect(ds_text.first).to_contain_text(f"{name}. IN DS ")
    ds = admin_api.get(f"{DOMAINS}/{name}/status").json()["dnssec"]["ds"]
    assert ds and admin_api.get(f"{DOMAINS}/{name}").json()["dnssec"] is True
    expect(ds_text).to_have_text([f"{name}. IN DS {d}" for d in ds])
    expect(
        page.get_by_role("button", name=re.compile("^Copy ds record", re.IGNORECASE))
    ).to_have_count(len(ds))

    page.get_by_label("Locked: refuse deletion").check()
    expect(page.get_by_label("Locked: refuse deletion")).to_be_checked()
    deadline = time.monotonic() + 10
    while not admin_api.get(f"{DOMAINS}/{name}").json()["locked"]:
        assert time.monotonic() < deadline, "the lock was not stored"
        time.sleep(0.2)
    check_page(page, watch, "domains-dnssec-locked")

    # Deleting a locked domain: the API's refusal, shown; the domain stays.
    watch.expect(409, f"/domains/{name}")
    page.get_by_role("button", name="Delete domain").click()
    page.get_by_role("button", name="Yes, delete").click()
    refusal = page.locator("#delete .error-box")
    expect(refusal).to_contain_text(f"domain '{name}' is locked; unlock it first")
    assert admin_api.get(f"{DOMAINS}/{name}").status_code == 200
    check_page(page, watch, "domains-delete-refused")

    # Unlocked, it goes.
    page.get_by_label("Locked: refuse deletion").uncheck()
    expect(page.get_by_label("Locked: refuse deletion")).not_to_be_checked()
    page.get_by_role("button", name="Delete domain").click()
    page.get_by_role("button", name="Yes, delete").click()
    page.wait_for_url(re.compile(r"#/domains$"))
    assert admin_api.get(f"{DOMAINS}/{name}").status_code == 404


def test_search_and_pages(admin_page: Any, dash: Any, admin_api: httpx.Client) -> None:
    page, watch = admin_page
    project = "dm-search"
    r = admin_api.post("/api/v1/projects", json={"id": project, "name": "Domain search"})
    assert r.status_code in (201, 409), r.text
    words = ("alpha", "beta", "gamma")
    names = [f"dm-{words[i % 3]}-{i:03d}.localhost" for i in range(COUNT)]

    def add(name: str) -> None:
        body = {"domain": name, "auto_configure": False}
        got = admin_api.post(DOMAINS, json=body, params={"project": project})
        assert got.status_code in (201, 409), got.text

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(add, names))

    open_page(page, dash.url, "domains")
    page.get_by_label("Project").select_option(project)
    rows = page.locator("#domain-list tbody tr")
    links = page.locator("#domain-list tbody tr td:first-child a")
    expect(rows).to_have_count(25)
    expect(links.first).to_have_text(sorted(names)[0])

    # A search, typed: the API's matches, 25 a page, in name order.
    beta = sorted(n for n in names if "-beta-" in n)
    assert len(beta) == COUNT // 3
    page.get_by_label("Search domains").press_sequentially("BETA", delay=30)
    expect(links).to_have_text(beta[:25])
    expect(page.locator("#domain-list caption")).to_have_text("Domains containing “BETA”, page 1")
    check_page(page, watch, "domains-search-page-1")
    nxt = page.get_by_role("button", name="Next page")
    prev = page.get_by_role("button", name="Previous page")
    expect(prev).to_be_disabled()
    for n in range(1, 4):
        nxt.click()
        expect(links).to_have_text(beta[25 * n : 25 * (n + 1)])
    expect(page.locator("#domain-list caption")).to_contain_text("page 4")
    expect(links).to_have_count(5)
    expect(nxt).to_be_disabled()
    prev.click()
    expect(links).to_have_text(beta[50:75])
    check_page(page, watch, "domains-search-page-3")

    # A narrower search starts again at page 1; no match says so.
    search = page.get_by_label("Search domains")
    search.fill("gamma-10")
    expect(links).to_have_text(sorted(n for n in names if "gamma-10" in n))
    expect(page.locator("#domain-list caption")).to_contain_text("page 1")
    search.fill("no-such-domain")
    expect(rows).to_have_text(["No domain contains “no-such-domain”."])
    check_page(page, watch, "domains-search-none")


def test_viewer_sees_everything_and_changes_nothing(
    viewer_page: Any, dash: Any, admin_api: httpx.Client
) -> None:
    page, watch = viewer_page
    name = "dm-view.localhost"
    ensure_domain(admin_api, name)
    r = admin_api.patch(
        f"{DOMAINS}/{name}/records",
        json={"set": [{"name": "mail", "type": "A", "values": ["192.0.2.25"]}]},
    )
    r.raise_for_status()
    admin_api.patch(f"{DOMAINS}/{name}", json={"dnssec": True}).raise_for_status()

    open_page(page, dash.url, "domains")
    page.get_by_label("Search domains").fill("dm-view")
    expect(page.get_by_role("link", name=name)).to_be_visible()
    expect(page.get_by_label("Domain name")).to_be_disabled()
    assert write_controls_enabled(page) == []
    check_page(page, watch, "domains-viewer-list")

    page.get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    expect(page.locator('#records tr[data-key="mail A"]')).to_contain_text("192.0.2.25")
    expect(page.locator("#protection .dm-copy-text").first).to_contain_text(f"{name}. IN DS ")
    expect(page.locator("#verification .badge").first).to_have_text("verified")
    expect(page.get_by_role("button", name="Check now")).to_be_disabled()
    expect(page.get_by_role("button", name="Add record")).to_be_disabled()
    page.wait_for_load_state("networkidle")
    assert write_controls_enabled(page) == []
    check_page(page, watch, "domains-viewer-detail")
