"""Renewal on its own: Pebble issues 30-second certificates, the control plane's renewal loop
renews them at two thirds of their lifetime while HTTPS requests keep coming (none fails),
a CA that is down makes the attempt fail with a clear status and a retry later, and the old
certificate is served meanwhile. Alerts are raised and POSTed to a webhook.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from edge_agents import Api, EdgeAgent, new_agent, searchable_tmp, wait_for
from origins import start_origin
from pebble import Pebble, running_pebble
from processes import ControlPlane, clean_env, free_port, free_udp_port, start_up

pytestmark = [pytest.mark.integration, pytest.mark.serial]

INV = "/api/v1/infrastructure"
ADDRESS = "127.0.0.2"
VALIDITY_S = 30


@dataclass
class Webhook:
    received: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0


@dataclass
class World:
    cp: ControlPlane
    api: Api
    pebble: Pebble
    node: EdgeAgent
    https_port: int
    webhook: Webhook


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    tmp = searchable_tmp("cert-renewal-")
    http_port, https_port, dns_port = free_port(), free_port(), free_udp_port(ADDRESS)
    hook = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            hook.received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = start_origin("app")
    agent: EdgeAgent | None = None
    cp: ControlPlane | None = None
    try:
        with running_pebble(
            tmp, http_port=http_port, dns_server=f"{ADDRESS}:{dns_port}", validity_s=VALIDITY_S
        ) as pebble:
            env = clean_env(
                EDGEPLANE_ACME_DIRECTORY=pebble.directory_url,
                EDGEPLANE_ACME_CA_BUNDLE=pebble.ca_bundle,
                EDGEPLANE_DNS_RESOLVERS="127.0.0.1:9",
                EDGEPLANE_RENEW_INTERVAL="1",
                EDGEPLANE_RENEW_RETRY="2",
                EDGEPLANE_ALERT_WEBHOOK=f"http://127.0.0.1:{hook.port}/alerts",
            )
            cp = start_up(tmp / "cp", env=env)
            api = Api(cp)
            agent = new_agent(cp, api, tmp, "edge-r")
            agent.http_port, agent.https_port = http_port, https_port
            agent.region, agent.bind, agent.dns_port = "eu-central", ADDRESS, dns_port
            agent.start()
            wait_for(lambda: any(n["live"] for n in api.nodes()) or None, 30, "a live node")
            api.ok(
                "POST",
                f"{INV}/cdn",
                json={"origins": [{"url": origin.url}], "security": {"force_https": False}},
            )
            yield World(cp, api, pebble, agent, https_port, hook)
            api.close()
    finally:
        if agent is not None:
            agent.stop()
        if cp is not None:
            cp.stop()
        origin.terminate()
        server.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


def fetch(world: World, roots: str, name: str) -> tuple[int, str]:
    """(HTTP status, fingerprint of the certificate) of one GET / on a new TLS connection."""
    context = ssl.create_default_context(cadata=roots)
    with (
        socket.create_connection((ADDRESS, world.https_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
        head = tls.recv(64).decode("latin-1")
    status = int(head.split()[1])
    return status, x509.load_der_x509_certificate(der).fingerprint(hashes.SHA256()).hex()


def fingerprint_served(world: World, roots: str, name: str) -> str | None:
    try:
        return fetch(world, roots, name)[1]
    except (OSError, ssl.SSLError):
        return None


def key_served(world: World, roots: str, name: str) -> bytes:
    """The public key (SubjectPublicKeyInfo, DER) of the certificate served for ``name``."""
    context = ssl.create_default_context(cadata=roots)
    with (
        socket.create_connection((ADDRESS, world.https_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return (
        x509.load_der_x509_certificate(der)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def served_id(world: World, domain: str) -> str | None:
    cert = world.api.ok("GET", f"{INV}/ssl/{domain}")["certificate"]
    return cert["id"] if cert and cert["issuer"] == "lets_encrypt" else None


def test_renewal_on_its_own_under_load_without_a_failed_request(world: World) -> None:
    world.api.ok("POST", f"{INV}/domains", json={"domain": "renew.test"})
    first = world.api.ok("POST", f"{INV}/ssl/renew.test", json={"include_www": False}, timeout=60)[
        "certificate"
    ]
    roots = world.pebble.roots_pem()
    results: list[tuple[int, str] | str] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                results.append(fetch(world, roots, "renew.test"))
            except (OSError, ssl.SSLError, ValueError, IndexError) as exc:
                results.append(f"{type(exc).__name__}: {exc}")

    wait_for(
        lambda: fingerprint_served(world, roots, "renew.test") == first["fingerprint"] or None,
        10,
        "the first certificate served",
    )
    first_key = key_served(world, roots, "renew.test")
    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        renewed = wait_for(
            lambda: i if (i := served_id(world, "renew.test")) not in (None, first["id"]) else None,
            VALIDITY_S,
            "a renewed certificate",
            every=0.25,
        )
        new = next(
            c
            for c in world.api.ok("GET", f"{INV}/ssl/renew.test")["certificates"]
            if c["id"] == renewed
        )
        wait_for(
            lambda: (
                any(isinstance(r, tuple) and r[1] == new["fingerprint"] for r in results[-20:])
                or None
            ),
            10,
            "requests answered with the renewed certificate",
        )
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(10)
    failures = [r for r in results if not (isinstance(r, tuple) and r[0] == 200)]
    seen = {r[1] for r in results if isinstance(r, tuple)}
    print(f"\n{len(results)} requests across the renewal, {len(failures)} failed")
    assert failures == [], failures[:5]
    assert {first["fingerprint"], new["fingerprint"]} <= seen
    # Renewed at two thirds of the lifetime, not at the last moment.
    assert new["not_before"] < first["not_after"]
    # The renewal keeps the key: the edge swaps the certificate's file without a reload, and
    # nginx reads chain and key in two opens (a new key would fail a handshake mid-swap).
    assert key_served(world, roots, "renew.test") == first_key


def test_ca_down_renewal_fails_clearly_is_retried_and_the_old_one_stays(world: World) -> None:
    world.api.ok("POST", f"{INV}/domains", json={"domain": "retry.test"})
    first = world.api.ok("POST", f"{INV}/ssl/retry.test", json={"include_www": False}, timeout=60)[
        "certificate"
    ]
    roots = world.pebble.roots_pem()
    world.pebble.stop()
    try:
        status = wait_for(
            lambda: (
                s
                if (s := world.api.ok("GET", f"{INV}/ssl/retry.test"))["renewal"]["attempts"] >= 2
                else None
            ),
            VALIDITY_S,
            "failed renewal attempts",
            every=0.25,
        )
        renewal = status["renewal"]
        assert "unreachable" in renewal["last_error"], renewal
        assert renewal["next_attempt_at"] is not None
        assert status["certificate"]["id"] == first["id"]
        assert fetch(world, roots, "retry.test") == (200, first["fingerprint"])
        kinds = {a["kind"] for a in world.api.ok("GET", "/api/v1/alerts")}
        assert "certificate_renewal_failed" in kinds
    finally:
        world.pebble.start()
    renewed = wait_for(
        lambda: i if (i := served_id(world, "retry.test")) not in (None, first["id"]) else None,
        VALIDITY_S,
        "the renewal retried once the CA is back",
        every=0.25,
    )
    assert renewed
    # Every alert went to the webhook; the certificates expire within a day: the 30/7/1-day
    # rules fire.
    expiry = {"certificate-expiring", "certificate-expiring-soon", "certificate-expires-tomorrow"}
    wait_for(
        lambda: (
            "certificate_renewal_failed" in {a["kind"] for a in world.webhook.received}
            and expiry <= {a.get("rule") for a in world.webhook.received}
        )
        or None,
        30,
        "alerts delivered to the webhook",
    )
