"""The domain list searched server-side (``q``: case-insensitive, Unicode or punycode, paged by
cursor) and a new name checked without adding it (``dry_run``: the normalised name, or the
refusal adding would give), as the dashboard's Domain Manager uses them."""

from __future__ import annotations

from typing import Any

from conftest import Api
from edgeplane.model.enums import Role

DOMAINS = "/api/v1/infrastructure/domains"


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def add(api: Api, *names: str, project: str | None = None) -> None:
    params = {"project": project} if project else None
    for name in names:
        body = {"domain": name, "auto_configure": False}
        ok(api.post(DOMAINS, json=body, params=params), 201)


def names(api: Api, **params: Any) -> tuple[list[str], str | None]:
    doc = ok(api.get(DOMAINS, params=params))
    return [d["domain"] for d in doc["domains"]], doc["next_cursor"]


def test_search_is_a_case_insensitive_substring_paged_by_cursor(api: Api) -> None:
    add(api, *(f"shop-{i}.example.com" for i in range(5)), "blog.example.com", "myshop.test")
    assert names(api, q="SHOP")[0] == [
        "myshop.test",
        *(f"shop-{i}.example.com" for i in range(5)),
    ]
    first, cursor = names(api, q="shop-", limit=2)
    assert first == ["shop-0.example.com", "shop-1.example.com"] and cursor == first[-1]
    second, cursor = names(api, q="shop-", limit=2, cursor=cursor)
    assert second == ["shop-2.example.com", "shop-3.example.com"]
    third, cursor = names(api, q="shop-", limit=2, cursor=cursor)
    assert third == ["shop-4.example.com"] and cursor is None
    # Whole names, a trailing dot, blank text (everything), and no match at all.
    assert names(api, q=" Blog.Example.com. ")[0] == ["blog.example.com"]
    assert len(names(api, q="  ")[0]) == 7
    assert names(api, q="nothing-like-it") == ([], None)


def test_search_text_is_not_a_pattern(api: Api) -> None:
    add(api, "a-b.example.com", "axb.example.com")
    assert names(api, q="%")[0] == []
    assert names(api, q="a_b")[0] == []
    assert names(api, q="a-b")[0] == ["a-b.example.com"]


def test_search_accepts_unicode_and_punycode(api: Api) -> None:
    add(api, "Bücher.example.org", "buecher.example.org", "münchen.test")
    bucher = "xn--bcher-kva.example.org"
    assert names(api, q="BÜCHER")[0] == [bucher]
    assert names(api, q="üch")[0] == [bucher]  # part of a U-label
    assert names(api, q="bücher.example")[0] == [bucher]
    assert names(api, q="xn--bcher")[0] == [bucher]
    assert names(api, q="ＭÜＮ")[0] == ["xn--mnchen-3ya.test"]  # full-width letters: UTS 46
    assert names(api, q="ü", limit=1) == ([bucher], bucher)
    assert names(api, q="ü", limit=1, cursor=bucher) == (["xn--mnchen-3ya.test"], None)
    assert names(api, q="cher")[0] == ["buecher.example.org", bucher]


def test_search_stays_in_the_project(api: Api) -> None:
    ok(api.post("/api/v1/projects", json={"id": "other", "name": "Other"}), 201)
    add(api, "shop.example.com")
    add(api, "shop.example.net", project="other")
    assert names(api, q="shop")[0] == ["shop.example.com"]
    assert names(api, q="shop", project="other")[0] == ["shop.example.net"]
    viewer = api.token(Role.VIEWER)
    r = api.get(DOMAINS, params={"q": "shop"}, token=viewer)
    assert [d["domain"] for d in ok(r)["domains"]] == ["shop.example.com"]


def test_dry_run_answers_the_stored_form_and_adds_nothing(api: Api) -> None:
    doc = ok(api.post(DOMAINS, params={"dry_run": "true"}, json={"domain": "Bücher.Example.ORG."}))
    assert doc == {
        "domain": "xn--bcher-kva.example.org",
        "display_name": "bücher.example.org",
        "apex": False,
        "verification_required": False,
    }
    doc = ok(api.post(DOMAINS, params={"dry_run": "true"}, json={"domain": "shop.co.uk"}))
    assert doc["apex"] is True and doc["verification_required"] is True
    assert names(api) == ([], None)
    audit = ok(api.get("/api/v1/audit"))
    assert not [e for e in audit["items"] if e["kind"] == "domain"]


def test_dry_run_gives_the_refusals_of_adding(api: Api) -> None:
    def refused(name: str, status: int) -> str:
        r = api.post(DOMAINS, params={"dry_run": "true"}, json={"domain": name})
        doc = ok(r, status)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert doc["field"] == "domain", doc
        reason: str = doc["errors"][0]["reason"] if "errors" in doc else doc["detail"]
        return reason

    assert "co.uk is a public suffix" in refused("co.uk", 422)
    assert "is a public suffix" in refused("github.io", 422)
    assert "not a valid domain name" in refused("a..b.example", 422)
    assert "two labels" in refused("localhost", 422)
    add(api, "shop.example.com")
    assert "already added to this project" in refused("SHOP.example.com", 409)
    ok(api.post("/api/v1/projects", json={"id": "other", "name": "Other"}), 201)
    add(api, "corp.example.net", project="other")
    assert "already added to another project" in refused("corp.example.net", 409)
    assert "overlaps 'corp.example.net'" in refused("www.corp.example.net", 409)
    # The same refusals as adding for real, which still works for a free name.
    r = api.post(DOMAINS, json={"domain": "co.uk"})
    assert ok(r, 422)["field"] == "domain"
    ok(api.post(DOMAINS, json={"domain": "new.example.com"}), 201)


def test_dry_run_needs_the_role_that_adds(api: Api) -> None:
    viewer = api.token(Role.VIEWER)
    r = api.post(DOMAINS, params={"dry_run": "true"}, json={"domain": "x.example"}, token=viewer)
    assert ok(r, 403)["type"].endswith("/forbidden")
    editor = api.token(Role.EDITOR)
    r = api.post(DOMAINS, params={"dry_run": "true"}, json={"domain": "x.example"}, token=editor)
    assert ok(r)["domain"] == "x.example"
