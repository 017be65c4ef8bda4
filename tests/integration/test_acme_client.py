"""The ACME client against a real Pebble, real DNS (PowerDNS) and a real HTTP-01 responder.

Pebble resolves every name through the PowerDNS that serves ``acme.test`` (A records to
127.0.0.1 and the ``_acme-challenge`` TXT records the sink publishes through ``DnsEngine``),
and fetches HTTP-01 tokens from a small HTTP server on the port it validates on.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.verification import PolicyBuilder, Store
from pdns import answers, running_pdns, zone_spec
from pebble import Pebble, running_pebble
from processes import free_port

from edgeplane.certificates.acme.client import (
    AcmeError,
    AcmeSettings,
    Issued,
    directory_url,
    new_account_key,
    obtain,
    register,
    retry_after_s,
)
from edgeplane.node.powerdns.engine import DnsEngine
from edgeplane.node.powerdns.process import PdnsProcess

pytestmark = pytest.mark.integration

ZONE = "acme.test."
HOSTS = ("@", "www", "other")


class _Tokens:
    """The HTTP-01 responder's content: token -> (domain, key authorization)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.served: dict[str, tuple[str, str]] = {}
        self.hits = 0


def _handler(tokens: _Tokens) -> type[BaseHTTPRequestHandler]:
    prefix = "/.well-known/acme-challenge/"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            host = (self.headers.get("Host") or "").split(":")[0].lower()
            with tokens.lock:
                tokens.hits += 1
                entry = (
                    tokens.served.get(self.path[len(prefix) :])
                    if self.path.startswith(prefix)
                    else None
                )
            if entry is None or entry[0] != host:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = entry[1].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@dataclass
class Edge:
    """PowerDNS serving acme.test, its engine and the HTTP-01 responder."""

    pdns: PdnsProcess
    engine: DnsEngine
    tokens: _Tokens
    http_port: int
    serials: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def dns_server(self) -> str:
        return f"{self.pdns.dns_address}:{self.pdns.dns_port}"

    def serve(self, txt: dict[str, list[str]]) -> None:
        records: dict[tuple[str, str], list[str]] = {(h, "A"): ["127.0.0.1"] for h in HOSTS}
        for name, values in txt.items():
            label = name.removesuffix("." + ZONE.rstrip("."))
            if values:
                records[(label, "TXT")] = [f'"{v}"' for v in values]
        result = self.engine.apply((zone_spec(ZONE, next(self.serials), records, ttl=1),))
        assert result.ok, result.error


