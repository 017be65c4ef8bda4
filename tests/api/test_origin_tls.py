"""Private origins over the API, the SDK and the CLI: TLS settings of load balancers and CDN
origins, the project's client certificate (issued, renewed, never its key), bad input."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import Api, Cli
from edgeplane.certificates import origin_client
from edgeplane.model.origin_tls import OriginTls, spki_pin
from edgeplane.node.agent.origin_tls import pin_mismatch
from edgeplane.sdk.cdn_service import CDNService
from edgeplane.sdk.load_balancer_service import LoadBalancerService
from edgeplane.store.actor import LOCAL
from edgeplane.store.tables import AuditRow, RevisionRow, utcnow

INV = "/api/v1/infrastructure"
LB = f"{INV}/loadbalancer"
CDN = f"{INV}/cdn"
CLIENT = f"{INV}/ca/origin-client"
PIN = "sha256/" + "A" * 43 + "="
HTTPS = ["https://10.0.0.1:8443", "https://10.0.0.2:8443"]


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def problem(r: Any, field: str) -> str:
    assert r.status_code == 422, r.text
    doc = r.json()
    assert doc.get("field") == field, doc
    return str(doc.get("detail"))


def revision(api: Api) -> int:
    with api.db.read(LOCAL, "default") as tx:
        return int(tx.session.get(RevisionRow, 1).value)  # type: ignore[union-attr]


def origin_ca_pem() -> str:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Origin CA")])
    now = utcnow()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_load_balancer_tls_settings_and_the_client_certificate(api: Api) -> None:
    ca = origin_ca_pem()
    body = {
        "id": "private",
        "endpoints": HTTPS,
        "tls": {"client_certificate": True, "verify": "ca", "ca_pem": ca,
                "server_name": "Origin.Internal."},
    }  # fmt: skip
    lb = ok(api.post(LB, json=body), 201)
    assert lb["tls"]["client_certificate"] is True
    assert lb["tls"]["server_name"] == "origin.internal"
    assert x509.load_pem_x509_certificate(lb["tls"]["ca_pem"].encode()).subject.rfc4514_string()
    assert ok(api.get(f"{LB}/private"))["tls"] == lb["tls"]

    # The client certificate was issued with it: the project's, clientAuth, from the CA.
    r = api.get(CLIENT)
    doc = ok(r)
    assert "PRIVATE KEY" not in r.text
    assert doc["project"] == doc["common_name"] == "default"
    assert doc["subject"] == "CN=default,OU=origin client,O=Edgeplane"
    leaf, issuer = x509.load_pem_x509_certificates(doc["cert_pem"].encode())
    root = x509.load_pem_x509_certificate(doc["ca_pem"].encode())
    leaf.verify_directly_issued_by(issuer)
    issuer.verify_directly_issued_by(root)
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert list(issuer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    assert doc["ca_pem"] == api.client.get(f"{INV}/ca.pem").text
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days <= origin_client.DAYS
    assert ok(api.get(CLIENT))["fingerprint_sha256"] == doc["fingerprint_sha256"]  # kept

    # A patch of one field keeps the others; null removes the settings.
    lb = ok(api.patch(f"{LB}/private", json={"tls": {"verify": "pin", "pins": [PIN]}}))
    assert lb["tls"]["verify"] == "pin" and lb["tls"]["ca_pem"] == ca
    assert lb["tls"]["client_certificate"] is True
    assert ok(api.patch(f"{LB}/private", json={"tls": None}))["tls"] is None

    # Renewed on demand (a new key), and by the renewal job once two thirds have passed.
    renewed = ok(api.post(f"{CLIENT}/renew"))
    assert renewed["fingerprint_sha256"] != doc["fingerprint_sha256"]
    ok(api.patch(f"{LB}/private", json={"tls": {"client_certificate": True}}))
    assert origin_client.renew_due(api.db, utcnow()) == 0  # not due yet
    later = utcnow() + timedelta(days=origin_client.DAYS * 0.7)
    assert origin_client.renew_due(api.db, later) == 1
    assert ok(api.get(CLIENT))["fingerprint_sha256"] != renewed["fingerprint_sha256"]
    with api.db.read(LOCAL, "default") as tx:
        events = tx.session.query(AuditRow).filter(AuditRow.kind == origin_client.KIND).all()
        assert [e.action for e in events] == ["issue", "renew", "renew"]
        assert all("PRIVATE" not in str(e.after) for e in events)


def test_bad_tls_settings_name_the_field_and_change_nothing(api: Api) -> None:
    before = revision(api)
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"verify": "ca"}, "tls.ca_pem", "verify ca needs ca_pem"),
        ({"verify": "ca", "ca_pem": "hello"}, "tls.ca_pem", "not a PEM certificate"),
        ({"verify": "ca", "ca_pem": origin_ca_pem() + "-----BEGIN PRIVATE KEY-----\nAA==\n"
          "-----END PRIVATE KEY-----\n"}, "tls.ca_pem", "besides PEM certificates"),
        ({"verify": "ca", "ca_pem": "-----BEGIN CERTIFICATE-----\nAAAA\n"
          "-----END CERTIFICATE-----"}, "tls.ca_pem", "not a valid certificate"),
        ({"verify": "pin"}, "tls.pins", "verify pin needs pins"),
        ({"verify": "pin", "pins": ["sha256/abc"]}, "tls.pins", "is not a pin"),
        ({"verify": "pin", "pins": ["sha1/" + "A" * 27 + "="]}, "tls.pins", "is not a pin"),
        ({"pins": [PIN]}, "tls.pins", "only with verify pin"),
        ({"verify": "sometimes"}, "tls.verify", ""),
        ({"server_name": "not a name"}, "tls.server_name", "not a host name"),
        ({"client_certificate": "yes"}, "tls.client_certificate", ""),
    ]  # fmt: skip
    for tls, field, words in cases:
        detail = problem(api.post(LB, json={"endpoints": HTTPS, "tls": tls}), field)
        assert words in detail, (tls, detail)
    detail = problem(
        api.post(LB, json={"endpoints": ["10.0.0.1:80"], "tls": {"client_certificate": True}}),
        "tls",
    )
    assert "https://" in detail and "endpoints.0" in detail
    # CDN origins: https only, one setting for the pool, none on a load balancer origin
    ok(api.post(LB, json={"id": "lb1", "endpoints": HTTPS}), 201)
    after_lb = revision(api)
    tls = {"client_certificate": True}
    problem(
        api.post(CDN, json={"origins": [{"url": "http://a.test", "tls": tls}]}), "origins.0.tls"
    )
    problem(api.post(CDN, json={"origins": [{"load_balancer": "lb1", "tls": tls}]}),
            "origins.0.tls")  # fmt: skip
    two = [{"url": "https://a.test", "tls": tls}, {"url": "https://b.test"}]
    assert "same tls" in problem(api.post(CDN, json={"origins": two}), "origins.1.tls")
    assert revision(api) == after_lb == before + 1  # only the valid load balancer
    r = api.get(CDN)
    assert r.status_code == 404
    with api.db.read(LOCAL, "default") as tx:
        assert origin_client.load(tx.session, tx.secrets, "default") is None  # none issued


def test_cdn_origins_take_tls_settings(api: Api) -> None:
    origins = [
        {"url": "https://a.test:8443", "tls": {"client_certificate": True, "verify": "pin",
                                               "pins": [PIN, PIN]}},
        {"url": "https://b.test:8443", "backup": True,
         "tls": {"client_certificate": True, "verify": "pin", "pins": [PIN]}},
    ]  # fmt: skip
    doc = ok(api.post(CDN, json={"origins": origins}), 201)["cdn_deployment"]
    assert doc["origins"][0]["tls"]["pins"] == [PIN]  # listed once
    assert ok(api.get(CDN))["origins"][1]["tls"]["verify"] == "pin"
    assert ok(api.get(CLIENT))["common_name"] == "default"


# The SDK and the CLI are adapters of the same API: one database engine is enough for them.
ONE_ENGINE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@ONE_ENGINE
def test_the_sdk_sets_the_settings_and_reads_the_certificate(api: Api) -> None:
    from edgeplane.sdk import embedded
    from edgeplane.sdk.client import Client
    from edgeplane.settings import Settings

    client = Client(Settings(home=api.tmp / "home", database_url=api.db.url))

    async def scenario() -> None:
        try:
            lbs = LoadBalancerService(client=client)
            lb = await lbs.create_load_balancer(
                "default",
                "round_robin",
                backends=HTTPS,
                id="viasdk",
                tls=OriginTls(client_certificate=True, verify="pin", pins=[PIN]),
            )
            assert lb.tls is not None and lb.tls.pins == [PIN]
            lb = await lbs.update_load_balancer("viasdk", tls=OriginTls(server_name="o.test"))
            assert lb.tls is not None and lb.tls.server_name == "o.test"
            assert lb.tls.verify == "pin", "a patch changes the fields given"
            cdn = CDNService(client=client)
            cert = await cdn.origin_client_certificate()
            assert cert.common_name == "default" and "BEGIN CERTIFICATE" in cert.ca_pem
            again = await cdn.renew_origin_client_certificate()
            assert again.fingerprint_sha256 != cert.fingerprint_sha256
        finally:
            await client.aclose()

    try:
        asyncio.run(scenario())
    finally:
        app = embedded._apps.pop(api.db.url, None)
        if app is not None:
            app.state.db.dispose()


@ONE_ENGINE
def test_the_cli_sets_the_settings_and_shows_the_certificate(cli: Cli, tmp_path: Path) -> None:
    ca_file = tmp_path / "origin-ca.pem"
    ca_file.write_text(origin_ca_pem())
    lb = cli.json("lb", "create", "--id", "viacli", "--endpoint", HTTPS[0], "--client-cert",
                  "--verify", "ca", "--origin-ca", str(ca_file),
                  "--origin-name", "o.test")  # fmt: skip
    assert lb["tls"]["client_certificate"] is True and lb["tls"]["server_name"] == "o.test"
    lb = cli.json("lb", "update", "viacli", "--verify", "pin", "--pin", PIN)
    assert lb["tls"]["verify"] == "pin" and lb["tls"]["pins"] == [PIN]
    cdn = cli.json("cdn", "configure", "--origin", "https://a.test", "--client-cert")
    assert cdn["cdn_deployment"]["origins"][0]["tls"]["client_certificate"] is True
    out = tmp_path / "client.pem"
    doc = cli.json("ca", "origin-client", "--out", str(out))
    assert doc["common_name"] == "default"
    assert "BEGIN CERTIFICATE" in out.read_text() and "PRIVATE" not in out.read_text()
    text = cli.run("ca", "origin-client").stdout
    assert "CN=default,OU=origin client,O=Edgeplane" in text
    renewed = cli.json("ca", "origin-client", "--renew")
    assert renewed["fingerprint_sha256"] != doc["fingerprint_sha256"]
    err = cli.fails("lb", "create", "--endpoint", HTTPS[0], "--verify", "pin", "--pin", "nope",
                    code=1)  # fmt: skip
    assert "tls.pins" in err and "is not a pin" in err


@ONE_ENGINE
def test_a_refused_certificate_shows_in_the_origins_health(api: Api, cli: Cli) -> None:
    """What an agent reports of a pinned origin with another key (the reason made by the
    agent's own code) reaches the API's origin health and ``edgeplane cdn health``."""
    from cryptography.hazmat.primitives import serialization

    from edgeplane.node.agent.health import BackendStatus

    url = "https://10.0.0.1:8443"
    tls = {"verify": "pin", "pins": [PIN]}
    ok(api.post(CDN, json={"origins": [{"url": url, "tls": tls}, {"url": HTTPS[1], "tls": tls}]}),
       201)  # fmt: skip
    token = ok(api.post("/api/v1/tokens", json={"name": "edge", "scope": "edge"}), 201)["token"]
    body = {"name": "edge-a", "region": "us-east", "http_port": 8080, "address": "192.0.2.1"}
    node = ok(api.post("/api/v1/edge/nodes", token=token, json=body))["id"]
    presented = x509.load_pem_x509_certificate(origin_ca_pem().encode())
    reason = pin_mismatch([presented.public_bytes(serialization.Encoding.DER)], (PIN,))
    assert reason is not None
    status = BackendStatus(pool="origin.default", key=url, state="down", reason=reason,
                           checked_at=utcnow(), changed_at=utcnow())  # fmt: skip
    report = {"backends": [status.as_report().model_dump(mode="json")]}
    r = api.post(f"/api/v1/edge/nodes/{node}/health", token=token, json=report)
    assert r.status_code in (200, 202, 204), r.text
    health = ok(api.get(f"{CDN}/origins/health"))
    assert [h["backend"] for h in health] == [url, HTTPS[1]]
    first, second = health
    assert first["state"] == "down" and second["state"] == "unknown"
    (seen,) = first["nodes"]
    assert seen["node"] == "edge-a" and seen["reason"].startswith(
        "certificate does not match the pinned key " + PIN
    )
    assert spki_pin(presented) in seen["reason"]
    table = cli.run("cdn", "health").stdout
    assert "certificate does not match the pinned key" in table and "down" in table
