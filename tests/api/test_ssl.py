"""Certificates through the API without a CA: uploads refused precisely (and nothing stored),
uploads served, internal certificates, revocation falling back to the previous version,
unverified domains refused. ACME orders run against Pebble in tests/integration."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from conftest import Api
from edgeplane.protocol.config import NodeSpec
from edgeplane.snapshot.build import snapshot
from edgeplane.snapshot.load import load_state
from edgeplane.store.actor import LOCAL
from edgeplane.store.tables import utcnow
from unit.test_certs_upload import Made, ec_key, make

INV = "/api/v1/infrastructure"
NODE = NodeSpec(id="node-1", name="n1", region="eu-central")


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if status != 204 else None


def chain(domain: str, **kw: Any) -> tuple[Made, Made]:
    now = utcnow()
    dates = {"not_before": now - timedelta(days=1), "not_after": now + timedelta(days=60)}
    ca = make("Upload CA", ca=True, **dates)
    return ca, make(domain, issuer=ca, **{**dates, **kw})


def served_fingerprints(api: Api) -> set[str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    with api.db.read(LOCAL, "default") as tx:
        config = snapshot(load_state(tx.session, tx.secrets), NODE, 1)
    return {
        x509.load_pem_x509_certificate(c.cert_pem.encode()).fingerprint(hashes.SHA256()).hex()
        for c in config.certs
    }


@pytest.fixture
def shop(api: Api) -> str:
    ok(api.post(f"{INV}/domains", json={"domain": "shop.test"}), 201)
    return "shop.test"


def test_an_upload_is_served_and_revoking_it_falls_back(api: Api, shop: str) -> None:
    ca, leaf = chain(shop)
    internal = ok(api.get(f"{INV}/ssl/{shop}"))["certificate"]
    doc = ok(
        api.post(
            f"{INV}/ssl/{shop}/upload",
            json={"cert_data": leaf.pem + ca.pem, "key_data": leaf.key_pem},
        ),
        201,
    )
    cert = doc["certificate"]
    assert cert["issuer"] == "custom" and cert["names"] == [shop] and not cert["auto_renew"]
    assert doc["expires_at"] == cert["not_after"]
    assert served_fingerprints(api) == {cert["fingerprint"]}
    status = ok(api.get(f"{INV}/ssl/{shop}"))
    assert status["certificate"]["id"] == cert["id"] and status["renewal"] is None
    assert len(status["certificates"]) == 2
    revoked = ok(api.post(f"{INV}/ssl/{shop}/revoke", json={}))
    assert revoked["id"] == cert["id"] and revoked["status"] == "revoked"
    assert served_fingerprints(api) == {internal["fingerprint"]}
    r = api.post(f"{INV}/ssl/{shop}/revoke", json={"certificate_id": cert["id"]})
    assert r.status_code == 422 and "already revoked" in r.json()["detail"]
    # The same upload again is a conflict, not a second version.
    r = api.post(
        f"{INV}/ssl/{shop}",
        json={"type": "custom", "cert_data": leaf.pem, "key_data": leaf.key_pem},
    )
    assert r.status_code == 409


@pytest.mark.parametrize(
    ("case", "field", "words"),
    [
        ("mismatched key", "key_data", "does not belong to the certificate"),
        ("expired", "cert_data", "expired on"),
        ("wrong order", "cert_data", "out of order"),
        ("name mismatch", "cert_data", "but not shop.test"),
        ("garbage", "cert_data", "no PEM certificate found"),
    ],
)
def test_bad_uploads_are_refused_precisely_and_store_nothing(
    api: Api, shop: str, case: str, field: str, words: str
) -> None:
    ca, leaf = chain(shop)
    cert_data, key_data = leaf.pem + ca.pem, leaf.key_pem
    if case == "mismatched key":
        key_data = Made(leaf.cert, ec_key()).key_pem
    elif case == "expired":
        now = utcnow()
        _ca, old = chain(shop, not_before=now - timedelta(days=90), not_after=now - timedelta(1))
        cert_data, key_data = old.pem, old.key_pem
    elif case == "wrong order":
        cert_data = ca.pem + leaf.pem
    elif case == "name mismatch":
        _ca, other = chain("other.test")
        cert_data, key_data = other.pem, other.key_pem
    elif case == "garbage":
        cert_data = "not a certificate"
    before = ok(api.get(f"{INV}/ssl/{shop}"))
    r = api.post(f"{INV}/ssl/{shop}/upload", json={"cert_data": cert_data, "key_data": key_data})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and words in r.json()["detail"], r.json()
    assert "PRIVATE KEY" not in r.text
    assert ok(api.get(f"{INV}/ssl/{shop}")) == before


def test_internal_certificates_and_refusals(api: Api, shop: str) -> None:
    first = ok(api.get(f"{INV}/ssl/{shop}"))["certificate"]
    doc = ok(api.post(f"{INV}/ssl/{shop}", json={"type": "internal"}), 201)
    assert doc["certificate"]["issuer"] == "internal"
    assert doc["certificate"]["id"] != first["id"]
    assert ok(api.get(f"{INV}/ssl/{shop}"))["renewal"]["due_at"] is not None
    renewed = ok(api.post(f"{INV}/ssl/{shop}/renew"), 201)["certificate"]
    assert renewed["issuer"] == "internal" and renewed["id"] != doc["certificate"]["id"]
    r = api.post(f"{INV}/ssl/{shop}", json={"type": "custom"})
    assert r.status_code == 422 and r.json()["field"] == "cert_data"
    r = api.post(f"{INV}/ssl/{shop}", json={"type": "self-signed"})
    assert r.status_code == 422
    ok(api.post(f"{INV}/domains", json={"domain": "someone-elses.com"}), 201)
    for path, body in (
        (f"{INV}/ssl/someone-elses.com", {"type": "internal"}),
        (f"{INV}/ssl/someone-elses.com", {"type": "lets_encrypt"}),
        (f"{INV}/ssl/someone-elses.com?wait=false", {}),
    ):
        r = api.post(path, json=body)
        assert r.status_code == 409 and "not verified" in r.json()["detail"], r.text
    assert ok(api.get(f"{INV}/ssl/someone-elses.com"))["status"] == "none"
    viewer = api.token("viewer")
    r = api.post(f"{INV}/ssl/{shop}", json={"type": "internal"}, token=viewer)
    assert r.status_code == 403


def test_an_unreachable_ca_is_a_502_naming_it(api: Api, shop: str) -> None:
    import dataclasses

    state = api.client.app.state  # type: ignore[attr-defined]
    state.settings = dataclasses.replace(
        state.settings, acme_directory="https://127.0.0.1:9/directory"
    )
    r = api.post(f"{INV}/ssl/{shop}", json={"type": "lets_encrypt"})
    assert r.status_code == 502, r.text
    problem = r.json()
    assert problem["reason"] == "unreachable" and "127.0.0.1:9" in problem["detail"]
    state.settings = dataclasses.replace(state.settings, acme_directory="not a url")
    r = api.post(f"{INV}/ssl/{shop}", json={"type": "lets_encrypt"})
    assert r.status_code == 502 and "ACME is not configured" in r.json()["detail"]


def test_sdk_ssl_service(api: Api, shop: str) -> None:
    import asyncio

    from edgeplane import CertType, SSLService
    from edgeplane.errors import Conflict, InvalidInput
    from edgeplane.sdk import embedded
    from edgeplane.sdk.client import Client
    from edgeplane.settings import Settings

    # The same home as the API's app: the same key decrypts the internal CA.
    client = Client(Settings(home=api.tmp / "home", database_url=api.db.url))
    service = SSLService(client=client)
    ca, leaf = chain(shop)

    async def scenario() -> None:
        internal = await service.provision_certificate(shop, CertType.INTERNAL)
        assert internal.issuer == "internal"
        custom = await service.upload_custom_certificate(shop, leaf.pem + ca.pem, leaf.key_pem)
        status = await service.get_certificate_status(shop)
        assert status.certificate is not None and status.certificate.id == custom.id
        try:
            await service.renew_certificate(shop)
        except Conflict as exc:
            assert "uploaded" in exc.message
        else:
            raise AssertionError("an uploaded certificate was renewed")
        try:
            await service.upload_custom_certificate(shop, leaf.pem, ca.key_pem)
        except InvalidInput as exc:
            assert exc.field == "key_data"
        else:
            raise AssertionError("a mismatched key was accepted")
        revoked = await service.revoke_certificate(shop)
        assert revoked.id == custom.id and revoked.status == "revoked"
        status = await service.get_certificate_status(shop)
        assert status.certificate is not None and status.certificate.id == internal.id
        await client.aclose()

    try:
        asyncio.run(scenario())
    finally:
        app = embedded._apps.pop(api.db.url, None)
        if app is not None:
            app.state.db.dispose()
