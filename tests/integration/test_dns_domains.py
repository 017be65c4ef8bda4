"""Domains and DNS end to end: a real control plane, three edge nodes (agent, nginx and
PowerDNS each) in three regions on their own loopback addresses, a second PowerDNS playing the
domains' current DNS provider (and the world's resolver), and a real SMTP server.

Every DNS answer is a dnspython query over the network to a node's PowerDNS.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dns.dnssec
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import httpx
import pytest
from edge_agents import Api, EdgeAgent, new_agent, searchable_tmp, wait_for
from pdns import query, running_pdns, zone_spec
from processes import ControlPlane, clean_env, free_port, free_udp_port, start_up
from smtp_sink import Mailbox

from edgeplane.node.powerdns.engine import DnsEngine
from edgeplane.node.powerdns.process import PdnsProcess

pytestmark = pytest.mark.integration

INV = "/api/v1/infrastructure"
REGIONS = {
    "eu": ("eu-central", "127.0.0.2"),
    "us": ("us-east", "127.0.0.3"),
    "ap": ("ap-northeast", "127.0.0.4"),
}
# Client subnets (EDNS Client Subnet) in each area, located by the packaged GeoLite2-City.
EU_SUBNET, US_SUBNET, ASIA_SUBNET = "81.2.69.0", "8.8.8.0", "133.242.0.0"
SPREAD = [
    "81.2.69.142",
    "89.160.20.112",
    "2.16.0.1",
    "8.8.8.8",
    "216.160.83.56",
    "1.1.1.1",
    "133.242.0.1",
    "61.213.0.1",
    "175.45.176.1",
    "103.1.1.1",
    "27.121.0.1",
    "180.76.76.76",
    "58.14.0.1",
    "41.0.0.1",
    "200.160.2.3",
    "5.255.0.1",
    "77.88.8.8",
    "62.210.0.1",
    "185.60.216.35",
    "150.95.0.1",
]


@dataclass
class World:
    cp: ControlPlane
    api: Api
    provider: PdnsProcess
    provider_engine: DnsEngine
    nodes: dict[str, EdgeAgent]
    mailbox: Mailbox
    http_port: int
    provider_zones: dict[str, dict[tuple[str, str], list[str]]] = field(default_factory=dict)

    def publish(self, zone: str, records: dict[tuple[str, str], list[str]]) -> None:
        """Serve ``records`` in the provider's zone ``zone`` (with its NS and glue)."""
        base = {("ns1", "A"): ["127.0.0.1"]}
        self.provider_zones[zone] = {**base, **records}
        serial = int(time.time() * 1000) % 2_000_000_000
        specs = tuple(
            zone_spec(f"{z}.", serial, recs) for z, recs in sorted(self.provider_zones.items())
        )
        result = self.provider_engine.apply(specs)
        assert result.ok, result.error

    def dns(self, region: str) -> PdnsProcess:
        """A stand-in with the address and port of a node's DNS server, for ``query``."""
        node = self.nodes[region]
        return _Endpoint(node.bind, node.dns_port)  # type: ignore[return-value]


