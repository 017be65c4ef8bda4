"""OCSP stapling by the edge (real nginx): a certificate whose snapshot carries a staple is
served with it (``openssl s_client -status``; the raw staple checked against the CA in
Python), with the same routing as every other name; a certificate without a staple is served
without one, by the shared per-handshake server; a new staple replaces the old one; sessions
of a stapled name resume on another node."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID
from nginx_edge import Edge, backend, edge_config, pool, running_edge
from OpenSSL import SSL
from origins import Origin, start_origin

from edgeplane.certificates import staples
from edgeplane.protocol.config import CertSpec, EdgeConfig, SiteSpec, TicketKeySpec
from edgeplane.snapshot.tickets import ticket_keys

pytestmark = pytest.mark.integration

STAPLED = "stapled.test"
PLAIN = "plain.test"
OCSP_URL = "http://127.0.0.1:9/ocsp"  # never asked: the control plane fetches, not the edge


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@dataclass
class Issued:
    ca: x509.Certificate
    ca_key: ec.EllipticCurvePrivateKey
    leaf: x509.Certificate
    spec: CertSpec

    @property
    def ca_pem(self) -> str:
        return self.ca.public_bytes(serialization.Encoding.PEM).decode()

    def staple(self, status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD) -> str:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        response = (
            ocsp.OCSPResponseBuilder()
            .add_response(
                cert=self.leaf,
                issuer=self.ca,
                algorithm=hashes.SHA1(),
                cert_status=status,
                this_update=now - dt.timedelta(minutes=1),
                next_update=now + dt.timedelta(days=4),
                revocation_time=None,
                revocation_reason=None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, self.ca)
            .sign(self.ca_key, hashes.SHA256())
        )
        return base64.b64encode(response.public_bytes(serialization.Encoding.DER)).decode()

    def with_staple(self, staple: str | None) -> CertSpec:
        return self.spec.model_copy(update={"ocsp_staple": staple})


def issue(names: list[str], *, ocsp_url: str | None) -> Issued:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stapling test CA")])
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
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
    )
    if ocsp_url:
        access = x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url)
        )
        builder = builder.add_extension(x509.AuthorityInformationAccess([access]), False)
    leaf = builder.sign(ca_key, hashes.SHA256())
    chain = (
        leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    ).decode()
    spec = CertSpec(
        id=hashlib.sha256(chain.encode()).hexdigest(),
        names=tuple(names),
        cert_pem=chain,
        key_pem=_key_pem(key),
        not_after=(now + dt.timedelta(days=30)).isoformat(),
    )
    return Issued(ca, ca_key, leaf, spec)


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    o = start_origin("stapling")
    yield o
    o.terminate()


def config(origin: Origin, *certs: CertSpec, keys: tuple[TicketKeySpec, ...] = ()) -> EdgeConfig:
    site = SiteSpec(id="p1", domains=(STAPLED, PLAIN), pool="origin.p1")
    built = edge_config([site], [pool("origin.p1", backend(origin))], certs=certs)
    return built.model_copy(update={"ticket_keys": keys})


def s_client(edge: Edge, name: str) -> str:
    out = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{edge.local.https_port}",
            "-servername",
            name,
            "-status",
        ],
        input=b"Q\n",
        capture_output=True,
        timeout=20,
        check=False,
    )
    return out.stdout.decode(errors="replace")


def raw_staple(edge: Edge, name: str) -> tuple[bytes, x509.Certificate]:
    """The staple the server sent (empty: none) and its certificate, through pyOpenSSL."""
    got: list[bytes] = []
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_ocsp_client_callback(lambda _conn, data, _x: got.append(data) or True)
    sock = socket.create_connection(("127.0.0.1", edge.local.https_port or 0), timeout=10)
    sock.settimeout(None)  # pyOpenSSL wants a blocking socket (a local nginx answers at once)
    conn = SSL.Connection(ctx, sock)
    conn.set_tlsext_host_name(name.encode())
    conn.request_ocsp()
    conn.set_connect_state()
    conn.do_handshake()
    peer = conn.get_peer_certificate()
    assert peer is not None
    cert = peer.to_cryptography()
    conn.shutdown()
    sock.close()
    return (got[0] if got else b""), cert


def https_get(edge: Edge, ca_pem: str, name: str) -> bytes:
    ctx = ssl.create_default_context(cadata=ca_pem)
    sock = socket.create_connection(("127.0.0.1", edge.local.https_port or 0), timeout=10)
    with ctx.wrap_socket(sock, server_hostname=name) as tls:
        tls.sendall(f"GET /x HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    return data


def test_a_certificate_with_a_staple_is_served_with_it(origin: Origin) -> None:
    stapled = issue([STAPLED], ocsp_url=OCSP_URL)
    plain = issue([PLAIN], ocsp_url=None)
    with running_edge() as edge:
        edge.apply(config(origin, stapled.with_staple(stapled.staple()), plain.spec))
        text = s_client(edge, STAPLED)
        assert "OCSP Response Status: successful" in text, text
        assert "Cert Status: good" in text, text
        der, cert = raw_staple(edge, STAPLED)
        assert cert == stapled.leaf
        checked = staples.check(der, stapled.leaf, stapled.ca, dt.datetime.now(dt.UTC))
        assert checked.status == "good"
        # No staple: the shared server, as before.
        text = s_client(edge, PLAIN)
        assert "OCSP response: no response sent" in text, text
        der, cert = raw_staple(edge, PLAIN)
        assert der == b"" and cert == plain.leaf
        # The same routing, headers and origin behind both.
        for name, issued in ((STAPLED, stapled), (PLAIN, plain)):
            answer = https_get(edge, issued.ca_pem, name)
            assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
            assert b"X-Served-By: edge-1" in answer
        # A new staple is a new file and replaces the old one; no staple: back to the shared.
        fresh = stapled.staple()
        edge.apply(config(origin, stapled.with_staple(fresh), plain.spec))
        assert raw_staple(edge, STAPLED)[0] == base64.b64decode(fresh)
        ocsp_files = sorted(p.name for p in (edge.local.prefix / "certs").glob("*.ocsp"))
        assert len(ocsp_files) == 1
        edge.apply(config(origin, stapled.spec, plain.spec))
        der, cert = raw_staple(edge, STAPLED)
        assert der == b"" and cert == stapled.leaf
        assert not list((edge.local.prefix / "certs").glob("*.ocsp"))


def _session(
    edge: Edge, ctx: ssl.SSLContext, name: str, session: ssl.SSLSession | None
) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", edge.local.https_port or 0), timeout=10)
    tls = ctx.wrap_socket(sock, server_hostname=name, session=session)
    tls.sendall(f"GET /x HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
    while tls.recv(65536):
        pass
    return tls


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
def test_sessions_of_a_stapled_name_resume_on_another_node(
    origin: Origin, version: ssl.TLSVersion
) -> None:
    stapled = issue([STAPLED, PLAIN], ocsp_url=OCSP_URL)
    keys = ticket_keys(b"s" * 32, now=1_000_000.0)
    ctx = ssl.create_default_context(cadata=stapled.ca_pem)
    ctx.minimum_version = ctx.maximum_version = version
    with running_edge("edge-1") as one, running_edge("edge-2") as two:
        staple = stapled.staple()
        one.apply(config(origin, stapled.with_staple(staple), keys=keys))
        two.apply(config(origin, stapled.with_staple(staple), keys=keys))
        first = _session(one, ctx, STAPLED, None)
        session = first.session
        first.close()
        assert session is not None and session.has_ticket
        again = _session(two, ctx, STAPLED, session)
        assert again.session_reused
        again.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
def test_sessions_resume_between_the_stapling_and_the_shared_server(
    origin: Origin, version: ssl.TLSVersion
) -> None:
    """Measured, not designed: a session of the shared server resumes on a stapling one and
    the other way round (OpenSSL checks the session against the listening socket's default
    server, before SNI picks the block), as between any two names of the shared server. Only a
    client that offers a session of one name for another sees it (browsers do so only when
    the certificate covers both names)."""
    stapled = issue([STAPLED], ocsp_url=OCSP_URL)
    plain = issue([PLAIN], ocsp_url=None)
    keys = ticket_keys(b"s" * 32, now=1_000_000.0)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = version
    with running_edge("edge-1") as edge:
        edge.apply(config(origin, stapled.with_staple(stapled.staple()), plain.spec, keys=keys))
        for first, then in ((PLAIN, STAPLED), (STAPLED, PLAIN)):
            tls = _session(edge, ctx, first, None)
            session = tls.session
            tls.close()
            assert _session(edge, ctx, first, session).session_reused
            assert _session(edge, ctx, then, session).session_reused
