"""Certificates end to end: Pebble (the ACME test CA) resolves every name through Edgeplane's
own DNS and validates HTTP-01 through the edge's HTTP port; the edge then serves the
certificate over TLS 1.3. Two edge nodes (agent, nginx, PowerDNS each); Pebble rejects 30% of
nonces throughout.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from edge_agents import Api, EdgeAgent, new_agent, searchable_tmp, wait_for
from pebble import Pebble, running_pebble
from processes import ControlPlane, clean_env, free_port, free_udp_port, start_up

pytestmark = pytest.mark.integration

INV = "/api/v1/infrastructure"
NODES = {"eu": ("eu-central", "127.0.0.2"), "us": ("us-east", "127.0.0.3")}


@dataclass
class World:
    cp: ControlPlane
    api: Api
    pebble: Pebble
    nodes: dict[str, EdgeAgent]
    http_port: int
    https_port: int


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    tmp = searchable_tmp("certificates-")
    http_port, https_port = free_port(), free_port()
    dns_ports = {k: free_udp_port(address) for k, (_r, address) in NODES.items()}
    agents: list[EdgeAgent] = []
    cp: ControlPlane | None = None
    try:
        with running_pebble(
            tmp,
            http_port=http_port,
            dns_server=f"{NODES['eu'][1]}:{dns_ports['eu']}",
            nonce_reject=30,
        ) as pebble:
            env = clean_env(
                EDGEPLANE_ACME_DIRECTORY=pebble.directory_url,
                EDGEPLANE_ACME_CA_BUNDLE=pebble.ca_bundle,
                EDGEPLANE_ACME_EMAIL="ops@example.org",
                EDGEPLANE_DNS_RESOLVERS="127.0.0.1:9",
            )
            cp = start_up(tmp / "cp", env=env)
            api = Api(cp)
            nodes: dict[str, EdgeAgent] = {}
            for key, (region, address) in NODES.items():
                agent = new_agent(cp, api, tmp, f"edge-{key}")
                agent.http_port, agent.https_port = http_port, https_port
                agent.region, agent.bind, agent.dns_port = region, address, dns_ports[key]
                nodes[key] = agent.start()
                agents.append(agent)
            wait_for(
                lambda: len([n for n in api.nodes() if n["live"]]) == len(NODES) or None,
                30,
                "live edge nodes",
            )
            yield World(cp, api, pebble, nodes, http_port, https_port)
            api.close()
    finally:
        for agent in agents:
            agent.stop()
        if cp is not None:
            cp.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def handshake(
    world: World, node: str, name: str, roots: str | None = None
) -> tuple[str, str] | None:
    """(TLS version, SHA-256 fingerprint of the leaf) of a real handshake with the node for
    ``name``, trusting Pebble's roots only; None when the certificate does not verify."""
    context = ssl.create_default_context(cadata=roots or world.pebble.roots_pem())
    address = world.nodes[node].bind
    try:
        with (
            socket.create_connection((address, world.https_port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=name) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
            version = str(tls.version())
    except (ssl.SSLError, OSError):
        return None
    assert der is not None
    leaf = x509.load_der_x509_certificate(der)
    return version, leaf.fingerprint(hashes.SHA256()).hex()


def serves(
    world: World, node: str, name: str, fingerprint: str, roots: str | None = None
) -> str | None:
    """The TLS version once the node serves the certificate ``fingerprint`` for ``name``."""
    got = handshake(world, node, name, roots)
    return got[0] if got is not None and got[1] == fingerprint else None


def provision(world: World, domain: str, **body: Any) -> Any:
    return world.api.http.post(f"{INV}/ssl/{domain}", json=body, timeout=120)


def test_http01_certificate_served_over_tls13_by_every_node(world: World) -> None:
    world.api.ok("POST", f"{INV}/domains", json={"domain": "shop.test"})
    started = time.monotonic()
    r = provision(world, "shop.test", type="lets_encrypt")
    assert r.status_code == 201, r.text
    took = time.monotonic() - started
    doc = r.json()
    cert = doc["certificate"]
    assert cert["issuer"] == "lets_encrypt" and cert["names"] == ["shop.test", "www.shop.test"]
    assert doc["expires_at"] == cert["not_after"]
    for node in world.nodes:
        version = wait_for(
            lambda n=node: serves(world, n, "www.shop.test", cert["fingerprint"]),
            10,
            f"the new certificate on {node}",
        )
        assert version == "TLSv1.3"
    print(f"\nHTTP-01 order answered by the edge: certificate stored after {took:.2f} s")
    status = world.api.ok("GET", f"{INV}/ssl/shop.test")
    assert status["status"] == "active" and status["certificate"]["id"] == cert["id"]
    # The challenge answers are gone from the snapshot once the order is done.
    r = world.nodes["eu"].get("shop.test", "/.well-known/acme-challenge/none")
    assert r.status_code == 404


def test_dns01_issues_a_wildcard(world: World) -> None:
    world.api.ok("POST", f"{INV}/domains", json={"domain": "wild.test"})
    r = provision(world, "wild.test", wildcard=True, include_www=False)
    assert r.status_code == 201, r.text
    cert = r.json()["certificate"]
    assert cert["names"] == ["*.wild.test", "wild.test"]
    version = wait_for(
        lambda: serves(world, "us", "anything.wild.test", cert["fingerprint"]),
        10,
        "the wildcard certificate served",
    )
    assert version == "TLSv1.3"
    records = world.api.ok("GET", f"{INV}/domains/wild.test/records")["records"]
    assert not [r for r in records if r["name"].startswith("_acme-challenge")]


def test_unverified_domains_get_no_certificate(world: World) -> None:
    world.api.ok("POST", f"{INV}/domains", json={"domain": "not-mine.com"})
    r = provision(world, "not-mine.com")
    assert r.status_code == 409, r.text
    assert "not verified" in r.json()["detail"] and r.json()["field"] == "domain"
    assert world.api.ok("GET", f"{INV}/ssl/not-mine.com")["status"] == "none"


def test_ca_down_fails_clearly_and_the_old_certificate_stays(world: World) -> None:
    world.api.ok("POST", f"{INV}/domains", json={"domain": "steady.test"})
    first = provision(world, "steady.test")
    assert first.status_code == 201, first.text
    old = first.json()["certificate"]
    roots = world.pebble.roots_pem()  # a restarted Pebble signs with a new root
    world.pebble.stop()
    try:
        r = world.api.http.post(f"{INV}/ssl/steady.test/renew", timeout=120)
        assert r.status_code == 502, r.text
        problem = r.json()
        assert problem["reason"] == "unreachable" and "unreachable" in problem["detail"]
        assert wait_for(
            lambda: serves(world, "eu", "steady.test", old["fingerprint"], roots), 10, "the old one"
        )
    finally:
        world.pebble.start()
    renewed = world.api.http.post(f"{INV}/ssl/steady.test/renew", timeout=120)
    assert renewed.status_code == 201, renewed.text
    assert renewed.json()["certificate"]["id"] != old["id"]


def test_revoke_rolls_back_to_the_previous_version(world: World) -> None:
    world.api.ok("POST", f"{INV}/domains", json={"domain": "roll.test"})
    internal = world.api.ok("GET", f"{INV}/ssl/roll.test")["certificate"]
    assert internal["issuer"] == "internal"
    acme = provision(world, "roll.test", include_www=False).json()["certificate"]
    revoked = world.api.ok("POST", f"{INV}/ssl/roll.test/revoke", json={})
    assert revoked["id"] == acme["id"] and revoked["status"] == "revoked"
    assert world.api.ok("GET", f"{INV}/ssl/roll.test")["certificate"]["id"] == internal["id"]


def test_cli_cert_issue_shows_the_order_progress(world: World) -> None:
    import subprocess
    import sys
    from pathlib import Path

    edgeplane = str(Path(sys.executable).parent / "edgeplane")
    env = clean_env(EDGEPLANE_URL=world.cp.url, EDGEPLANE_TOKEN=world.cp.token, COLUMNS="200")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [edgeplane, *args], env=env, capture_output=True, text=True, timeout=120
        )

    assert run("domain", "add", "cli.test").returncode == 0
    done = run("cert", "issue", "cli.test", "--no-www")
    assert done.returncode == 0, done.stderr
    assert "lets_encrypt certificate" in done.stdout and "cli.test" in done.stdout
    for step in ("order accepted", "valid", "stored"):
        assert step in done.stderr, done.stderr
    status = run("cert", "status", "cli.test")
    assert "lets_encrypt" in status.stdout and "renewal due" in status.stdout
    refused = run("cert", "issue", "not-verified.com")
    assert refused.returncode == 1 and "not found" in refused.stderr
    run("domain", "add", "not-verified.com")
    refused = run("cert", "issue", "not-verified.com")
    assert refused.returncode == 1 and "not verified" in refused.stderr


def test_a_failed_validation_is_reported_and_every_answer_removed(world: World) -> None:
    world.api.ok("POST", f"{INV}/domains", json={"domain": "nowww.test", "auto_configure": False})
    world.api.ok(
        "PUT",
        f"{INV}/domains/nowww.test/records",
        json={"records": [{"name": "@", "type": "A", "proxied": True}]},
    )
    r = provision(world, "nowww.test", include_www=True)  # www.nowww.test does not resolve
    assert r.status_code == 502, r.text
    problem = r.json()
    assert problem["reason"] == "invalid" and "www.nowww.test" in problem["detail"], problem
    for node in world.nodes.values():
        wait_for(
            lambda n=node: not any((n.prefix / "acme-challenge").iterdir()) or None,
            10,
            f"the HTTP-01 answers removed from {node.name}",
        )
    assert world.api.ok("GET", f"{INV}/ssl/nowww.test")["certificate"]["issuer"] == "internal"
    # DNS-01 needs no address for www: the answers are TXT records in the zone, removed after.
    r = provision(world, "nowww.test", include_www=True, challenge="dns-01")
    assert r.status_code == 201, r.text
    records = world.api.ok("GET", f"{INV}/domains/nowww.test/records")["records"]
    assert not [x for x in records if x["name"].startswith("_acme-challenge")]
