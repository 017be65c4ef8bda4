"""Private origins, pure parts: the settings' model, the pool's TLS lines in nginx's config,
the pins' messages, and nothing changed for pools without settings."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from edgeplane.model.origin_tls import OriginTls, spki_pin
from edgeplane.node.agent.origin_tls import MISMATCH, pin_mismatch
from edgeplane.node.nginx.local import LocalHealth, NodeLocal
from edgeplane.node.nginx.render import render
from edgeplane.node.nginx.render_origin_tls import ca_file
from edgeplane.protocol.config import (
    BackendSpec,
    CertSpec,
    EdgeConfig,
    NodeSpec,
    PoolSpec,
    SiteSpec,
)
from edgeplane.protocol.origin_tls import OriginTlsSpec
from edgeplane.snapshot.build import CDNState, CertState, DesiredState, site_pool

LOCAL = NodeLocal(prefix=Path("/srv/edge/nginx"), node_name="edge-1", http_port=8080)
NODE = NodeSpec(id="n1", name="edge-1", region="eu-west")


def _cert(cn: str) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_a_pin_is_the_sha256_of_the_spki_as_hpkp_spells_it() -> None:
    cert = _cert("origin")
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    want = "sha256/" + base64.b64encode(hashlib.sha256(spki).digest()).decode()
    assert spki_pin(cert) == want
    der = cert.public_bytes(serialization.Encoding.DER)
    assert pin_mismatch([der], (want,)) is None
    other = "sha256/" + "B" * 43 + "="
    why = pin_mismatch([der], (other,))
    assert why is not None and why.startswith(MISMATCH)
    assert other in why and want in why and "CN=origin" in why


def test_the_model_canonicalises_and_refuses() -> None:
    cert = _pem(_cert("ca"))
    pin = "sha256/" + "A" * 43 + "="
    tls = OriginTls(
        verify="pin",
        ca_pem=cert.replace("\n", "\r\n") + "\n\n",
        pins=[pin, pin],
        server_name="Origin.Example.",
    )
    assert tls.ca_pem == cert and tls.pins == [pin] and tls.server_name == "origin.example"
    assert not OriginTls().active and OriginTls(client_certificate=True).active
    with pytest.raises(ValidationError, match="verify ca needs ca_pem"):
        OriginTls(verify="ca")
    with pytest.raises(ValidationError, match="32-byte SHA-256"):
        OriginTls(verify="pin", pins=["sha256/" + base64.b64encode(b"x" * 31).decode()])


def _config(tls: OriginTlsSpec | None, certs: tuple[CertSpec, ...] = ()) -> EdgeConfig:
    backend = BackendSpec(key="https://10.0.0.1:8443", scheme="https", host="10.0.0.1", port=8443)
    pool = PoolSpec(id="origin.p1", algorithm="round_robin", backends=(backend,), tls=tls)
    site = SiteSpec(id="p1", domains=("app.test",), pool=pool.id)
    return EdgeConfig(revision=1, node=NODE, sites=(site,), pools=(pool,), certs=certs)


def test_a_pool_without_settings_renders_and_hashes_as_before() -> None:
    plain = _config(None)
    assert "tls" not in plain.pools[0].model_dump(mode="json")
    files = render(plain, LOCAL, LocalHealth())
    text = b"".join(files.values()).decode()
    assert "proxy_ssl_certificate" not in text and "proxy_ssl_verify" not in text
    assert not any(name.startswith("origin-ca-") for name in files)


def test_a_pool_with_settings_renders_its_tls_lines_and_ca_file() -> None:
    client = "ab" * 32
    ca = _pem(_cert("Origin CA"))
    tls = OriginTlsSpec(client_cert=client, verify="ca", ca_pem=ca, server_name="origin.test")
    cert = CertSpec(id=client, names=(), cert_pem="C\n", key_pem="K\n", not_after="2030")
    files = render(_config(tls, (cert,)), LOCAL, LocalHealth())
    text = "".join(f.decode() for f in files.values())
    path = f"../../certs/{client}.pem"
    assert f"proxy_ssl_certificate {path};" in text
    assert f"proxy_ssl_certificate_key {path};" in text
    assert "proxy_ssl_verify on;" in text
    assert f"proxy_ssl_trusted_certificate {ca_file(ca)};" in text
    assert 'proxy_ssl_name "origin.test";' in text
    assert files[ca_file(ca)].decode() == ca
    # a pin alone is the agent's: nginx only presents the certificate
    pinned = OriginTlsSpec(client_cert=client, verify="pin", pins=("sha256/" + "A" * 43 + "=",))
    text = "".join(
        f.decode() for f in render(_config(pinned, (cert,)), LOCAL, LocalHealth()).values()
    )
    assert "proxy_ssl_certificate " in text and "proxy_ssl_verify" not in text
    with pytest.raises(ValueError, match="not a hex name"):
        render(_config(OriginTlsSpec(client_cert="../x"), (cert,)), LOCAL, LocalHealth())


def test_the_snapshot_gives_a_pool_its_project_client_certificate() -> None:
    from edgeplane.model.cdn import Origin

    client = CertState(cert_pem="C", key_pem="K", names=(), not_after="2030", id="cd" * 32)
    tls = OriginTls(client_certificate=True, verify="pin", pins=["sha256/" + "A" * 43 + "="])
    state = DesiredState(
        domains={"p1": ("app.test",)},
        cdn={"p1": CDNState(origins=(Origin(url="https://o.test", tls=tls),))},
        client_certs={"p1": client},
    )
    pool = site_pool(state, "p1")
    assert pool is not None and pool.tls is not None
    assert pool.tls.client_cert == client.id and pool.tls.pins == tuple(tls.pins)
    plain = DesiredState(cdn={"p1": CDNState(origins=(Origin(url="https://o.test"),))})
    pool = site_pool(plain, "p1")
    assert pool is not None and pool.tls is None
