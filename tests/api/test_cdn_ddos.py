"""L7 DDoS protection over the API, SDK and CLI: the project's security as one document (GET,
JSON merge PATCH), the under-attack switch, what an edge node's snapshot carries, and the
security alert raised by the edge's refusals (SQLite and PostgreSQL for the API; the CLI and
SDK on SQLite)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from conftest import Api, Cli
from edgeplane.model.client_limits import UNDER_ATTACK, UNDER_ATTACK_RATE
from edgeplane.services.access import create_edge_token
from edgeplane.services.alert_engine import Engine
from edgeplane.store.actor import LOCAL
from edgeplane.store.tables import AuditRow, DomainRow, EdgeAnalyticsRow, EdgeNodeRow, utcnow

CDN = "/api/v1/infrastructure/cdn"
SECURITY = f"{CDN}/security"
ATTACK = f"{CDN}/under-attack"


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def problem(r: Any, field: str, status: int = 422) -> dict[str, Any]:
    assert r.status_code == status, r.text
    doc: dict[str, Any] = r.json()
    assert doc["field"] == field, doc
    return doc


def add_domain(api: Api, name: str) -> None:
    with api.db.transaction(LOCAL, "default") as tx:
        tx.session.add(
            DomainRow(name=name, project_id="default", environment="prod", status="active")
        )


def site(api: Api) -> dict[str, Any]:
    """The project's site in an edge node's snapshot (the real long-poll)."""
    edge = create_edge_token(api.db, "edge-ddos")
    r = api.post("/api/v1/edge/nodes", token=edge, json={"name": "edge-1", "region": "us-east"})
    node = ok(r, r.status_code)
    doc = ok(api.get(f"/api/v1/edge/nodes/{node['id']}/config?after=-1&wait=0", token=edge))
    [one] = [s for s in doc["config"]["sites"] if s["id"] == "default"]
    return one  # type: ignore[no-any-return]


def audits(api: Api) -> int:
    with api.db.read(LOCAL, "default") as tx:
        return tx.session.query(AuditRow).filter(AuditRow.kind == "cdn_config").count()


def test_security_is_read_and_merge_patched(api: Api) -> None:
    first = ok(api.get(SECURITY))
    assert first["revision"] is None and first["security"]["under_attack"] is False
    assert first["security"]["limits"] == {k: None for k in UNDER_ATTACK.model_dump()}
    ok(api.post(CDN, json={"origins": [{"url": "http://127.0.0.1:9"}]}), 201)
    doc = ok(api.patch(SECURITY, json={"limits": {"max_connections": 20, "header_timeout_s": 5}}))
    rev = doc["revision"]
    assert isinstance(rev, int)
    assert doc["security"]["limits"]["max_connections"] == 20
    assert doc["security"]["force_https"] is True  # untouched
    doc = ok(
        api.patch(SECURITY, json={"limits": {"body_timeout_s": 30}, "rate_limit": {"rate": 5}})
    )
    limits = doc["security"]["limits"]
    assert (limits["max_connections"], limits["header_timeout_s"], limits["body_timeout_s"]) == (
        20,
        5,
        30,
    )
    assert doc["security"]["rate_limit"] == {"rate": 5, "burst": 0}
    assert doc["revision"] > rev
    # the CDN config holds the same, origins kept
    dep = ok(api.get(CDN))
    assert dep["security"] == doc["security"] and dep["origins"] == [
        {
            "url": "http://127.0.0.1:9",
            "load_balancer": None,
            "weight": 1,
            "backup": False,
            "tls": None,
        }
    ]
    # null resets a limit to the edge's default, clears the rate limit
    doc = ok(api.patch(SECURITY, json={"limits": {"max_connections": None}, "rate_limit": None}))
    assert doc["security"]["limits"]["max_connections"] is None
    assert doc["security"]["rate_limit"] is None
    # a patch that changes nothing takes no revision
    count = audits(api)
    same = ok(api.patch(SECURITY, json={"limits": {"body_timeout_s": 30}}))
    assert same["revision"] == doc["revision"] and audits(api) == count


BAD = [
    ({"limits": {"max_connections": 0}}, "limits.max_connections"),
    ({"limits": {"header_timeout_s": 301}}, "limits.header_timeout_s"),
    ({"limits": {"max_header_bytes": 64 * 1024}}, "limits.max_header_bytes"),
    ({"limits": {"max_body_bytes": "big"}}, "limits.max_body_bytes"),
    ({"limits": {"nope": 1}}, "limits.nope"),
    ({"nope": 1}, "nope"),
    ({"under_attack": "yes"}, "under_attack"),
    ({"rate_limit": {"rate": 0}}, "rate_limit.rate"),
]


def test_bad_security_is_refused_naming_the_field(api: Api) -> None:
    ok(api.post(CDN, json={"origins": [{"url": "http://127.0.0.1:9"}]}), 201)
    before = ok(api.get(SECURITY))
    count = audits(api)
    for body, field in BAD:
        problem(api.patch(SECURITY, json=body), field)
    assert ok(api.get(SECURITY)) == before and audits(api) == count  # nothing stored
    assert api.patch(SECURITY, json=[1]).status_code == 422
    problem(api.post(ATTACK, json={"enabled": "yes"}), "enabled")
    assert api.post(ATTACK, json={}).status_code == 422
    assert ok(api.get(SECURITY)) == before and audits(api) == count


def test_under_attack_tightens_what_the_edge_gets(api: Api) -> None:
    add_domain(api, "shop.test")
    ok(api.post(CDN, json={"origins": [{"url": "http://127.0.0.1:9"}]}), 201)
    ok(
        api.patch(
            SECURITY,
            json={
                "limits": {"max_connections": 8, "max_body_bytes": 50 * 1024**2},
                "rate_limit": {"rate": 100, "burst": 10},
            },
        )
    )
    assert site(api)["client_limits"]["max_connections"] == 8
    assert site(api)["client_limits"]["under_attack"] is False
    state = ok(api.post(ATTACK, json={"enabled": True}))
    assert state["under_attack"] is True and isinstance(state["revision"], int)
    limits = state["limits"]
    assert limits["max_connections"] == 8  # the project's own, already tighter
    assert limits["header_timeout_s"] == UNDER_ATTACK.header_timeout_s
    assert limits["max_body_bytes"] == UNDER_ATTACK.max_body_bytes
    assert state["rate_limit"] == {"rate": UNDER_ATTACK_RATE[0], "burst": 10}
    assert ok(api.get(ATTACK)) == state
    assert ok(api.get(SECURITY))["security"]["under_attack"] is True
    spec = site(api)
    assert spec["client_limits"]["under_attack"] is True
    assert spec["client_limits"]["keepalive_timeout_s"] == UNDER_ATTACK.keepalive_timeout_s
    assert spec["rate_limit"] == {"rate": UNDER_ATTACK_RATE[0], "burst": 10}
    # again: no change, no revision
    assert ok(api.post(ATTACK, json={"enabled": True}))["revision"] == state["revision"]
    off = ok(api.post(ATTACK, json={"enabled": False}))
    assert off["limits"]["header_timeout_s"] is None and off["revision"] > state["revision"]
    assert site(api)["rate_limit"] == {"rate": 100, "burst": 10}


def test_first_security_change_keeps_the_projects_only_load_balancer(api: Api) -> None:
    add_domain(api, "lb.test")
    lb = ok(
        api.post(
            "/api/v1/infrastructure/loadbalancer",
            json={"name": "web", "algorithm": "round_robin", "backends": ["127.0.0.1:9001"]},
        ),
        201,
    )
    before = site(api)["pool"]
    assert before and lb["id"] in before
    ok(api.post(ATTACK, json={"enabled": True}))
    assert ok(api.get(CDN))["origins"][0]["load_balancer"] == lb["id"]
    assert site(api)["pool"] == before


def test_refusals_raise_a_security_alert_that_resolves(api: Api) -> None:
    """The edge's refusals (connection limits, slow clients...) over the l7-attack rule's
    threshold fire it for the domain; a calm minute resolves it."""
    rules = {r["id"]: r for r in ok(api.get("/api/v1/alerts/rules"))}
    rule = rules["l7-attack"]
    assert (rule["series"], rule["severity"], rule["builtin"]) == (
        "client_limits_refused",
        "critical",
        True,
    )
    now = utcnow().replace(second=0, microsecond=0)
    with api.db.transaction(LOCAL, "default") as tx:
        tx.session.add(EdgeNodeRow(id="n1", name="edge-1", region="us-east", last_seen_at=now))
        tx.session.add(
            EdgeAnalyticsRow(
                node_id="n1",
                domain="shop.test",
                minute=now,
                project_id="default",
                requests=2000,
                blocked={"connection_limit": 900, "timeout": 50, "denied": 5000},
            )
        )
    engine = Engine(api.db)
    assert engine.evaluate(now=now + timedelta(seconds=30)).fired >= 1
    [alert] = ok(api.get("/api/v1/alerts?state=firing&rule=l7-attack"))
    assert alert["object_id"] == "shop.test" and alert["value"] == 950  # IP lists not counted
    assert alert["severity"] == "critical"
    series = ok(api.get("/api/v1/metrics/series"))
    names = {s["name"] for s in series} if isinstance(series, list) else set(series)
    assert {"connection_limited", "slow_clients_cut", "too_large_refused"} <= names
    # the minute after the window: calm, resolved
    later = now + timedelta(seconds=130)
    assert engine.evaluate(now=later).resolved >= 1
    assert ok(api.get("/api/v1/alerts?state=firing&rule=l7-attack")) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_security_and_under_attack(api: Api, cli: Cli) -> None:
    cli.run("cdn", "configure", "--origin", "http://127.0.0.1:9")
    doc = cli.json(
        "cdn", "security", "set", "--max-connections", "10", "--header-timeout", "5",
        "--max-body-size", "1m", "--set", "limits.send_timeout_s=9", "--rate-limit", "50:100",
    )  # fmt: skip
    limits = doc["security"]["limits"]
    assert (limits["max_connections"], limits["header_timeout_s"]) == (10, 5)
    assert (limits["max_body_bytes"], limits["send_timeout_s"]) == (1024**2, 9)
    assert doc["security"]["rate_limit"] == {"rate": 50, "burst": 100}
    text = cli.run("cdn", "security", "show").stdout
    for words in ("requests at once per client", "10", "50/s burst 100", "under_attack"):
        assert words in text, text
    doc = cli.json(
        "cdn", "security", "set", "--unset", "limits.max_connections", "--rate-limit", "none"
    )
    assert (
        doc["security"]["limits"]["max_connections"] is None
        and doc["security"]["rate_limit"] is None
    )
    on = cli.json("cdn", "under-attack", "on")
    assert (
        on["under_attack"] is True
        and on["limits"]["max_connections"] == UNDER_ATTACK.max_connections
    )
    assert "under attack ON" in cli.run("cdn", "under-attack", "show").stdout
    # the CDN's summary and the security view read as sentences, not nested dumps
    cli.run("cdn", "security", "set", "--set", "waf.mode=detect", "--set",
            "headers.referrer_policy.action=remove")  # fmt: skip
    summary = next(x for x in cli.run("cdn", "show").stdout.splitlines() if "security" in x)
    assert "UNDER ATTACK" in summary and "WAF detect" in summary, summary
    text = cli.run("cdn", "security", "show").stdout
    for words in ("detect, paranoia 1, anomaly threshold 5, 0 exclusions",
                  "header referrer-policy          removed",
                  "header x-frame-options          the origin's, else SAMEORIGIN"):  # fmt: skip
        assert words in text, text
    assert cli.json("cdn", "under-attack", "off")["under_attack"] is False
    # bad input: the option or the field named, nothing changed
    bad = cli.run("cdn", "security", "set", "--max-body-size", "lots", code=2)
    assert "--max-body-size" in bad.stderr
    bad = cli.run("cdn", "security", "set", "--max-connections", "0", code=1)
    assert "limits.max_connections" in bad.stderr
    assert cli.run("cdn", "security", "set", code=2).stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sdk_security_and_under_attack(api: Api) -> None:
    from edgeplane import CDNService
    from edgeplane.sdk.client import Client
    from edgeplane.settings import Settings

    cdn = CDNService(client=Client(Settings(home=api.tmp / "sdk", database_url=api.db.url)))

    async def scenario() -> None:
        doc = await cdn.update_security({"limits": {"max_connections": 12}})
        assert doc.security.limits.max_connections == 12
        assert (await cdn.get_security()).security.limits.max_connections == 12
        state = await cdn.set_under_attack(True)
        assert state.under_attack and state.limits.header_timeout_s == UNDER_ATTACK.header_timeout_s
        assert (await cdn.get_under_attack()).under_attack
        assert not (await cdn.set_under_attack(False)).under_attack

    asyncio.run(scenario())