@dataclass
class _Endpoint:
    dns_address: str
    dns_port: int


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    from aiosmtpd.controller import Controller

    tmp = searchable_tmp("dns-domains-")
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    agents: list[EdgeAgent] = []
    cp: ControlPlane | None = None
    try:
        with running_pdns(tmp, "provider") as provider:
            http_port = free_port()
            env = clean_env(
                EDGEPLANE_DNS_RESOLVERS=f"127.0.0.1:{provider.dns_port}",
                EDGEPLANE_VERIFY_NS_PORT=str(provider.dns_port),
                EDGEPLANE_VERIFY_HTTP_PORT=str(http_port),
                EDGEPLANE_SMTP_HOST="127.0.0.1",
                EDGEPLANE_SMTP_PORT=str(smtp.port),
                EDGEPLANE_NODE_TIMEOUT="3",
            )
            cp = start_up(tmp / "cp", env=env)
            api = Api(cp)
            nodes: dict[str, EdgeAgent] = {}
            for key, (region, address) in REGIONS.items():
                agent = new_agent(cp, api, tmp, f"edge-{key}")
                agent.http_port = http_port
                agent.region = region
                agent.bind = address
                agent.dns_port = free_udp_port(address)
                agent.extra_args = ["--resolver", f"127.0.0.1:{provider.dns_port}"]
                nodes[key] = agent.start()
                agents.append(agent)
            wait_for(
                lambda: len([n for n in api.nodes() if n["live"]]) == 3 or None,
                30,
                "three live edge nodes",
            )
            yield World(cp, api, provider, DnsEngine(provider), nodes, mailbox, http_port)
            api.close()
    finally:
        for agent in agents:
            agent.stop()
        if cp is not None:
            cp.stop()
        smtp.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def a_answers(node: Any, name: str, *, ecs: str | None = None) -> list[str]:
    msg = query(node, name, "A", ecs=ecs)
    return sorted(
        r.to_text() for rrset in msg.answer if rrset.rdtype == dns.rdatatype.A for r in rrset
    )


def geo_serves(agent: EdgeAgent, *names: str) -> bool:
    """The node's PowerDNS answers ``names`` from its geoip backend (not LUA): they are in
    the zones file it read last (``edgeplane.node.powerdns.geo``)."""
    folder = agent.home / "edge" / agent.name / "pdns"
    try:
        text = (folder / "geo.yaml").read_text()
        status = json.loads((folder / "geo-status.json").read_text())
    except (OSError, ValueError):
        return False
    if status.get("zones_sha") != hashlib.sha256(text.encode()).hexdigest():
        return False  # written, not read yet
    return all(f"\n    '{n.rstrip('.')}.': *" in text for n in names)


def wait_geo(world: World, *names: str, timeout: float = 300) -> None:
    """Every node answers ``names`` from the geoip backend (the first run on a machine
    builds the ranking database: up to a few minutes)."""
    wait_for(
        lambda: all(geo_serves(a, *names) for a in world.nodes.values()) or None,
        timeout,
        f"{', '.join(names)} answered by the geoip backend of every node",
    )


def add_domain(world: World, domain: str, **body: Any) -> dict[str, Any]:
    doc = world.api.ok("POST", f"{INV}/domains", json={"domain": domain, **body})
    return dict(doc)


def verify(world: World, domain: str, **body: Any) -> dict[str, Any]:
    return dict(world.api.ok("POST", f"{INV}/domains/{domain}/verify", json=body))


def edge_answer(world: World, domain: str) -> httpx.Response:
    return world.nodes["eu"].get(domain, "/")


# Ownership --------------------------------------------------------------------------------


def test_dns_verification_needs_the_token_at_the_current_provider(world: World) -> None:
    domain = "acme-widgets.com"
    added = add_domain(world, domain)
    assert added["verification_required"] is True
    config = added["domain_config"]
    assert config["status"] == "pending" and config["verification"]["state"] == "pending"
    token = config["verification"]["token"]
    world.publish(domain, {("@", "A"): ["127.0.0.2"]})
    # Not served by the edge while unverified.
    assert edge_answer(world, domain).text == "unknown host\n"

    missing = verify(world, domain, method="dns")
    assert missing["verified"] is False
    assert "_edgeplane-challenge.acme-widgets.com" in missing["reason"], missing["reason"]
    assert missing["dns_records"][0]["values"] == [f'"{token}"']

    world.publish(domain, {("_edgeplane-challenge", "TXT"): ['"not-the-token"']})
    wrong = verify(world, domain, method="dns")
    assert wrong["verified"] is False and "not-the-token" in wrong["reason"], wrong["reason"]
    assert world.api.ok("GET", f"{INV}/domains/{domain}")["status"] == "pending"

    world.publish(domain, {("_edgeplane-challenge", "TXT"): [f'"{token}"']})
    ok = verify(world, domain, method="dns")
    assert ok["verified"] is True, ok["reason"]
    assert ok["domain_config"]["status"] == "active"
    assert ok["domain_config"]["certificate"] is not None
    # Served by the edge once verified (no origin configured: 502 from the edge itself).
    served = wait_for(
        lambda: r if (r := edge_answer(world, domain)).text != "unknown host\n" else None,
        10,
        "the verified domain served by the edge",
    )
    assert served.status_code == 502 and served.headers["X-Served-By"] == "edge-eu"


