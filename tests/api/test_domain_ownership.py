"""Domain names, ownership state and the switches of a domain, through the API.

The checks themselves (DNS, HTTP, SMTP) run against real servers in
tests/integration/test_dns_domains.py; here: what needs no network.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from conftest import Api
from edgeplane.protocol.config import NodeSpec
from edgeplane.snapshot.build import snapshot
from edgeplane.snapshot.load import load_state
from edgeplane.store.actor import LOCAL

INV = "/api/v1/infrastructure"
NODE = NodeSpec(id="node-1", name="n1", region="eu-central")


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if status != 204 else None


def add(api: Api, domain: str, **kw: Any) -> Any:
    return api.post(f"{INV}/domains", json={"domain": domain, **kw})


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("co.uk", "public suffix"),
        ("github.io", "public suffix"),
        ("com", "at least two labels"),
        ("*.example.com", "wildcard"),
        ("a..b.com", "not a valid domain name"),
        ("-a.com", "hyphen"),
        ("x" * 64 + ".com", "not a valid domain name"),
        (".".join(["a" * 60] * 5) + ".com", "253"),
        ("192.0.2.1", "IP address"),
    ],
)
def test_names_that_are_not_domains_are_refused(api: Api, name: str, words: str) -> None:
    r = add(api, name)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "domain" and words in r.json()["detail"], r.json()
    assert ok(api.get(f"{INV}/domains"))["domains"] == []


def test_a_public_domain_waits_for_verification(api: Api) -> None:
    doc = ok(add(api, "Bücher-Laden.de"), 201)
    assert doc["verification_required"] is True
    d = doc["domain_config"]
    assert d["domain"] == "xn--bcher-laden-thb.de" and d["display_name"] == "bücher-laden.de"
    assert d["status"] == "pending" and d["apex"] is True and d["certificate"] is None
    v = d["verification"]
    assert v["state"] == "pending" and len(v["token"]) == 32
    assert v["dns_record"]["fqdn"] == "_edgeplane-challenge.xn--bcher-laden-thb.de."
    assert v["file_url"] == (
        f"http://xn--bcher-laden-thb.de/.well-known/edgeplane-verification/{v['token']}"
    )
    assert "hostmaster@xn--bcher-laden-thb.de" in v["email_addresses"]
    with api.db.read(LOCAL, "default") as tx:
        config = snapshot(load_state(tx.session, tx.secrets), NODE, 1)
    assert config.sites == ()  # not served by the edge
    assert [z.name for z in config.zones] == ["xn--bcher-laden-thb.de."]  # its zone is hosted
    assert [(x.domain, x.token) for x in config.verifications] == [
        ("xn--bcher-laden-thb.de", v["token"])
    ]
    sub = ok(add(api, "shop.other-shop.co.uk"), 201)["domain_config"]
    assert sub["apex"] is False


def test_reserved_names_need_no_verification(api: Api) -> None:
    doc = ok(add(api, "app.test"), 201)
    assert doc["verification_required"] is False
    d = doc["domain_config"]
    assert d["status"] == "active" and d["verification"]["method"] == "reserved"
    assert d["certificate"]["issuer"] == "internal"
    result = ok(api.post(f"{INV}/domains/app.test/verify", json={"method": "dns"}))
    assert result["verified"] is True and "reserved" in result["reason"]


def test_names_inside_another_projects_domain_are_refused(api: Api) -> None:
    ok(api.post("/api/v1/projects", json={"id": "other"}), 201)
    ok(api.post(f"{INV}/domains", json={"domain": "owned.com"}, params={"project": "other"}), 201)
    for name in ("owned.com", "shop.owned.com"):
        r = add(api, name)
        assert r.status_code == 409 and r.json()["field"] == "domain", r.text
    r = api.post(
        f"{INV}/domains", json={"domain": "deep.shop.owned.com"}, params={"project": "other"}
    )
    assert r.status_code == 201  # the same project may host a sub-zone
    ok(add(api, "mine.com"), 201)
    r = api.post(f"{INV}/domains", json={"domain": "x.mine.com"}, params={"project": "other"})
    assert r.status_code == 409 and "another project" in r.json()["detail"]


def test_an_expired_token_is_replaced_and_the_check_fails(api: Api) -> None:
    state = api.client.app.state  # type: ignore[attr-defined]
    state.settings = dataclasses.replace(state.settings, verification_token_ttl_s=-1)
    old = ok(add(api, "expired-token.com"), 201)["domain_config"]["verification"]["token"]
    result = ok(api.post(f"{INV}/domains/expired-token.com/verify", json={"method": "dns"}))
    assert result["verified"] is False and "expired" in result["reason"]
    new = result["domain_config"]["verification"]["token"]
    assert new != old and result["dns_records"][0]["values"] == [f'"{new}"']
    assert result["domain_config"]["verification"]["state"] == "failed"


def test_verify_input_is_checked(api: Api) -> None:
    ok(add(api, "input-check.com"), 201)
    r = api.post(f"{INV}/domains/input-check.com/verify", json={"method": "carrier-pigeon"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "method"
    r = api.post(f"{INV}/domains/input-check.com/verify", json={"method": "dns", "code": "1"})
    assert r.status_code == 422 and r.json()["field"] == "code"
    r = api.post(f"{INV}/domains/input-check.com/verify", json={"method": "email", "code": "1"})
    assert r.status_code == 200 and "no code was sent" in r.json()["reason"]
    assert api.post(f"{INV}/domains/nope.com/verify", json={}).status_code == 404
    viewer = api.token("viewer")
    r = api.post(f"{INV}/domains/input-check.com/verify", json={}, token=viewer)
    assert r.status_code == 403


def test_lock_blocks_deletion_and_dnssec_gives_ds_records(api: Api) -> None:
    ok(add(api, "locked.test", locked=True), 201)
    r = api.delete(f"{INV}/domains/locked.test")
    assert r.status_code == 409 and r.json()["field"] == "locked"
    status = ok(api.get(f"{INV}/domains/locked.test/status"))
    assert status["locked"] is True and status["dnssec"] == {
        "enabled": False,
        "ds": [],
        "dnskey": [],
    }
    doc = ok(api.patch(f"{INV}/domains/locked.test", json={"dnssec": True}))
    assert doc["dnssec"] is True
    status = ok(api.get(f"{INV}/domains/locked.test/status"))
    ds = status["dnssec"]["ds"]
    assert len(ds) == 1 and ds[0].split()[1:3] == ["13", "2"]  # ECDSA P-256, SHA-256
    with api.db.read(LOCAL, "default") as tx:
        zone = snapshot(load_state(tx.session, tx.secrets), NODE, 1).zones[0]
    assert zone.dnssec and len(zone.dnssec_keys) == 1
    assert "PrivateKey" not in str(status)
    r = api.patch(f"{INV}/domains/locked.test", json={"locked": "soon"})
    assert r.status_code == 422
    ok(api.patch(f"{INV}/domains/locked.test", json={"locked": False}))
    ok(api.delete(f"{INV}/domains/locked.test"), 204)


def test_verified_domains_are_rechecked_and_unverified_after_repeated_failures(
    api: Api,
) -> None:
    from edgeplane.services import domains
    from edgeplane.services.jobs import recheck_domains
    from edgeplane.settings import Settings
    from edgeplane.store.tables import DomainRow

    ok(add(api, "recheck-me.com"), 201)
    with api.db.transaction(LOCAL, "default") as tx:
        row = tx.session.get(DomainRow, "recheck-me.com")
        assert row is not None
        domains.mark_verified(tx, row, "dns", "verified by the test")
    # Nothing answers DNS on this port: every re-check fails.
    settings = Settings(
        home=api.tmp / "home",
        dns_resolvers=("127.0.0.1:9",),
        verify_timeout_s=0.2,
        reverify_interval_s=0,
    )
    for expected in ("active", "active", "pending"):
        assert recheck_domains(api.db, settings) == 1
        doc = ok(api.get(f"{INV}/domains/recheck-me.com"))
        assert doc["status"] == expected, doc
    assert doc["verification"]["failures"] == 3
    assert doc["verification"]["state"] == "failed"
    assert "127.0.0.1:9" in doc["verification"]["last_result"]
    assert recheck_domains(api.db, settings) == 0  # unverified domains are not re-checked
    events = ok(api.get("/api/v1/audit", params={"kind": "domain"}))
    actions = [e["action"] for e in events.get("items", events.get("events", []))]
    assert "unverify" in actions
