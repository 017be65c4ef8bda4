"""TLS and edge security of the rendered nginx: versions, HTTP/2, redirect, HSTS, rate limits,
allow / deny lists (real nginx, real origin process)."""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from nginx_edge import Edge, backend, edge_config, pool, running_edge
from origins import Origin, start_origin

from edgeplane.protocol.config import CertSpec, RateLimitSpec, SiteSpec

pytestmark = pytest.mark.integration


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def make_certs(
    names: list[str], key: ec.EllipticCurvePrivateKey | None = None
) -> tuple[str, CertSpec]:
    """A throwaway CA (PEM) and a leaf certificate for ``names`` signed by it (with ``key``, as
    a renewal that keeps its key, or a new one)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = key or ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(ca_key, hashes.SHA256())
    )
    chain = (
        leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    ).decode()
    spec = CertSpec(
        id=hashlib.sha256(chain.encode()).hexdigest(),
        names=tuple(names),
        cert_pem=chain,
        key_pem=_pem(key),
        not_after=(now + dt.timedelta(days=30)).isoformat(),
    )
    return ca.public_bytes(serialization.Encoding.PEM).decode(), spec


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    o = start_origin("tls")
    yield o
    o.terminate()


@pytest.fixture(scope="module")
def setup(origin: Origin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Edge, Path]]:
    ca_pem, cert = make_certs(["secure.test", "*.wild.test"])
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca_file.write_text(ca_pem)
    p = pool("origin.p1", backend(origin))
    sites = [
        SiteSpec(
            id="p1",
            domains=("secure.test", "a.wild.test"),
            pool=p.id,
            force_https=True,
            hsts_max_age=3600,
            hsts_include_subdomains=True,
        ),
        SiteSpec(id="p2", domains=("plain.test",), pool=p.id, force_https=True),  # no cert
        SiteSpec(id="p3", domains=("limited.test",), pool=p.id, rate_limit=RateLimitSpec(rate=1)),
        SiteSpec(id="p4", domains=("deny.test",), pool=p.id, ip_deny=("127.0.0.3/32",)),
        SiteSpec(id="p5", domains=("allow.test",), pool=p.id, ip_allow=("127.0.0.2",)),
        SiteSpec(id="p6", domains=("b.wild.test",), pool=p.id),  # another project, same cert
    ]
    with running_edge() as edge:
        edge.apply(edge_config(sites, [p], certs=(cert,)))
        yield edge, ca_file


def tls_context(ca: Path, version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if version is not None:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer old versions
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def https_get(
    edge: Edge, ca: Path, sni: str, path: str = "/", host: str | None = None
) -> http.client.HTTPResponse:
    """GET over a connection made for ``sni``, with ``host`` (the same name when None)."""
    assert edge.local.https_port
    sock = socket.create_connection(("127.0.0.1", edge.local.https_port), timeout=10)
    tls = tls_context(ca).wrap_socket(sock, server_hostname=sni)
    conn = http.client.HTTPConnection(sni)
    conn.sock = tls
    conn.request("GET", path, headers={"Host": host or sni})
    return conn.getresponse()


def handshake(
    edge: Edge, ca: Path, version: ssl.TLSVersion | None, alpn: bool = False
) -> ssl.SSLSocket:
    assert edge.local.https_port
    sock = socket.create_connection(("127.0.0.1", edge.local.https_port), timeout=10)
    ctx = tls_context(ca, version)
    if alpn:
        ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx.wrap_socket(sock, server_hostname="secure.test")


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_12_and_13_accepted(setup: tuple[Edge, Path], version: ssl.TLSVersion) -> None:
    edge, ca = setup
    with handshake(edge, ca, version) as s:
        assert s.version() == {"TLSv1_2": "TLSv1.2", "TLSv1_3": "TLSv1.3"}[version.name]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_11_refused(setup: tuple[Edge, Path]) -> None:
    edge, ca = setup
    with pytest.raises(ssl.SSLError) as refused:
        handshake(edge, ca, ssl.TLSVersion.TLSv1_1)
    assert "NO_PROTOCOLS_AVAILABLE" not in str(refused.value)  # the server refused, not us


def test_http2_by_alpn_and_wildcard_cert(setup: tuple[Edge, Path]) -> None:
    edge, ca = setup
    with handshake(edge, ca, None, alpn=True) as s:
        assert s.selected_alpn_protocol() == "h2"
    r = https_get(edge, ca, "a.wild.test")  # verified against the CA: the right cert by SNI
    assert r.status == 200 and r.getheader("X-Origin") == "tls"


def test_unknown_sni_refused_with_unrecognized_name(setup: tuple[Edge, Path]) -> None:
    """A name the edge has no certificate for (unknown, or a site's name without one yet)
    gets the unrecognized_name alert and no certificate (render_sni)."""
    edge, ca = setup
    for name in ("other.test", "plain.test"):
        with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
            https_get(edge, ca, name)


def test_force_https_redirect_and_hsts(setup: tuple[Edge, Path]) -> None:
    edge, ca = setup
    r = edge.get("secure.test", "/a?b=1")
    assert r.status_code == 308
    assert r.headers["location"] == f"https://secure.test:{edge.local.https_port}/a?b=1"
    assert "strict-transport-security" not in r.headers
    assert r.headers["x-served-by"] == "edge-1"
    s = https_get(edge, ca, "secure.test", "/a")
    assert s.status == 200
    assert s.getheader("Strict-Transport-Security") == "max-age=3600; includeSubDomains"
    assert s.getheader("X-Served-By") == "edge-1"
    assert s.getheader("X-Frame-Options") == "SAMEORIGIN"
    # no certificate for plain.test: served over HTTP despite force_https
    plain = edge.get("plain.test", "/")
    assert plain.status_code == 200 and "strict-transport-security" not in plain.headers


def test_acme_challenge_never_redirected(setup: tuple[Edge, Path]) -> None:
    edge, _ = setup
    challenge = edge.local.prefix / "acme-challenge" / "tok123"
    challenge.write_text("tok123.thumb")
    challenge.chmod(0o644)
    r = edge.get("secure.test", "/.well-known/acme-challenge/tok123")
    assert r.status_code == 200 and r.text == "tok123.thumb"


def test_rate_limit_429(setup: tuple[Edge, Path]) -> None:
    edge, _ = setup
    codes = [edge.get("limited.test", f"/r{i}").status_code for i in range(10)]
    assert codes[0] == 200 and codes.count(429) >= 8, codes
    assert {edge.get("plain.test", f"/r{i}").status_code for i in range(10)} == {200}


def test_allow_and_deny_lists(setup: tuple[Edge, Path]) -> None:
    edge, _ = setup
    two, three = edge.client(source="127.0.0.2"), edge.client(source="127.0.0.3")
    assert edge.get("deny.test", "/", client=two).status_code == 200
    denied = edge.get("deny.test", "/", client=three)
    assert denied.status_code == 403 and denied.headers["x-served-by"] == "edge-1"
    assert edge.get("allow.test", "/", client=two).status_code == 200
    assert edge.get("allow.test", "/", client=three).status_code == 403


def test_misdirected_request_421(setup: tuple[Edge, Path]) -> None:
    """The Host must be answered by the connection's site and certificate (render_sni)."""
    edge, ca = setup
    # one certificate (*.wild.test) covers both, but b.wild.test is another project's: a
    # client that coalesced connections is told to open its own
    r = https_get(edge, ca, "a.wild.test", host="b.wild.test")
    assert r.status == 421 and r.read() == b"misdirected request\n"
    assert https_get(edge, ca, "b.wild.test").status == 200
    # the same project and certificate: served
    assert https_get(edge, ca, "secure.test", host="a.wild.test").status == 200
    # a Host without a certificate here, or unknown: 421 on any connection
    for host in ("plain.test", "other.test"):
        assert https_get(edge, ca, "secure.test", host=host).status == 421, host


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")
@pytest.mark.parametrize(
    ("group", "accepted"),
    [("X25519", True), ("prime256v1", True), ("secp384r1", True), ("X448", False),
     ("secp521r1", False)],
)  # fmt: skip
def test_only_mozilla_intermediate_curves(
    setup: tuple[Edge, Path], group: str, accepted: bool
) -> None:
    edge, ca = setup
    done = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{edge.local.https_port}",
         "-servername", "secure.test", "-groups", group, "-CAfile", str(ca)],
        input=b"", capture_output=True, timeout=10, check=False,
    )  # fmt: skip
    assert (done.returncode == 0) == accepted, done.stdout.decode()[-400:]