def test_file_verification_only_when_the_edge_serves_the_token(world: World) -> None:
    domain = "file-proof.net"
    config = add_domain(world, domain)["domain_config"]
    token = config["verification"]["token"]
    assert config["verification"]["file_url"].endswith(
        f"/.well-known/edgeplane-verification/{token}"
    )
    world.publish(domain, {("@", "A"): ["127.0.0.9"]})  # not the edge: nothing listens there
    away = verify(world, domain, method="file")
    assert away["verified"] is False and "127.0.0.9" in away["reason"], away["reason"]

    world.publish(domain, {("@", "A"): ["127.0.0.2"]})  # now at the eu edge node
    path = f"/.well-known/edgeplane-verification/{token}"
    wait_for(
        lambda: world.nodes["eu"].get(domain, path).status_code == 200 or None,
        10,
        "the edge serving the token",
    )
    assert world.nodes["eu"].get(domain, path).text.strip() == token
    assert world.nodes["eu"].get(domain, path + "x").status_code == 404
    ok = verify(world, domain, method="file")
    assert ok["verified"] is True, ok["reason"]


def test_email_verification_with_the_code_sent(world: World) -> None:
    domain = "mail-proof.org"
    add_domain(world, domain)
    before = len(world.mailbox.messages)
    sent = verify(world, domain, method="email")
    assert sent["verified"] is False and "admin@mail-proof.org" in sent["reason"], sent["reason"]
    recipients, body = wait_for(
        lambda: world.mailbox.messages[before] if len(world.mailbox.messages) > before else None,
        10,
        "the code mailed",
    )
    assert "hostmaster@mail-proof.org" in recipients and "admin@mail-proof.org" in recipients
    code = re.search(r"\b(\d{8})\b", body)
    assert code is not None, body
    wrong = verify(
        world,
        domain,
        method="email",
        code="00000000" if code.group(1) != "00000000" else "11111111",
    )
    assert wrong["verified"] is False and "does not match" in wrong["reason"]
    ok = verify(world, domain, method="email", code=code.group(1))
    assert ok["verified"] is True and ok["domain_config"]["status"] == "active"


# Records ----------------------------------------------------------------------------------


def serial_of(world: World, region: str, zone: str) -> int | None:
    msg = query(world.dns(region), zone, "SOA")
    for rrset in msg.answer:
        if rrset.rdtype == dns.rdatatype.SOA:
            return int(rrset[0].serial)
    return None