class Sink:
    """The test's ChallengeSink: HTTP-01 into the responder, DNS-01 into PowerDNS.

    ``tamper`` makes it publish nothing (``"nothing"``) or a wrong value (``"wrong"``).
    """

    def __init__(self, edge: Edge, tamper: str | None = None) -> None:
        self.edge = edge
        self.tamper = tamper
        self.txt: dict[str, list[str]] = {}
        self.tokens: set[str] = set()
        self.calls: list[str] = []

    def publish_http01(self, domain: str, token: str, key_authorization: str) -> None:
        self.calls.append(f"publish_http01 {domain}")
        self.tokens.add(token)
        if self.tamper == "nothing":
            return
        value = key_authorization + ("x" if self.tamper == "wrong" else "")
        with self.edge.tokens.lock:
            self.edge.tokens.served[token] = (domain, value)

    def publish_dns01(self, name: str, value: str) -> None:
        self.calls.append(f"publish_dns01 {name}")
        assert not name.endswith(".")
        self.txt.setdefault(name, []).append(value)

    def _served_txt(self) -> dict[str, list[str]]:
        if self.tamper == "nothing":
            return {}
        if self.tamper == "wrong":
            return {
                n: [v[:-1] + "A" if v[-1] != "A" else "B" for v in vs] for n, vs in self.txt.items()
            }
        return self.txt

    def wait_published(self) -> None:
        self.calls.append("wait_published")
        if not self.txt:
            return
        served = self._served_txt()
        self.edge.serve(served)
        for name, values in served.items():
            want = sorted(f'"{v}"' for v in values)
            deadline = time.monotonic() + 5
            while answers(self.edge.pdns, name, "TXT") != want:
                assert time.monotonic() < deadline, f"{name} TXT not served"
                time.sleep(0.02)

    def unpublish_http01(self, token: str) -> None:
        self.calls.append("unpublish_http01")
        self.tokens.discard(token)
        with self.edge.tokens.lock:
            self.edge.tokens.served.pop(token, None)

    def unpublish_dns01(self, name: str, value: str) -> None:
        self.calls.append(f"unpublish_dns01 {name}")
        values = self.txt.get(name, [])
        if value in values:
            values.remove(value)
        if not values:
            self.txt.pop(name, None)
        self.edge.serve(self._served_txt())

    @property
    def clean(self) -> bool:
        with self.edge.tokens.lock:
            served = dict(self.edge.tokens.served)
        return not self.tokens and not self.txt and not served


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    base = tmp_path_factory.mktemp("acme-edge")
    tokens = _Tokens()
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(tokens))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with running_pdns(base) as pdns:
            engine = DnsEngine(pdns)
            try:
                world = Edge(pdns, engine, tokens, port)
                world.serve({})
                yield world
            finally:
                engine.stop()
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def pebble(edge: Edge, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    with running_pebble(
        tmp_path_factory.mktemp("acme-pebble"),
        http_port=edge.http_port,
        dns_server=edge.dns_server,
    ) as instance:
        yield instance


def settings_for(pebble: Pebble, **kw: object) -> AcmeSettings:
    return AcmeSettings(
        pebble.directory_url,
        contact_email="ops@acme.test",
        ca_bundle=pebble.ca_bundle,
        timeout_s=5,
        poll_timeout_s=20,
        **kw,  # type: ignore[arg-type]
    )


def account(settings: AcmeSettings) -> tuple[str, str]:
    key = new_account_key()
    return key, register(settings, key)


def verify_chain(issued: Issued, pebble: Pebble, name: str) -> None:
    """The chain as served verifies against Pebble's root for ``name``."""
    roots = x509.load_pem_x509_certificates(pebble.roots_pem().encode())
    chain = x509.load_pem_x509_certificates(issued.chain_pem.encode())
    leaf = x509.load_pem_x509_certificate(issued.cert_pem.encode())
    assert chain[0] == leaf and len(chain) >= 2
    verifier = (
        PolicyBuilder()
        .store(Store([roots[0]]))
        .time(datetime.now(UTC))
        .build_server_verifier(x509.DNSName(name))
    )
    verifier.verify(leaf, chain[1:])


def sans(issued: Issued) -> set[str]:
    leaf = x509.load_pem_x509_certificate(issued.cert_pem.encode())
    ext = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return set(ext.value.get_values_for_type(x509.DNSName))


def test_directory_names() -> None:
    assert directory_url("letsencrypt") == "https://acme-v02.api.letsencrypt.org/directory"
    assert directory_url("letsencrypt-staging").startswith("https://acme-staging-v02.")
    assert AcmeSettings("letsencrypt").directory_url.endswith(
        "acme-v02.api.letsencrypt.org/directory"
    )
    with pytest.raises(ValueError):
        directory_url("buypass")


def test_retry_after_header() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_s("3", 0.1, now) == 3.0
    assert retry_after_s("Wed, 01 Jan 2025 12:00:30 GMT", 0.1, now) == 30.0
    assert retry_after_s("Wed, 01 Jan 2025 11:00:00 GMT", 0.1, now) == 0.0
    assert retry_after_s(None, 0.1, now) == 0.1
    assert retry_after_s("soon", 0.5, now) == 0.5


def test_http01_issues_for_apex_and_www(edge: Edge, pebble: Pebble) -> None:
    settings = settings_for(pebble)
    key, url = account(settings)
    assert url.startswith("https://127.0.0.1:")
    assert register(settings, key) == url  # an already registered key: the same account
    sink = Sink(edge)
    steps: list[str] = []
    started = time.monotonic()
    issued = obtain(
        settings, key, url, ["acme.test", "www.acme.test"], "http-01", sink, progress=steps.append
    )
    elapsed = time.monotonic() - started
    assert sans(issued) == {"acme.test", "www.acme.test"}
    verify_chain(issued, pebble, "www.acme.test")
    leaf = x509.load_pem_x509_certificate(issued.cert_pem.encode())
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    assert "BEGIN PRIVATE KEY" in issued.key_pem
    assert issued.not_before <= datetime.now(UTC) < issued.not_after
    assert steps[0] == "order created"
    assert "authorization www.acme.test: http-01 published" in steps
    assert "authorization acme.test: valid" in steps
    assert steps[-2:] == ["finalized", "certificate downloaded"]
    assert sink.clean and edge.tokens.hits > 0
    assert elapsed < 10


def test_http01_rsa_key_on_request(edge: Edge, pebble: Pebble) -> None:
    settings = settings_for(pebble)
    key, url = account(settings)
    issued = obtain(
        settings, key, url, ["other.acme.test"], "http-01", Sink(edge), key_type="rsa2048"
    )
    public = x509.load_pem_x509_certificate(issued.cert_pem.encode()).public_key()
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048
    verify_chain(issued, pebble, "other.acme.test")


def test_dns01_wildcard_and_apex(edge: Edge, pebble: Pebble) -> None:
    settings = settings_for(pebble)
    key, url = account(settings)
    sink = Sink(edge)
    steps: list[str] = []
    issued = obtain(
        settings, key, url, ["*.acme.test", "acme.test"], "dns-01", sink, progress=steps.append
    )
    assert sans(issued) == {"*.acme.test", "acme.test"}
    verify_chain(issued, pebble, "anything.acme.test")
    verify_chain(issued, pebble, "acme.test")
    assert "authorization *.acme.test: dns-01 published" in steps
    assert sink.calls.count("publish_dns01 _acme-challenge.acme.test") == 2
    assert sink.clean
    assert answers(edge.pdns, "_acme-challenge.acme.test", "TXT") == []


def test_wildcard_over_http01_is_refused_before_ordering(edge: Edge, pebble: Pebble) -> None:
    settings = settings_for(pebble)
    key, url = account(settings)
    sink = Sink(edge)
    with pytest.raises(AcmeError, match=r"\*\.acme\.test.*dns-01") as caught:
        obtain(settings, key, url, ["*.acme.test"], "http-01", sink)
    assert caught.value.status == "refused"
    assert sink.calls == []
    with pytest.raises(AcmeError, match="empty name"):
        obtain(settings, key, url, ["acme.test", " "], "dns-01", sink)


@pytest.mark.parametrize("tamper", ["nothing", "wrong"])
def test_wrong_http01_answer_fails_naming_the_identifier(
    edge: Edge, pebble: Pebble, tamper: str
) -> None:
    settings = settings_for(pebble)
    key, url = account(settings)
    sink = Sink(edge, tamper=tamper)
    with pytest.raises(AcmeError) as caught:
        obtain(settings, key, url, ["www.acme.test"], "http-01", sink)
    error = caught.value
    assert error.status == "invalid"
    assert "authorization for www.acme.test failed: urn:ietf:params:acme:error:" in str(error)
    assert error.identifier == "www.acme.test"
    assert error.problem is not None and error.problem.startswith("urn:ietf:params:acme:error:")
    assert "unpublish_http01" in sink.calls and sink.clean


def test_wrong_dns01_answer_fails_and_cleans_up(edge: Edge, pebble: Pebble) -> None:
    settings = settings_for(pebble)
    key, url = account(settings)
    sink = Sink(edge, tamper="wrong")
    with pytest.raises(
        AcmeError,
        match=r"authorization for \*\.acme\.test failed|"
        r"authorization for acme\.test failed",
    ) as caught:
        obtain(settings, key, url, ["*.acme.test", "acme.test"], "dns-01", sink)
    assert caught.value.status == "invalid"
    assert sink.calls.count("unpublish_dns01 _acme-challenge.acme.test") == 2
    assert sink.clean
    assert answers(edge.pdns, "_acme-challenge.acme.test", "TXT") == []


def test_bad_nonces_are_retried(
    edge: Edge, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="edgeplane.certificates.acme.client")
    with running_pebble(
        tmp_path, http_port=edge.http_port, dns_server=edge.dns_server, nonce_reject=30
    ) as rejecting:
        settings = settings_for(rejecting)
        key, url = account(settings)
        # Pebble rejects 30 % of nonces at random: an order is about ten signed requests, so a
        # round without a rejection happens (about 3 % of the time); rounds go on until one is
        # seen, and every round's certificates must be good whatever was rejected.
        for _round in range(8):
            first = obtain(settings, key, url, ["www.acme.test"], "http-01", Sink(edge))
            second = obtain(settings, key, url, ["acme.test"], "dns-01", Sink(edge))
            verify_chain(first, rejecting, "www.acme.test")
            verify_chain(second, rejecting, "acme.test")
            if any("badNonce, retry" in r.getMessage() for r in caplog.records):
                break
    assert any("badNonce, retry" in r.getMessage() for r in caplog.records)


def test_pebble_stopped_is_unreachable_and_restart_recovers(edge: Edge, tmp_path: Path) -> None:
    with running_pebble(tmp_path, http_port=edge.http_port, dns_server=edge.dns_server) as ca:
        settings = settings_for(ca)
        key, url = account(settings)
        ca.stop()
        sink = Sink(edge)
        with pytest.raises(AcmeError, match="unreachable") as caught:
            obtain(settings, key, url, ["www.acme.test"], "http-01", sink)
        assert caught.value.status == "unreachable"
        assert f"the ACME server at {ca.directory_url} is unreachable" in str(caught.value)
        assert "Connection refused" in str(caught.value)
        assert sink.calls == []
        with pytest.raises(AcmeError, match="unreachable"):
            register(settings, key)
        ca.start()  # a new Pebble: it forgot the account
        with pytest.raises(AcmeError, match="accountDoesNotExist") as gone:
            obtain(settings, key, url, ["www.acme.test"], "http-01", sink)
        assert gone.value.status == "rejected"
        issued = obtain(settings, key, register(settings, key), ["www.acme.test"], "http-01", sink)
        verify_chain(issued, ca, "www.acme.test")


def test_untrusted_server_certificate_is_unreachable(pebble: Pebble) -> None:
    settings = AcmeSettings(pebble.directory_url, timeout_s=5)
    with pytest.raises(AcmeError, match="unreachable: TLS") as caught:
        register(settings, new_account_key())
    assert caught.value.status == "unreachable"
    assert str(caught.value).endswith(
        "certificate verify failed: unable to get local issuer certificate"
    )


def test_external_account_binding(edge: Edge, tmp_path: Path) -> None:
    kid, mac = "kid-1", secrets.token_urlsafe(32)
    with running_pebble(
        tmp_path, http_port=edge.http_port, dns_server=edge.dns_server, eab={kid: mac}
    ) as ca:
        with pytest.raises(AcmeError, match="requires external account binding") as missing:
            register(settings_for(ca), new_account_key())
        assert missing.value.status == "refused"
        wrong = settings_for(ca, eab_kid=kid, eab_hmac_key=secrets.token_urlsafe(32))
        with pytest.raises(AcmeError, match=r"account registration .* failed: urn:") as refused:
            register(wrong, new_account_key())
        assert refused.value.status == "rejected"
        settings = settings_for(ca, eab_kid=kid, eab_hmac_key=mac)
        key, url = account(settings)
        issued = obtain(settings, key, url, ["acme.test"], "http-01", Sink(edge))
        verify_chain(issued, ca, "acme.test")


def test_short_validity_period_is_reflected(edge: Edge, tmp_path: Path) -> None:
    with running_pebble(
        tmp_path, http_port=edge.http_port, dns_server=edge.dns_server, validity_s=3600
    ) as ca:
        settings = settings_for(ca)
        key, url = account(settings)
        issued = obtain(settings, key, url, ["acme.test"], "dns-01", Sink(edge))
    lifetime = (issued.not_after - issued.not_before).total_seconds()
    assert 3500 <= lifetime <= 3700
    assert (issued.not_after - datetime.now(UTC)).total_seconds() < 3700
