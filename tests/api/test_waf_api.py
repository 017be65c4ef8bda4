"""The WAF's control-plane side: settings and exclusions in the CDN config (validated, a
revision each, in the edge snapshot), matches reported by edge nodes (stored, filtered, paged,
kept with retention), the SDK and the CLI over the same API."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from conftest import Api, Cli
from edgeplane.model.cdn import EdgeSecurity
from edgeplane.protocol.config import WafExclusionSpec, WafSpec
from edgeplane.sdk.waf_service import WafService
from edgeplane.services import retention
from edgeplane.settings import Settings
from edgeplane.snapshot.waf import waf_spec
from edgeplane.store.actor import LOCAL
from edgeplane.store.tables import utcnow
from edgeplane.store.waf_tables import WafMatchRow

EDGE = "/api/v1/edge"
WAF = "/api/v1/infrastructure/cdn/waf"


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if status != 204 else None


def edge_node(api: Api) -> tuple[str, str]:
    token = ok(api.post("/api/v1/tokens", json={"name": "n", "scope": "edge"}), 201)["token"]
    body = {"name": "node-a", "region": "eu-central", "http_port": 8080}
    return str(token), str(ok(api.post(f"{EDGE}/nodes", token=token, json=body))["id"])


def match(request_id: str, *rules: int, action: str = "blocked", **kw: Any) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "site": "default",
        "domain": "shop.test",
        "at": kw.pop("at", utcnow()).isoformat(),
        "method": "GET",
        "uri": "/api/search?q=1'or'1'='1",
        "client": "10.1.2.3",
        "rules": [{"rule": r, "message": f"rule {r}", "data": "x" * 10} for r in rules],
        "anomaly_score": 5,
        "action": action,
        "status": 403 if action == "blocked" else 200,
        **kw,
    }


def site_waf(api: Api) -> WafSpec | None:
    """What the edge snapshot holds for the project's sites."""
    security = ok(api.get("/api/v1/infrastructure/cdn"))["security"]
    return waf_spec(EdgeSecurity.model_validate(security).waf)


def test_settings_and_exclusions_change_the_snapshot_and_refuse_bad_input(api: Api) -> None:
    assert ok(api.get(WAF))["mode"] == "off"  # a project without a CDN config
    before = ok(api.get("/api/v1/infrastructure/cdn/state"))
    assert before["configured"] is False
    settings = ok(api.patch(WAF, json={"mode": "block", "paranoia_level": 2}))
    assert (settings["mode"], settings["paranoia_level"], settings["anomaly_threshold"]) == (
        "block",
        2,
        5,
    )
    first = ok(api.get(WAF))["revision"]
    assert first is not None
    added = ok(
        api.post(
            f"{WAF}/exclusions",
            json={"rules": ["942100", "942100", "941000-941999"], "path": "/api/search"},
        ),
        201,
    )
    assert added["rules"] == ["942100", "941000-941999"] and added["id"].startswith("wafx")
    assert ok(api.get(WAF))["revision"] > first
    assert site_waf(api) == WafSpec(
        mode="block",
        paranoia_level=2,
        exclusions=(WafExclusionSpec(rules=("942100", "941000-941999"), path="/api/search"),),
    )
    # bad input: 422 naming the field, nothing stored
    for body, field in (
        ({"rules": []}, "rules"),
        ({"rules": ["94x"]}, "rules.0"),
        ({"rules": ["942199-942100"]}, "rules.0"),
        ({"rules": ["99999999"]}, "rules.0"),  # a typo: no rule of the CRS
        ({"rules": ["942100", "1000-2000"]}, "rules.1"),
        ({"rules": ["942100"], "path": "api"}, "path"),
        ({"rules": ["942100"], "path": "/a b"}, "path"),
        ({"rules": ["942100"], "path": "/a'b"}, "path"),
        ({"rules": ["942100"], "extra": 1}, "extra"),
        ({"id": added["id"], "rules": ["942100"]}, "id"),
    ):
        problem = api.post(f"{WAF}/exclusions", json=body)
        assert problem.status_code == 422, (body, problem.text)
        assert field in problem.text, (field, problem.text)
    for body in ({"mode": "on"}, {"paranoia_level": 5}, {"anomaly_threshold": 0}):
        assert api.patch(WAF, json=body).status_code == 422
    assert [e["id"] for e in ok(api.get(f"{WAF}/exclusions"))] == [added["id"]]
    assert api.delete(f"{WAF}/exclusions/nope").status_code == 404
    ok(api.delete(f"{WAF}/exclusions/{added['id']}"), 204)
    assert ok(api.get(f"{WAF}/exclusions")) == []
    ok(api.patch(WAF, json={"mode": "off"}))
    assert site_waf(api) is None
    # the CDN config carries it as its security.waf
    cdn = ok(api.get("/api/v1/infrastructure/cdn"))
    assert cdn["security"]["waf"]["paranoia_level"] == 2