def test_records_are_answered_by_every_node_and_bad_ones_change_nothing(world: World) -> None:
    zone = "records.test"
    add_domain(world, zone, auto_configure=False)
    records = [
        {"name": "@", "type": "A", "ttl": 120, "values": ["192.0.2.10"]},
        {"name": "www", "type": "CNAME", "values": ["records.test"]},
        {"name": "@", "type": "MX", "values": ["10 mail.records.test"]},
        {"name": "mail", "type": "AAAA", "values": ["2001:DB8::25"]},
        {"name": "@", "type": "TXT", "values": ["v=spf1 mx -all"]},
        {"name": "_sip._tcp", "type": "SRV", "values": ["10 5 5060 sip.records.test"]},
        {"name": "@", "type": "CAA", "values": ['0 issue "letsencrypt.org"']},
        {"name": "sub", "type": "NS", "values": ["ns1.elsewhere.example"]},
    ]
    doc = world.api.ok("PUT", f"{INV}/domains/{zone}/records", json={"records": records})
    serial = doc["serial"]
    managed = {(r["name"], r["type"]) for r in doc["records"] if r["managed"]}
    assert {("@", "SOA"), ("@", "NS"), ("_edgeplane-challenge", "TXT")} <= managed

    def everywhere() -> bool | None:
        return all(serial_of(world, k, zone) == serial for k in world.nodes) or None

    wait_for(everywhere, 5, "the new serial on every node")
    for key in world.nodes:
        node = world.dns(key)
        assert a_answers(node, "records.test") == ["192.0.2.10"]
        cname = query(node, "www.records.test", "CNAME").answer
        assert cname and cname[0][0].to_text() == "records.test."
        assert [r.to_text() for r in query(node, "records.test", "MX").answer[0]] == [
            "10 mail.records.test."
        ]
        assert query(node, "mail.records.test", "AAAA").answer[0][0].to_text() == "2001:db8::25"
        assert query(node, "records.test", "TXT").answer[0][0].to_text() == '"v=spf1 mx -all"'
        srv = query(node, "_sip._tcp.records.test", "SRV").answer[0][0]
        assert (srv.priority, srv.weight, srv.port) == (10, 5, 5060)
        ns = query(node, "records.test", "NS").answer[0]
        assert sorted(r.to_text() for r in ns) == [
            "ns-edge-ap.records.test.",
            "ns-edge-eu.records.test.",
            "ns-edge-us.records.test.",
        ]

    bad = [
        ({"name": "@", "type": "CNAME", "values": ["other.example"]}, "set[0].type"),
        ({"name": "api", "type": "A", "ttl": 0, "values": ["192.0.2.1"]}, "set[0].ttl"),
        ({"name": "api", "type": "A", "values": ["192.0.2.300"]}, "set[0].values[0]"),
        ({"name": "api.other.example.", "type": "A", "values": ["192.0.2.1"]}, "set[0].name"),
        ({"name": "www", "type": "A", "values": ["192.0.2.1"]}, "set[0]"),  # beside the CNAME
    ]
    before = world.api.ok("GET", f"{INV}/domains/{zone}/records")
    for record, where in bad:
        r = world.api.http.patch(f"{INV}/domains/{zone}/records", json={"set": [record]})
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["field"] == where, r.json()
    assert world.api.ok("GET", f"{INV}/domains/{zone}/records") == before
    time.sleep(0.3)
    assert all(serial_of(world, k, zone) == serial for k in world.nodes)
    assert a_answers(world.dns("us"), "api.records.test") == []

    # A valid change is served by every node within a second or so.
    started = time.monotonic()
    world.api.ok(
        "PATCH",
        f"{INV}/domains/{zone}/records",
        json={"set": [{"name": "api", "type": "A", "values": ["192.0.2.20"]}]},
    )
    wait_for(
        lambda: (
            all(a_answers(world.dns(k), "api.records.test") == ["192.0.2.20"] for k in world.nodes)
            or None
        ),
        5,
        "the new record on every node",
    )
    assert time.monotonic() - started < 5


def test_alias_at_the_apex_answers_the_targets_addresses(world: World) -> None:
    world.publish("alias-target.net", {("cdn", "A"): ["192.0.2.77"]})
    add_domain(world, "alias.test", auto_configure=False)
    world.api.ok(
        "PUT",
        f"{INV}/domains/alias.test/records",
        json={"records": [{"name": "@", "type": "ALIAS", "values": ["cdn.alias-target.net"]}]},
    )
    for key in world.nodes:
        wait_for(
            lambda k=key: a_answers(world.dns(k), "alias.test") == ["192.0.2.77"] or None,
            5,
            f"the ALIAS expanded on {key}",
        )


# GeoDNS -----------------------------------------------------------------------------------


