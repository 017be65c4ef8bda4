"""DNS records through the API: validation naming the field, all-or-nothing changes, the
zone as the edge serves it (SOA serial, NS, verification TXT, GeoDNS LUA)."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import Api
from edgeplane.protocol.config import GeoAnswerSpec, NodeSpec
from edgeplane.snapshot.build import snapshot
from edgeplane.snapshot.load import load_state
from edgeplane.store.actor import LOCAL

INV = "/api/v1/infrastructure"
NODE = NodeSpec(id="node-1", name="n1", region="eu-central")


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if status != 204 else None


def zone(api: Api, name: str) -> Any:
    with api.db.read(LOCAL, "default") as tx:
        config = snapshot(load_state(tx.session, tx.secrets), NODE, 1)
    return next(z for z in config.zones if z.name == f"{name}.")


def geo_answer(api: Api, record: str) -> GeoAnswerSpec:
    with api.db.read(LOCAL, "default") as tx:
        config = snapshot(load_state(tx.session, tx.secrets), NODE, 1)
    return next(a for a in config.geo.answers if a.record == record)


def rrsets(api: Api, name: str) -> dict[tuple[str, str], tuple[str, ...]]:
    return {(r.name, r.type): r.records for r in zone(api, name).rrsets}


@pytest.fixture
def shop(api: Api) -> str:
    ok(api.post(f"{INV}/domains", json={"domain": "shop.test", "auto_configure": False}), 201)
    return "shop.test"


def test_records_are_stored_canonical_and_served_in_the_zone(api: Api, shop: str) -> None:
    body = {
        "records": [
            {"name": "@", "type": "A", "values": ["192.0.2.1", "192.0.2.2"], "ttl": 300},
            {"name": "WWW.shop.test.", "type": "CNAME", "values": ["Shop.Test"]},
            {"name": "@", "type": "MX", "values": ["10 mail.shop.test", "20 mx2.shop.test."]},
            {"name": "v6", "type": "AAAA", "values": ["2001:0DB8:0:0::1"]},
            {"name": "@", "type": "TXT", "values": ["x" * 300, 'say "hi"']},
            {"name": "@", "type": "CAA", "values": ["0 issue letsencrypt.org"]},
            {"name": "_sip._tcp", "type": "SRV", "values": ["1 2 5060 sip.shop.test"]},
            {"name": "*.api", "type": "A", "values": ["192.0.2.9"]},
            {"name": "bücher", "type": "A", "values": ["192.0.2.7"]},
        ]
    }
    doc = ok(api.call("PUT", f"{INV}/domains/{shop}/records", json=body))
    user = {(r["name"], r["type"]): r for r in doc["records"] if not r["managed"]}
    assert user[("www", "CNAME")]["values"] == ["shop.test."]
    assert user[("v6", "AAAA")]["values"] == ["2001:db8::1"]
    assert user[("@", "CAA")]["values"] == ['0 issue "letsencrypt.org"']
    assert ("xn--bcher-kva", "A") in user
    txt = user[("@", "TXT")]["values"]
    assert '"say \\"hi\\""' in txt and any(v.count('" "') == 1 for v in txt)  # split at 255
    served = rrsets(api, shop)
    assert served[("shop.test.", "A")] == ("192.0.2.1", "192.0.2.2")
    assert served[("*.api.shop.test.", "A")] == ("192.0.2.9",)
    assert served[("shop.test.", "MX")] == ("10 mail.shop.test.", "20 mx2.shop.test.")
    soa = served[("shop.test.", "SOA")][0]
    assert soa.split()[2] == str(doc["serial"])
    assert served[("_edgeplane-challenge.shop.test.", "TXT")][0].startswith('"')


def test_every_change_raises_the_serial(api: Api, shop: str) -> None:
    first = ok(api.call("PUT", f"{INV}/domains/{shop}/records", json={"records": []}))["serial"]
    second = ok(
        api.patch(
            f"{INV}/domains/{shop}/records",
            json={"set": [{"name": "a", "type": "A", "values": ["192.0.2.1"]}]},
        )
    )["serial"]
    same = ok(
        api.patch(
            f"{INV}/domains/{shop}/records",
            json={"set": [{"name": "a", "type": "A", "values": ["192.0.2.1"]}]},
        )
    )["serial"]
    third = ok(
        api.patch(f"{INV}/domains/{shop}/records", json={"delete": [{"name": "a", "type": "A"}]})
    )["serial"]
    assert first < second == same < third


BAD = [
    ({"name": "@", "type": "CNAME", "values": ["x.example"]}, "set[0].type", "apex"),
    ({"name": "a", "type": "A", "ttl": 0, "values": ["192.0.2.1"]}, "set[0].ttl", "out of range"),
    ({"name": "a", "type": "A", "ttl": 10**7, "values": ["1.2.3.4"]}, "set[0].ttl", "range"),
    ({"name": "a", "type": "A", "values": ["192.0.2.256"]}, "set[0].values[0]", "IPv4"),
    ({"name": "a", "type": "AAAA", "values": ["192.0.2.1"]}, "set[0].values[0]", "IPv6"),
    ({"name": "a.other.example.", "type": "A", "values": ["1.2.3.4"]}, "set[0].name", "outside"),
    ({"name": "a", "type": "MX", "values": ["mail.shop.test"]}, "set[0].values[0]", "PRIORITY"),
    ({"name": "a", "type": "SRV", "values": ["1 2 99999 t.shop.test"]}, "set[0].values[0]", "port"),
    ({"name": "a", "type": "CAA", "values": ['0 bogus "x"']}, "set[0].values[0]", "tag"),
    ({"name": "a", "type": "CNAME", "values": ["x", "y.example"]}, "set[0].values[0]", "fully"),
    ({"name": "@", "type": "NS", "values": ["ns.example.com"]}, "set[0].type", "edge nodes"),
    ({"name": "_edgeplane-challenge", "type": "TXT", "values": ["x"]}, "set[0].name", "kept"),
    ({"name": "a.*.b", "type": "A", "values": ["1.2.3.4"]}, "set[0].name", "leftmost"),
    ({"name": "a", "type": "A", "values": []}, "set[0].values", "at least one"),
    ({"name": "a", "type": "TXT", "proxied": True}, "set[0].proxied", "only A and AAAA"),
    ({"name": "a", "type": "A", "proxied": True, "values": ["1.2.3.4"]}, "set[0].values", "no"),
    ({"name": "a", "type": "SPF", "values": ["x"]}, "set.0.type", ""),
    ({"name": "-bad", "type": "A", "values": ["1.2.3.4"]}, "set[0].name", "label"),
]


@pytest.mark.parametrize(("record", "field", "words"), BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_bad_records_are_refused_and_change_nothing(
    api: Api, shop: str, record: dict[str, Any], field: str, words: str
) -> None:
    ok(
        api.call(
            "PUT",
            f"{INV}/domains/{shop}/records",
            json={"records": [{"name": "www", "type": "CNAME", "values": ["shop.test"]}]},
        )
    )
    before = ok(api.get(f"{INV}/domains/{shop}/records"))
    r = api.patch(f"{INV}/domains/{shop}/records", json={"set": [record]})
    assert r.status_code == 422, r.text
    problem = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert problem["field"] == field or problem["errors"][0]["field"] == field, problem
    assert words in problem["detail"], problem["detail"]
    assert ok(api.get(f"{INV}/domains/{shop}/records")) == before


def test_conflicts_across_records(api: Api, shop: str) -> None:
    r = api.call(
        "PUT",
        f"{INV}/domains/{shop}/records",
        json={
            "records": [
                {"name": "www", "type": "CNAME", "values": ["shop.test"]},
                {"name": "www", "type": "TXT", "values": ["x"]},
            ]
        },
    )
    assert r.status_code == 422 and "CNAME at www cannot stand beside" in r.json()["detail"]
    r = api.call(
        "PUT",
        f"{INV}/domains/{shop}/records",
        json={
            "records": [
                {"name": "a", "type": "A", "values": ["192.0.2.1"]},
                {"name": "a", "type": "A", "values": ["192.0.2.2"]},
            ]
        },
    )
    assert r.status_code == 422 and r.json()["field"] == "records[1]"
    r = api.patch(f"{INV}/domains/{shop}/records", json={"delete": [{"name": "x", "type": "A"}]})
    assert r.status_code == 422 and r.json()["field"] == "delete[0]"


def test_auto_configured_zone_answers_with_the_edge(api: Api) -> None:
    ok(api.post(f"{INV}/domains", json={"domain": "auto.test"}), 201)
    doc = ok(api.get(f"{INV}/domains/auto.test/records"))
    user = {(r["name"], r["type"]): r for r in doc["records"] if not r["managed"]}
    assert user[("@", "A")]["proxied"] and user[("www", "A")]["proxied"]
    assert user[("@", "CAA")]["values"] == [
        '0 issue "letsencrypt.org"',
        '0 issuewild "letsencrypt.org"',
    ]
    # No edge node yet: a proxied record has nothing to answer with.
    assert ("auto.test.", "LUA") not in rrsets(api, "auto.test")
    # With a node registered, the apex is a LUA record choosing among the nodes.
    edge = ok(api.post("/api/v1/tokens", json={"name": "fra-1", "scope": "edge"}), 201)["token"]
    node = {"name": "fra-1", "region": "eu-central", "address": "203.0.113.5"}
    ok(api.post("/api/v1/edge/nodes", json=node, token=edge))
    served = rrsets(api, "auto.test")
    lua = served[("auto.test.", "LUA")][0]
    assert lua.startswith('A ";') and "'203.0.113.5'" in lua and "latlon()" in lua
    assert served[("auto.test.", "NS")] == ("ns-fra-1.auto.test.",)
    assert served[("ns-fra-1.auto.test.", "A")] == ("203.0.113.5",)


def test_sdk_domain_service(api: Api) -> None:
    import asyncio

    from edgeplane import DNSRecord, DomainService
    from edgeplane.errors import Conflict, InvalidInput
    from edgeplane.sdk import embedded
    from edgeplane.sdk.client import Client
    from edgeplane.settings import Settings

    client = Client(Settings(home=api.tmp / "sdk", database_url=api.db.url))
    domains = DomainService(client=client)

    async def scenario() -> None:
        d = await domains.add_domain("default", "sdk.test", locked=True)
        assert d.status == "active" and d.locked and d.verification.method == "reserved"
        pending = await domains.add_domain("default", "sdk-owner.com")
        assert pending.status == "pending" and pending.verification.state == "pending"
        result = await domains.verify_domain("sdk.test", "dns")
        assert result.verified
        await domains.update_dns_records(
            "sdk.test", [DNSRecord(name="mail", type="A", values=["192.0.2.5"])]
        )
        records = await domains.get_dns_records("sdk.test")
        assert ("mail", "A") in {(r.name, r.type) for r in records.records}
        try:
            await domains.update_dns_records(
                "sdk.test", [{"name": "@", "type": "CNAME", "values": ["x.example"]}]
            )
        except InvalidInput as exc:
            assert exc.field == "set[0].type"
        else:
            raise AssertionError("a CNAME at the apex was accepted")
        status = await domains.get_domain_status("sdk.test")
        assert status.serial == records.serial and status.locked
        try:
            await domains.remove_domain("sdk.test")
        except Conflict as exc:
            assert exc.field == "locked"
        else:
            raise AssertionError("a locked domain was deleted")
        await domains.update_domain("sdk.test", locked=False, dnssec=True)
        assert (await domains.get_domain_status("sdk.test")).dnssec.ds
        await domains.remove_domain("sdk.test")
        assert [x.domain for x in await domains.list_domains()] == ["sdk-owner.com"]
        await client.aclose()

    try:
        asyncio.run(scenario())
    finally:
        app = embedded._apps.pop(api.db.url, None)
        if app is not None:
            app.state.db.dispose()


def test_a_node_reporting_itself_unhealthy_leaves_the_geo_answers_at_once(api: Api) -> None:
    ok(api.post(f"{INV}/domains", json={"domain": "health.test"}), 201)
    nodes = {}
    for name, region, address in (
        ("fra-1", "eu-central", "203.0.113.1"),
        ("iad-1", "us-east", "203.0.113.2"),
    ):
        token = ok(api.post("/api/v1/tokens", json={"name": name, "scope": "edge"}), 201)
        node = {"name": name, "region": region, "address": address}
        nodes[name] = (
            ok(api.post("/api/v1/edge/nodes", json=node, token=token["token"])),
            token["token"],
        )
    for node, token in nodes.values():
        r = api.post(f"/api/v1/edge/nodes/{node['id']}/heartbeat", json={}, token=token)
        assert r.status_code == 204, r.text
    listed = {n["name"]: n for n in ok(api.get("/api/v1/edge/nodes"))}
    assert listed["fra-1"]["live"] and listed["iad-1"]["live"]
    lua = rrsets(api, "health.test")[("health.test.", "LUA")][0]
    assert "'203.0.113.1'" in lua and "'203.0.113.2'" in lua
    before = zone(api, "health.test")
    assert [c.region for c in geo_answer(api, lua).candidates] == ["eu-central", "us-east"]

    node, token = nodes["fra-1"]
    body = {"healthy": False, "reason": "nginx down: port in use"}
    r = api.post(f"/api/v1/edge/nodes/{node['id']}/heartbeat", json=body, token=token)
    assert r.status_code == 204
    assert ok(api.get(f"/api/v1/edge/nodes/{node['id']}"))["live"] is False
    # The zone (its LUA record and serial) stays put; the geo answer of its record changes.
    assert zone(api, "health.test") == before
    answer = geo_answer(api, lua)
    assert [(c.region, c.addresses) for c in answer.candidates] == [("us-east", ("203.0.113.2",))]
    assert answer.everyone == ("203.0.113.2",)
    events = ok(api.get("/api/v1/audit", params={"kind": "edge-liveness", "include_global": True}))
    items = events.get("items", events.get("events", []))
    assert items and items[0]["after"] == {"live": ["iad-1"]}
    # A bad heartbeat is refused.
    r = api.post(
        f"/api/v1/edge/nodes/{node['id']}/heartbeat", json={"healthy": "maybe"}, token=token
    )
    assert r.status_code == 422


def test_acme_answers_travel_in_the_snapshot(api: Api) -> None:
    from edgeplane.certificates.acme import challenges as acme_challenges

    ok(api.post(f"{INV}/domains", json={"domain": "acme.test", "auto_configure": False}), 201)
    ok(
        api.call(
            "PUT",
            f"{INV}/domains/acme.test/records",
            json={"records": [{"name": "_acme-challenge", "type": "TXT", "values": ["mine"]}]},
        )
    )
    with api.db.transaction(LOCAL, "default") as tx:
        ids = [
            acme_challenges.publish(tx, "acme.test", "http-01", "tok_1", "tok_1.thumb"),
            acme_challenges.publish(tx, "acme.test", "dns-01", "_acme-challenge.acme.test", "v1"),
            acme_challenges.publish(tx, "acme.test", "dns-01", "_acme-challenge.acme.test", "v2"),
            acme_challenges.publish(
                tx, "acme.test", "dns-01", "_acme-challenge.www.acme.test", "v3"
            ),
        ]
    with api.db.read(LOCAL, "default") as tx:
        config = snapshot(load_state(tx.session, tx.secrets), NODE, 1)
    assert [(a.token, a.key_authorization) for a in config.acme_http] == [("tok_1", "tok_1.thumb")]
    served = rrsets(api, "acme.test")
    assert served[("_acme-challenge.acme.test.", "TXT")] == ('"mine"', '"v1"', '"v2"')
    assert served[("_acme-challenge.www.acme.test.", "TXT")] == ('"v3"',)
    with api.db.transaction(LOCAL, "default") as tx:
        assert acme_challenges.remove(tx, ids) == 4
    served = rrsets(api, "acme.test")
    assert served[("_acme-challenge.acme.test.", "TXT")] == ('"mine"',)
    assert ("_acme-challenge.www.acme.test.", "TXT") not in served