def test_matches_are_stored_filtered_paged_and_expire(api: Api) -> None:
    token, node = edge_node(api)
    old = utcnow() - timedelta(days=40)
    body = {
        "matches": [
            match("r-old", 942100, at=old),
            match("r1", 942100, 949110),
            match("r2", 941100, 949110, domain="www.shop.test"),
            match("r3", 920350, action="detected"),
        ],
        "dropped": 2,
    }
    ok(api.post(f"{EDGE}/nodes/{node}/waf", token=token, json=body), 204)
    page = ok(api.get(f"{WAF}/matches"))
    assert [m["request_id"] for m in page["items"]] == ["r3", "r2", "r1", "r-old"]
    one = ok(api.get(f"{WAF}/matches", params={"request_id": "r1"}))["items"]
    assert [r["rule"] for r in one[0]["rules"]] == [942100, 949110]
    assert one[0]["action"] == "blocked" and one[0]["node"] == node
    by_rule = ok(api.get(f"{WAF}/matches", params={"rule": 942100}))["items"]
    assert {m["request_id"] for m in by_rule} == {"r1", "r-old"}
    assert ok(api.get(f"{WAF}/matches", params={"rule": 94210}))["items"] == []
    by_host = ok(api.get(f"{WAF}/matches", params={"host": "WWW.shop.test"}))["items"]
    assert [m["request_id"] for m in by_host] == ["r2"]
    since = (utcnow() - timedelta(days=1)).isoformat()
    assert len(ok(api.get(f"{WAF}/matches", params={"since": since}))["items"]) == 3
    first = ok(api.get(f"{WAF}/matches", params={"limit": 2}))
    assert len(first["items"]) == 2 and first["next_before"] is not None
    rest = ok(api.get(f"{WAF}/matches", params={"limit": 2, "before": first["next_before"]}))
    assert [m["request_id"] for m in rest["items"]] == ["r1", "r-old"]
    assert rest["next_before"] is None
    status = ok(api.get(WAF))
    assert (status["matches_24h"], status["blocked_24h"]) == (3, 2)
    assert status["top_rules_24h"]["949110"] == 2
    # another project sees none; a bad report is refused whole
    assert api.get(f"{WAF}/matches", params={"limit": 0}).status_code == 422
    bad = {"matches": [match("r9", 1), {**match("r10", 1), "action": "maybe"}]}
    assert api.post(f"{EDGE}/nodes/{node}/waf", token=token, json=bad).status_code == 422
    assert api.post(f"{EDGE}/nodes/{node}/waf", json=body).status_code in (401, 403)
    # retention: 30 days by default
    retention.prune(api.db, Settings(home=api.tmp / "home", database_url=api.db.url))
    with api.db.read(LOCAL, "default") as tx:
        left = tx.session.scalar(select(func.count()).select_from(WafMatchRow))
    assert left == 3


SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@SQLITE
def test_cli_over_the_api(api: Api, cli: Cli) -> None:
    token, node = edge_node(api)
    report = {"matches": [match("req-42", 942100, 949110, uri="/api/search?q=x")]}
    ok(api.post(f"{EDGE}/nodes/{node}/waf", token=token, json=report), 204)
    table = cli.run("waf", "matches", "--request-id", "req-42").stdout
    assert "req-42" in table and "942100" in table and "rule 942100" in table
    doc = cli.json("waf", "matches", "--request-id", "req-42")
    assert doc["items"][0]["rules"][0]["rule"] == 942100
    added = cli.json("waf", "exclude", "--rule", "942100", "--path", "/api/search")
    assert added["path"] == "/api/search"
    assert "942100" in cli.run("waf", "exclusions").stdout
    assert cli.json("waf", "set", "--mode", "detect")["mode"] == "detect"
    assert "detect" in cli.run("waf", "status").stdout
    assert "must be a path prefix" in cli.fails(
        "waf", "exclude", "--rule", "942100", "--path", "x", code=1
    )
    assert "not a rule of the OWASP Core Rule Set" in cli.fails(
        "waf", "exclude", "--rule", "99999999", code=1
    )


@SQLITE
def test_sdk(api: Api) -> None:
    from edgeplane.sdk import embedded
    from edgeplane.sdk.client import Client

    client = Client(Settings(home=api.tmp / "sdk", database_url=api.db.url))
    service = WafService(client=client)
    token, node = edge_node(api)
    report = {"matches": [match("req-7", 941100, 949110)]}
    ok(api.post(f"{EDGE}/nodes/{node}/waf", token=token, json=report), 204)

    async def scenario() -> None:
        settings = await service.configure(mode="block", anomaly_threshold=10)
        assert (settings.mode, settings.anomaly_threshold) == ("block", 10)
        page = await service.list_matches(request_id="req-7")
        assert [r.rule for r in page.items[0].rules] == [941100, 949110]
        exclusion = await service.add_exclusion(941100, "/comments", note="rich text")
        assert [e.id for e in await service.list_exclusions()] == [exclusion.id]
        status = await service.get_status()
        assert (status.mode, status.exclusions, status.blocked_24h) == ("block", 1, 1)
        await service.delete_exclusion(exclusion.id)
        assert await service.list_exclusions() == []
        await client.aclose()

    try:
        asyncio.run(scenario())
    finally:
        app = embedded._apps.pop(api.db.url, None)
        if app is not None:
            app.state.db.dispose()