def test_geodns_answers_with_the_nearest_region_and_agrees_with_route_request(
    world: World,
) -> None:
    zone = "geo.test"
    add_domain(world, zone)  # auto-configured: apex and www proxied
    eu, us, ap = (REGIONS[k][1] for k in ("eu", "us", "ap"))

    def served() -> dict[str, list[str]] | None:
        seen = {k: a_answers(world.dns(k), zone, ecs=EU_SUBNET) for k in world.nodes}
        assert all(v == [eu] for v in seen.values()), seen
        return seen

    wait_for(served, 5, "the geo zone on every node")
    wait_geo(world, zone, f"www.{zone}")  # from here on, answered without Lua
    for key in world.nodes:
        node = world.dns(key)
        assert a_answers(node, zone, ecs=US_SUBNET) == [us]
        assert a_answers(node, f"www.{zone}", ecs=ASIA_SUBNET) == [ap]
        msg = query(node, zone, "A", ecs=EU_SUBNET)
        assert msg.answer[0].ttl == 30

    # The same decision as route_request, for servers in the same three locations.
    areas = {"eu": "europe", "us": "americas", "ap": "asia_pacific"}
    for key, (region, _address) in REGIONS.items():
        world.api.ok(
            "POST",
            f"{INV}/servers",
            json={
                "id": f"geo-{key}",
                "name": f"geo-{key}",
                "type": "edge",
                "region": areas[key],
                "location": region,
                "capacity": {"cpu": 16, "memory": 64, "storage": 500},
            },
        )
        world.api.ok("POST", f"{INV}/services", json={"server_id": f"geo-{key}", "type": "cdn"})
    by_address = {address: region for region, address in REGIONS.values()}
    # with addresses whose record has a (registered) country and no coordinates: both place
    # them at their country's point (JP, KR: ap-northeast; FR: eu-central)
    for ip in [*SPREAD, "157.10.0.1", "103.89.44.1", "84.22.67.1"]:
        decision = world.api.ok(
            "GET", f"{INV}/route", params={"client_ip": ip, "service_type": "cdn"}
        )
        answered = a_answers(world.dns("us"), zone, ecs=ip)
        assert len(answered) == 1, (ip, answered)
        assert by_address[answered[0]] == decision["server"]["location"], (ip, decision["reason"])


def test_dnssec_signed_answers_validate(world: World) -> None:
    zone = "signed.test"
    add_domain(world, zone, dnssec=True)
    status = world.api.ok("GET", f"{INV}/domains/{zone}/status")
    assert status["dnssec"]["enabled"] and status["dnssec"]["ds"]
    name = dns.name.from_text(zone)
    node = world.dns("eu")

    def keys() -> dns.rrset.RRset | None:
        msg = query(node, zone, "DNSKEY", dnssec=True)
        found = [r for r in msg.answer if r.rdtype == dns.rdatatype.DNSKEY]
        return found[0] if found else None

    dnskey = wait_for(keys, 5, "the DNSKEY served")
    wait_geo(world, zone)
    ds = dns.dnssec.make_ds(name, dnskey[0], "SHA256")
    assert ds.to_text() in status["dnssec"]["ds"][0] or status["dnssec"]["ds"][0].endswith(
        ds.to_text()
    )
    for key in world.nodes:

        def signed(key: str = key) -> tuple[dns.rrset.RRset, dns.rrset.RRset] | None:
            msg = query(world.dns(key), zone, "A", ecs=EU_SUBNET, dnssec=True)
            a = [r for r in msg.answer if r.rdtype == dns.rdatatype.A]
            sig = [r for r in msg.answer if r.rdtype == dns.rdatatype.RRSIG]
            return (a[0], sig[0]) if a and sig else None

        # Every node signs once its own DNS server has the key (each applies on its own).
        a, sig = wait_for(signed, 5, f"a signed answer from {key}")
        dns.dnssec.validate(a, sig, {name: dnskey})  # raises when it does not validate
        assert [r.to_text() for r in a] == [REGIONS["eu"][1]]
    # Turned off again: no more signatures.
    world.api.ok("PATCH", f"{INV}/domains/{zone}", json={"dnssec": False})
    wait_for(lambda: keys() is None or None, 5, "the zone unsigned")


