"""Token scopes, expiry, rotation and service accounts over HTTP (real SQLite and PostgreSQL).

A token with scopes needs, for each call, its role (as before) and a scope naming the kind of
object and the action of the endpoint (``edgeplane.api.scopes``): a token for DNS records
cannot touch load balancers. Tokens expire (401 "token expired"), rotate (same id, a new
secret, the old one valid for a grace period), and service accounts own tokens that stop at
once when the account is disabled.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

from conftest import Api
from edgeplane.api import scopes as api_scopes
from edgeplane.model import scopes as sc
from edgeplane.store.tables import utcnow

INV = "/api/v1/infrastructure"
LB = f"{INV}/loadbalancer"
TOKENS = "/api/v1/tokens"
ACCOUNTS = "/api/v1/service-accounts"
# Logic, not locking: SQLite only (the service accounts run on PostgreSQL too)
SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if status != 204 else None


def problem(r: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    doc: dict[str, Any] = r.json()
    if field is not None:
        assert doc.get("field") == field, doc
    return doc


def token(api: Api, *, roles: dict[str, str] | None = None, **body: Any) -> dict[str, Any]:
    doc: dict[str, Any] = ok(
        api.post(TOKENS, json={"name": "t", "roles": roles or {"default": "editor"}, **body}),
        201,
    )
    return doc


def records(api: Api, domain: str, tok: str, ip: str) -> Any:
    body = {"records": [{"name": "www", "type": "A", "values": [ip]}]}
    return api.call("PUT", f"{INV}/domains/{domain}/records", token=tok, json=body)


# The table of scopes, against the app's routes (a new router cannot forget it) ---------------


def _calls(dependant: Any) -> set[Any]:
    out = {dependant.call}
    for sub in dependant.dependencies:
        out |= _calls(sub)
    return out


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_operation_of_the_api_has_a_scope_rule(api: Api) -> None:
    """Every route that authenticates an API token (``get_actor``, ``/metrics``) has a rule;
    every rule names at least one route."""
    from fastapi.routing import APIRoute, iter_route_contexts

    from edgeplane.api.deps import get_actor, get_edge_actor
    from edgeplane.api.prometheus import require_scraper

    used: set[api_scopes.Rule] = set()
    needs: dict[tuple[str, str], tuple[str, str] | None] = {}
    edge_protocol = 0
    for ctx in iter_route_contexts(api.client.app.routes):  # type: ignore[attr-defined]
        route = ctx.original_route
        if not isinstance(route, APIRoute):
            continue
        calls = _calls(route.dependant)
        if get_edge_actor in calls:
            edge_protocol += 1  # edge tokens, which have no scopes
            continue
        if get_actor not in calls and require_scraper not in calls:
            continue  # open to all (healthz, sign-in, the CA's certificate, the dashboard)
        for method in route.methods:
            rule = api_scopes.rule_for(method, ctx.path)
            assert rule is not None, f"{method} {ctx.path} has no scope rule"
            used.add(rule)
            need = needs[(method, ctx.path)] = api_scopes.need(method, ctx.path)
            if need is not None:
                assert need[0] == sc.ANY or need[0] in sc.KINDS
                assert need[1] in sc.actions_of(need[0])
    assert len(needs) > 150 and edge_protocol > 5
    unused = [r.prefix for r in api_scopes.RULES if r not in used and r.kind is not None]
    assert unused == [], f"rules that name no operation: {unused}"
    assert needs[("PUT", f"{INV}/domains/{{domain}}/records")] == ("dns_records", "write")
    assert needs[("GET", f"{INV}/domains/{{domain}}")] == ("domains", "read")
    assert needs[("POST", LB)] == ("load_balancers", "write")
    assert needs[("POST", f"{INV}/cdn/purge")] == ("cdn", "purge")
    assert needs[("POST", f"{INV}/cdn")] == ("cdn", "write")
    assert needs[("POST", "/api/v1/iac/apply")] == ("*", "write")
    assert needs[("POST", "/api/v1/iac/plan")] == ("*", "read")
    assert needs[("GET", f"{INV}/ssl/{{domain}}/private-key")] == ("certificates", "reveal")
    assert needs[("POST", f"{TOKENS}/{{token_id}}/rotate")] == ("tokens", "write")
    assert needs[("GET", "/api/v1/whoami")] is None
    # a path no rule names is refused to a token with scopes (fail closed)
    with pytest.raises(KeyError):
        api_scopes.need("GET", "/api/v1/something-new")


def test_scope_grammar_and_coverage() -> None:
    write = sc.parse("dns_records:write")
    assert write.allows("dns_records", "read") and write.allows("dns_records", "write")
    assert not write.allows("load_balancers", "read")
    assert sc.parse("cdn:write").allows("cdn", "purge")
    assert not sc.parse("certificates:write").allows("certificates", "reveal")
    assert sc.parse("certificates:*").allows("certificates", "reveal")
    assert sc.parse("*:read").allows("load_balancers", "read")
    assert not sc.parse("*:read").allows("load_balancers", "write")
    assert not sc.parse("dns_records:*").allows("*", "write")  # IaC needs a scope of every kind
    assert sc.covers([sc.parse("*:write")], sc.parse("dns_records:read"))
    assert not sc.covers([sc.parse("dns_records:write")], sc.parse("*:read"))
    assert not sc.covers([sc.parse("dns_records:read")], sc.parse("dns_records:write"))
    assert sc.min_role(sc.parse("*:read")).value == "viewer"
    assert sc.min_role(sc.parse("cdn:purge")).value == "editor"
    assert sc.min_role(sc.parse("certificates:reveal")).value == "admin"
    for bad in ("dns_records", "dnsrecords:write", "dns_records:purge", ":read", "cdn:"):
        with pytest.raises(ValueError):
            sc.parse(bad)


# Acceptance: a token for DNS records cannot touch load balancers -------------------------


@SQLITE
def test_a_dns_records_token_cannot_touch_load_balancers(api: Api) -> None:
    ok(api.post(f"{INV}/domains", json={"domain": "shop.test", "auto_configure": False}), 201)
    ok(api.post(LB, json={"id": "lb-1", "endpoints": ["10.0.0.1:80"]}), 201)
    issued = token(api, scopes=["dns_records:write"])
    assert issued["scopes"] == ["dns_records:write"]
    dns = issued["token"]
    # its own kind: read and write
    ok(records(api, "shop.test", dns, "192.0.2.1"))
    assert ok(api.get(f"{INV}/domains/shop.test/records", token=dns))["records"]
    # load balancers: neither read nor write, and the 403 names the missing scope
    for method, path, body, missing in (
        ("GET", LB, None, "load_balancers:read"),
        ("GET", f"{LB}/lb-1", None, "load_balancers:read"),
        ("POST", LB, {"id": "lb-2", "endpoints": ["10.0.0.2:80"]}, "load_balancers:write"),
        ("PATCH", f"{LB}/lb-1", {"endpoints": ["10.0.0.3:80"]}, "load_balancers:write"),
        ("DELETE", f"{LB}/lb-1", None, "load_balancers:write"),
    ):
        doc = problem(api.call(method, path, token=dns, json=body), 403)
        assert doc["type"].endswith("/forbidden")
        assert doc["missing_scope"] == missing and missing in doc["detail"]
    # nor the domain itself, the CDN, IaC (every kind) or new tokens without scopes
    assert problem(api.get(f"{INV}/domains/shop.test", token=dns), 403)["missing_scope"] == (
        "domains:read"
    )
    assert problem(api.post(f"{INV}/cdn/purge", token=dns, json={"purge_all": True}), 403)
    assert problem(api.get("/api/v1/iac/export", token=dns), 403)["missing_scope"] == "*:read"
    problem(api.post(TOKENS, token=dns, json={"name": "x", "roles": {"default": "editor"}}), 403)
    # nothing changed on the load balancer; whoami is open to any token
    assert ok(api.get(f"{LB}/lb-1"))["endpoints"] == ["10.0.0.1:80"]
    assert ok(api.get("/api/v1/whoami", token=dns))["token_id"] == issued["id"]
    # the role still applies: a viewer with dns_records:read cannot write records
    viewer = token(api, roles={"default": "viewer"}, scopes=["dns_records:read"])["token"]
    ok(api.get(f"{INV}/domains/shop.test/records", token=viewer))
    problem(records(api, "shop.test", viewer, "192.0.2.9"), 403)
    # a token without scopes keeps its role's meaning
    plain = token(api)["token"]
    ok(api.get(LB, token=plain))
    # the dashboard's session of a scoped token carries its scopes
    r = api.client.post("/api/v1/session", json={"token": dns})
    assert r.status_code in (200, 201), r.text
    cookie_get = api.client.get(LB, headers={})
    assert cookie_get.status_code == 403 and cookie_get.json()["missing_scope"] == (
        "load_balancers:read"
    )
    api.client.cookies.clear()


@SQLITE
def test_bad_scopes_and_expiry_are_422_naming_the_field(api: Api) -> None:
    def refused(body: dict[str, Any], field: str) -> str:
        base = {"name": "t", "roles": {"default": "editor"}}
        detail: str = problem(api.post(TOKENS, json={**base, **body}), 422, field)["detail"]
        return detail

    assert "unknown kind" in refused({"scopes": ["dns_record:write"]}, "scopes.0")
    assert "unknown action" in refused({"scopes": ["cdn:read", "dns_records:purge"]}, "scopes.1")
    assert "KIND:ACTION" in refused({"scopes": ["dns_records"]}, "scopes.0")
    past = (utcnow() - timedelta(minutes=1)).isoformat()
    assert "past" in refused({"expires_at": past}, "expires_at")
    refused({"ttl_s": 5}, "ttl_s")
    refused({"ttl_s": 3600, "expires_at": (utcnow() + timedelta(days=1)).isoformat()}, "ttl_s")
    # a scope wider than the role
    detail = problem(
        api.post(
            TOKENS,
            json={"name": "t", "roles": {"default": "viewer"}, "scopes": ["dns_records:write"]},
        ),
        422,
        "scopes.0",
    )["detail"]
    assert "editor" in detail and "never grants more than the role" in detail
    problem(
        api.post(
            TOKENS,
            json={"name": "t", "roles": {"default": "editor"}, "scopes": ["certificates:reveal"]},
        ),
        422,
        "scopes.0",
    )
    problem(api.post(TOKENS, json={"name": "e", "scope": "edge", "scopes": ["*:read"]}), 422)
    # nothing was issued by the refusals
    names = [t["name"] for t in ok(api.get(TOKENS))]
    assert names == ["admin"]


@SQLITE
def test_a_scoped_token_hands_on_only_what_it_holds(api: Api) -> None:
    admin_dns = token(api, roles={"default": "admin"}, scopes=["dns_records:write", "tokens:write"])
    secret = admin_dns["token"]
    # no scopes given: refused (it would be a token without scopes)
    problem(
        api.post(TOKENS, token=secret, json={"name": "n", "roles": {"default": "editor"}}),
        422,
        "scopes",
    )
    doc = problem(
        api.post(
            TOKENS,
            token=secret,
            json={"name": "n", "roles": {"default": "editor"}, "scopes": ["load_balancers:read"]},
        ),
        403,
        "scopes.0",
    )
    assert "hand on" in doc["detail"]
    narrower = ok(
        api.post(
            TOKENS,
            token=secret,
            json={"name": "n", "roles": {"default": "editor"}, "scopes": ["dns_records:read"]},
        ),
        201,
    )
    assert narrower["scopes"] == ["dns_records:read"]


# Expiry and rotation ------------------------------------------------------------------------


@SQLITE
def test_an_expired_token_answers_401_without_its_secret(api: Api) -> None:
    soon = (utcnow() + timedelta(seconds=1.5)).isoformat()
    issued = token(api, expires_at=soon)
    assert issued["expires_at"] is not None
    secret = issued["token"]
    ok(api.get("/api/v1/whoami", token=secret))
    deadline = time.monotonic() + 10
    while (r := api.get("/api/v1/whoami", token=secret)).status_code == 200:
        assert time.monotonic() < deadline, "the token never expired"
        time.sleep(0.1)
    doc = problem(r, 401)
    assert doc["detail"] == "token expired" and secret not in r.text
    # an expired token cannot be rotated back to life
    problem(api.post(f"{TOKENS}/{issued['id']}/rotate"), 409)
    listed = {t["id"]: t for t in ok(api.get(TOKENS))}
    assert listed[issued["id"]]["expires_at"] is not None
    with_ttl = token(api, ttl_s=3600)
    assert with_ttl["expires_at"] is not None


@SQLITE
def test_rotation_keeps_the_token_and_gives_a_grace_period(api: Api) -> None:
    issued = token(api, scopes=["dns_records:read"], ttl_s=86400)
    old = issued["token"]
    ok(api.get("/api/v1/whoami", token=old))
    rotated = ok(api.post(f"{TOKENS}/{issued['id']}/rotate", json={"grace_s": 60}))
    new = rotated["token"]
    assert new != old and rotated["prefix"] == new[:10]
    for same in ("id", "name", "roles", "scopes", "expires_at", "created_at"):
        assert rotated[same] == issued[same], same
    assert rotated["rotated_at"] is not None and rotated["previous_valid_until"] is not None
    # both secrets work during the grace period, with the same scopes
    for secret in (old, new):
        assert ok(api.get("/api/v1/whoami", token=secret))["token_id"] == issued["id"]
        assert problem(api.get(LB, token=secret), 403)["missing_scope"] == "load_balancers:read"
    listed = {t["id"]: t for t in ok(api.get(TOKENS))}
    assert listed[issued["id"]]["last_used_at"] is not None
    assert "token" not in listed[issued["id"]]
    # rotating again without grace: only the newest secret works, at once
    newest = ok(api.post(f"{TOKENS}/{issued['id']}/rotate"))["token"]
    for stale in (old, new):
        assert problem(api.get("/api/v1/whoami", token=stale), 401)["detail"] == "unknown token"
    ok(api.get("/api/v1/whoami", token=newest))
    problem(api.post(f"{TOKENS}/{issued['id']}/rotate", json={"grace_s": -1}), 422, "grace_s")
    problem(api.post(f"{TOKENS}/tok-nope/rotate"), 404)
    # another project's editor cannot rotate it
    other = token(api)["token"]
    problem(api.post(f"{TOKENS}/{issued['id']}/rotate", token=other), 403)
    events = ok(api.get("/api/v1/audit?kind=token&include_global=true"))["items"]
    assert [e["action"] for e in events if e["object_id"] == issued["id"]][:2] == [
        "rotate",
        "rotate",
    ]
    assert newest not in str(events) and old not in str(events)


# Service accounts ---------------------------------------------------------------------------


def test_service_accounts_own_tokens_and_stop_them_when_disabled(api: Api) -> None:
    ok(api.post(f"{INV}/domains", json={"domain": "ci.test", "auto_configure": False}), 201)
    account = ok(
        api.post(
            ACCOUNTS,
            json={
                "id": "deployer",
                "description": "CI",
                "roles": {"default": "editor"},
                "scopes": ["dns_records:write", "domains:read"],
            },
        ),
        201,
    )
    assert account["roles"] == {"default": "editor"} and account["tokens"] == 0
    issued = ok(api.post(f"{ACCOUNTS}/deployer/tokens", json={"name": "ci", "ttl_s": 3600}), 201)
    assert issued["service_account"] == "deployer" and issued["roles"] == {"default": "editor"}
    secret = issued["token"]
    ok(records(api, "ci.test", secret, "192.0.2.5"))
    # the account's scopes bound its tokens
    assert problem(api.get(LB, token=secret), 403)["missing_scope"] == "load_balancers:read"
    problem(
        api.post(
            f"{ACCOUNTS}/deployer/tokens", json={"name": "wide", "scopes": ["load_balancers:read"]}
        ),
        422,
        "scopes.0",
    )
    narrow = ok(
        api.post(f"{ACCOUNTS}/deployer/tokens", json={"name": "ro", "scopes": ["domains:read"]}),
        201,
    )["token"]
    ok(api.get(f"{INV}/domains/ci.test", token=narrow))
    problem(records(api, "ci.test", narrow, "192.0.2.6"), 403)
    # audit events name the service account as the actor
    events = ok(api.get("/api/v1/audit?kind=dns-records"))["items"]
    assert events[0]["actor"] == f"service-account deployer ({issued['id']})"
    listed = ok(api.get(ACCOUNTS))
    assert [(a["id"], a["tokens"]) for a in listed] == [("deployer", 2)]
    # disabled: every token it owns stops at once; enabled again: they work again
    ok(api.post(f"{ACCOUNTS}/deployer/disable"))
    for s in (secret, narrow):
        assert "disabled" in problem(api.get("/api/v1/whoami", token=s), 401)["detail"]
    problem(api.post(f"{ACCOUNTS}/deployer/tokens", json={"name": "x"}), 409)
    ok(api.post(f"{ACCOUNTS}/deployer/enable"))
    ok(api.get("/api/v1/whoami", token=secret))
    # only platform admins manage them; bad input names the field
    editor = token(api)["token"]
    problem(api.get(ACCOUNTS, token=editor), 403)
    problem(api.post(ACCOUNTS, token=editor, json={"id": "x", "roles": {"default": "viewer"}}), 403)
    problem(api.post(ACCOUNTS, json={"id": "deployer", "roles": {"default": "viewer"}}), 409, "id")
    problem(api.post(ACCOUNTS, json={"id": "y", "roles": {"nope": "viewer"}}), 422, "roles.nope")
    problem(
        api.post(
            ACCOUNTS, json={"id": "y", "roles": {"default": "viewer"}, "scopes": ["cdn:write"]}
        ),
        422,
        "scopes.0",
    )
    problem(api.get(f"{ACCOUNTS}/nope"), 404)
    assert [a["id"] for a in ok(api.get(ACCOUNTS))] == ["deployer"]
