"""Access logs: lines reported through the edge protocol, read per domain with filters, kept
with retention (by age and by count per domain)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from conftest import Api, Cli
from edgeplane.model.enums import Role
from edgeplane.services import access_logs, log_retention
from edgeplane.services.jobs import control_plane_jobs
from edgeplane.services.log_retention import LogRetention
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL
from edgeplane.store.monitoring_tables import AccessLogRow
from edgeplane.store.tables import utcnow

EDGE = "/api/v1/edge"
INV = "/api/v1/infrastructure"


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if status != 204 else None


def edge_node(api: Api, name: str = "node-a") -> tuple[str, str]:
    """An edge token and a node registered with it: (token, node id)."""
    token = ok(api.post("/api/v1/tokens", json={"name": name, "scope": "edge"}), 201)["token"]
    body = {"name": name, "region": "eu-central", "http_port": 8080}
    node = ok(api.post(f"{EDGE}/nodes", token=token, json=body))
    return str(token), str(node["id"])


def entry(path: str = "/", *, domain: str = "shop.test", site: str = "default", **kw: Any) -> Any:
    at = kw.pop("at", utcnow())
    return {
        "site": site,
        "domain": domain,
        "at": at.isoformat(),
        "method": "GET",
        "path": path,
        "status": 200,
        "bytes_sent": 512,
        "cache": "MISS",
        "client": "10.1.2.3",
        "request_ms": 4.5,
        "upstream_ms": 3.0,
        "user_agent": "curl/8.0",
        **kw,
    }


def report(api: Api, token: str, node: str, lines: list[Any], dropped: int = 0) -> Any:
    body = {"lines": lines, "dropped": dropped}
    return api.post(f"{EDGE}/nodes/{node}/logs", token=token, json=body)


def logs(api: Api, domain: str = "shop.test", token: str | None = None, **params: Any) -> Any:
    return api.get(f"{INV}/domains/{domain}/logs", token=token, params=params)


def stored(api: Api) -> int:
    with api.db.read(LOCAL, "default") as tx:
        return int(tx.session.scalar(select(func.count()).select_from(AccessLogRow)) or 0)


@pytest.fixture
def shop(api: Api) -> tuple[str, str]:
    ok(api.post(f"{INV}/domains", json={"domain": "shop.test"}), 201)
    return edge_node(api)


def test_lines_are_read_newest_first_with_filters(api: Api, shop: tuple[str, str]) -> None:
    token, node = shop
    lines = [
        entry("/index.html", cache="HIT", client="192.168.1.7"),
        entry("/api/items?page=2", status=404, client="10.9.8.7"),
        entry("/api/orders", method="POST", status=502, cache=None, upstream_ms=None),
        entry("/static/app.css", status=304, cache="HIT", client="2001:db8::1"),
        entry("/api/items", status=503, user_agent=None),
    ]
    ok(report(api, token, node, lines, dropped=7), 204)
    doc = ok(logs(api))
    assert doc["domain"] == "shop.test"
    got = doc["lines"]
    assert [x["path"] for x in got] == [x["path"] for x in reversed(lines)]
    assert doc["next_after"] == got[0]["id"]
    first = got[-1]
    assert first["node"] == "node-a" and first["node_id"] == node
    assert {k: first[k] for k in ("method", "status", "bytes_sent", "cache", "client")} == {
        "method": "GET", "status": 200, "bytes_sent": 512, "cache": "HIT",
        "client": "192.168.1.7",
    }  # fmt: skip
    assert (first["request_ms"], first["upstream_ms"], first["user_agent"]) == (
        4.5,
        3.0,
        "curl/8.0",
    )

    def paths(**params: Any) -> list[str]:
        return [x["path"] for x in ok(logs(api, **params))["lines"]]

    assert paths(status="404") == ["/api/items?page=2"]
    assert paths(status="5xx") == ["/api/items", "/api/orders"]
    assert paths(status="3XX") == ["/static/app.css"]
    assert paths(path_prefix="/api/") == ["/api/items", "/api/orders", "/api/items?page=2"]
    assert paths(path_prefix="/api/items?") == ["/api/items?page=2"]
    assert paths(client="10.0.0.0/8") == ["/api/items", "/api/orders", "/api/items?page=2"]
    assert paths(client="192.168.1.7") == ["/index.html"]
    assert paths(client="2001:db8::/32") == ["/static/app.css"]
    assert paths(cache="hit") == ["/static/app.css", "/index.html"]
    assert paths(cache="HIT", status="2xx") == ["/index.html"]
    assert paths(limit=2) == ["/api/items", "/static/app.css"]
    assert paths(limit=1, client="10.0.0.0/8") == ["/api/items"]


def test_after_gives_what_came_since_oldest_first(api: Api, shop: tuple[str, str]) -> None:
    token, node = shop
    ok(report(api, token, node, [entry("/1"), entry("/2")]), 204)
    start = ok(logs(api, limit=1))
    assert [x["path"] for x in start["lines"]] == ["/2"]
    after = start["next_after"]
    assert ok(logs(api, after=after)) == {"domain": "shop.test", "lines": [], "next_after": after}
    ok(report(api, token, node, [entry("/3"), entry("/4", status=500), entry("/5")]), 204)
    doc = ok(logs(api, after=after))
    assert [x["path"] for x in doc["lines"]] == ["/3", "/4", "/5"]
    assert doc["next_after"] == doc["lines"][-1]["id"]
    # A page at the limit continues where it stopped.
    page = ok(logs(api, after=after, limit=2))
    assert [x["path"] for x in page["lines"]] == ["/3", "/4"]
    rest = ok(logs(api, after=page["next_after"]))
    assert [x["path"] for x in rest["lines"]] == ["/5"]
    # Filtered: the lines looked at are passed over all the same.
    doc = ok(logs(api, after=after, status="5xx"))
    assert [x["path"] for x in doc["lines"]] == ["/4"]
    assert doc["next_after"] == rest["lines"][-1]["id"]
    assert ok(logs(api, after=doc["next_after"], status="5xx"))["lines"] == []


def test_only_the_domains_project_viewers_read_them(api: Api, shop: tuple[str, str]) -> None:
    token, node = shop
    ok(api.post("/api/v1/projects", json={"id": "other"}), 201)
    ok(api.post(f"{INV}/domains", params={"project": "other"}, json={"domain": "blog.test"}), 201)
    lines = [entry("/shop"), entry("/blog", domain="blog.test", site="other")]
    ok(report(api, token, node, lines), 204)
    viewer = api.token(Role.VIEWER)
    assert [x["path"] for x in ok(logs(api, token=viewer))["lines"]] == ["/shop"]
    # blog.test is not a domain of the default project; its project's viewers read it.
    assert logs(api, "blog.test", token=viewer).status_code == 404
    r = api.get(f"{INV}/domains/blog.test/logs", token=viewer, params={"project": "other"})
    assert r.status_code == 403
    other = api.token(Role.VIEWER, "other")
    r = api.get(f"{INV}/domains/blog.test/logs", token=other, params={"project": "other"})
    assert [x["path"] for x in ok(r)["lines"]] == ["/blog"]
    assert logs(api, token=other).status_code == 403
    r = logs(api, token=token)
    assert r.status_code == 403 and "edge protocol only" in r.json()["detail"]
    # Only edge tokens report.
    assert report(api, api.admin_token, node, [entry()]).status_code == 403


def test_bad_filters_are_refused_naming_them(api: Api, shop: tuple[str, str]) -> None:
    for params, field in (
        ({"status": "600"}, "status"),
        ({"status": "5x"}, "status"),
        ({"client": "10.0.0.300"}, "client"),
        ({"client": "10.0.0.0/40"}, "client"),
        ({"path_prefix": "api/"}, "path_prefix"),
        ({"cache": "HIT!"}, "cache"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"after": -1}, "after"),
    ):
        r = logs(api, **params)
        assert r.status_code == 422 and r.json()["field"] == field, (params, r.text)
    r = logs(api, "nope.test")
    assert r.status_code == 404 and "nope.test" in r.json()["detail"]


def test_a_bad_report_is_refused_whole_naming_the_field(api: Api, shop: tuple[str, str]) -> None:
    token, node = shop
    for bad, field in (
        (entry(status=700), "lines.1.status"),
        (entry(status=99), "lines.1.status"),
        (entry(domain="a" * 254), "lines.1.domain"),
        (entry(site=""), "lines.1.site"),
        (entry(path="/" + "a" * 2000), "lines.1.path"),
        (entry(path="/a\x00b"), "lines.1.path"),
        (entry(bytes_sent=-1), "lines.1.bytes_sent"),
        (entry(request_ms=-0.5), "lines.1.request_ms"),
        (entry(user_agent="x" * 513), "lines.1.user_agent"),
    ):
        r = report(api, token, node, [entry("/good"), bad])
        assert r.status_code == 422 and r.json()["field"] == field, (field, r.text)
    r = report(api, token, node, [entry()], dropped=-1)
    assert r.status_code == 422 and r.json()["field"] == "dropped"
    r = report(api, token, node, [entry()] * 20_001)
    assert r.status_code == 422 and r.json()["field"] == "lines"
    assert report(api, token, "node-nope", [entry()]).status_code == 404
    assert stored(api) == 0
    ok(report(api, token, node, []), 204)  # an empty report (only a count dropped) is fine
    assert stored(api) == 0
    # A field this control plane does not know (a newer agent's) is ignored, not refused.
    ok(report(api, token, node, [{**entry("/newer"), "extra": 1}]), 204)
    assert stored(api) == 1


def _settings(api: Api, **kw: Any) -> Settings:
    return replace(Settings(home=Path(api.tmp) / "home", database_url=api.db.url), **kw)


def test_retention_deletes_by_age_and_caps_each_domain(api: Api, shop: tuple[str, str]) -> None:
    token, node = shop
    now = utcnow()
    old = [entry(f"/old{i}", at=now - timedelta(days=8)) for i in range(3)]
    ok(report(api, token, node, [*old, *(entry(f"/a{i}") for i in range(5))]), 204)
    retention = LogRetention(access_logs.LINES)
    settings = _settings(api, access_log_per_domain=3)
    assert retention(api.db, settings) == 3 + 2
    assert [x["path"] for x in ok(logs(api))["lines"]] == ["/a4", "/a3", "/a2"]
    assert retention(api.db, settings) == 0  # nothing new: no domain looked at
    # Only the domains that received lines since the last pass are capped.
    ok(api.post(f"{INV}/domains", json={"domain": "b.test"}), 201)
    ok(report(api, token, node, [entry(f"/b{i}", domain="b.test") for i in range(4)]), 204)
    assert retention(api.db, replace(settings, access_log_per_domain=2)) == 2
    assert len(ok(logs(api))["lines"]) == 3  # shop.test received nothing since
    assert [x["path"] for x in ok(logs(api, "b.test"))["lines"]] == ["/b3", "/b2"]
    # By age, every domain: 7 days by default.
    assert Settings().access_log_retention_s == 7 * 86400
    assert retention(api.db, replace(settings, access_log_retention_s=0)) == 5
    assert stored(api) == 0


def test_retention_deletes_in_batches(
    api: Api, shop: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token, node = shop
    monkeypatch.setattr(log_retention, "DELETE_BATCH", 4)
    past = utcnow() - timedelta(days=30)
    ok(report(api, token, node, [entry(f"/{i}", at=past) for i in range(10)]), 204)
    assert LogRetention(access_logs.LINES).expire(api.db, _settings(api)) == 10
    assert stored(api) == 0


def test_the_retention_job_and_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEPLANE_ACCESS_LOG_RETENTION", "3600")
    monkeypatch.setenv("EDGEPLANE_ACCESS_LOG_PER_DOMAIN", "500")
    settings = Settings.from_env()
    assert (settings.access_log_retention_s, settings.access_log_per_domain) == (3600.0, 500)
    assert Settings().access_log_per_domain == 10_000
    from threading import Event

    from edgeplane.store.db import Database

    jobs = control_plane_jobs(Database("sqlite://"), settings, Event())
    job = next(j for j in jobs if j.name == "access log retention")
    assert job.interval_s == access_logs.RETENTION_EVERY_S


def test_the_cli_and_the_sdk_read_them(api: Api, shop: tuple[str, str], cli: Cli) -> None:
    import asyncio

    from edgeplane import DomainService

    token, node = shop
    lines = [entry("/a", status=200), entry("/b", status=404, cache="BYPASS")]
    ok(report(api, token, node, lines), 204)
    table = cli.run("logs", "shop.test").stdout.splitlines()
    assert table[0].split() == [
        "TIME", "NODE", "STATUS", "METHOD", "PATH", "CACHE", "MS", "BYTES", "CLIENT",
    ]  # fmt: skip
    assert [row.split()[3] for row in table[1:]] == ["200", "404"]  # oldest first, as tail does
    assert table[2].split()[2:] == [
        "node-a",
        "404",
        "GET",
        "/b",
        "BYPASS",
        "4.5",
        "512",
        "10.1.2.3",
    ]
    doc = cli.json("logs", "shop.test", "--status", "4xx")
    assert [x["path"] for x in doc["lines"]] == ["/b"]
    assert "status: must be" in cli.fails("logs", "shop.test", "--status", "9xx", code=1)

    async def read() -> Any:
        service = DomainService()
        try:
            return await service.logs("shop.test", status="2xx")
        finally:
            await service.aclose()

    page = asyncio.run(read())
    assert [x.path for x in page.lines] == ["/a"] and page.lines[0].node == "node-a"