def test_domain_status_shows_the_serial_of_every_node(world: World) -> None:
    zone = "status.test"
    add_domain(world, zone)

    def synced() -> dict[str, Any] | None:
        doc = world.api.ok("GET", f"{INV}/domains/{zone}/status")
        return doc if all(n["in_sync"] for n in doc["nodes"]) and doc["nodes"] else None

    doc = wait_for(synced, 10, "every node serving the zone's serial")
    assert {n["name"] for n in doc["nodes"]} == {"edge-eu", "edge-us", "edge-ap"}
    assert all(n["serial"] == doc["serial"] and n["live"] for n in doc["nodes"])
    assert doc["verification"]["state"] == "verified" and doc["certificate_status"] == "active"
    locked = world.api.ok("PATCH", f"{INV}/domains/{zone}", json={"locked": True})
    assert locked["locked"] is True
    r = world.api.http.delete(f"{INV}/domains/{zone}")
    assert r.status_code == 409 and r.json()["field"] == "locked"
    world.api.ok("PATCH", f"{INV}/domains/{zone}", json={"locked": False})
    assert world.api.http.delete(f"{INV}/domains/{zone}").status_code == 204
    wait_for(
        lambda: (
            all(query(world.dns(k), zone, "SOA").rcode() == dns.rcode.REFUSED for k in world.nodes)
            or None
        ),
        5,
        "the zone gone from every node",
    )


def _fetched(agent: EdgeAgent) -> tuple[int, int]:
    """(objects fetched, DNS applies of zones) as the agent's log tells them."""
    out = agent.output()
    fetched = sum(int(n) for n in re.findall(r"fetched (\d+) objects for revision", out))
    return fetched, len(re.findall(r"DNS: \d+ zones served", out))


def test_a_stopped_region_leaves_the_answers_within_10_s(world: World) -> None:
    """Last in the module: it stops the eu node. The live set changes the geo answers alone:
    no zone's serial, no zone object fetched, no zone applied on the other nodes."""
    zone = "failover.test"
    add_domain(world, zone)
    eu, us = REGIONS["eu"][1], REGIONS["us"][1]
    wait_for(
        lambda: a_answers(world.dns("us"), zone, ecs=EU_SUBNET) == [eu] or None,
        5,
        "the zone served",
    )
    wait_geo(world, zone)

    def settled() -> dict[str, Any] | None:
        doc = world.api.ok("GET", f"{INV}/domains/{zone}/status")
        nodes = world.api.nodes()
        done = doc["certificate_status"] == "active" and all(n["in_sync"] for n in nodes)
        return doc if done and all(n["in_sync"] for n in doc["nodes"]) else None

    wait_for(settled, 30, "the domain's certificate issued and every node in sync")
    others = ("us", "ap")
    listed = world.api.ok("GET", f"{INV}/domains")["domains"]
    zones = [d["domain"] for d in listed if d["status"] == "active"]
    serials = {(k, z): serial_of(world, k, z) for k in others for z in zones}
    assert serials[("us", zone)] and all(serials.values()), serials
    before = {k: _fetched(world.nodes[k]) for k in others}
    world.nodes["eu"].stop(signal.SIGTERM)
    stopped = time.monotonic()
    moved = wait_for(
        lambda: a_answers(world.dns("us"), zone, ecs=EU_SUBNET) == [us] or None,
        10,
        "EU clients sent to us-east once eu-central is down",
    )
    assert moved
    took = time.monotonic() - stopped
    print(f"\neu-central stopped: EU clients answered with us-east after {took:.2f} s")
    assert took < 10
    wait_for(
        lambda: a_answers(world.dns("ap"), zone, ecs=EU_SUBNET) == [us] or None,
        max(0.1, 10 - (time.monotonic() - stopped)),
        "ap-northeast too",
    )
    nodes = {n["name"]: n for n in world.api.nodes()}
    assert nodes["edge-eu"]["live"] is False

    def in_sync() -> bool | None:
        now = {n["name"]: n for n in world.api.nodes()}
        return all(now[f"edge-{k}"]["in_sync"] for k in others) or None

    wait_for(in_sync, 10, "us and ap in sync with the revision of the new live set")
    # No zone changed: the same serials over DNS, no object fetched, no zone applied.
    assert {(k, z): serial_of(world, k, z) for k in others for z in zones} == serials
    assert {k: _fetched(world.nodes[k]) for k in others} == before
