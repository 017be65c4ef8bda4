"""Domains: validation, uniqueness, the internal certificate issued at once, the snapshot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from sqlalchemy import select

from conftest import Api
from edgeplane.certificates import internal_ca
from edgeplane.certificates.internal_ca import INTERMEDIATE_SECRET_NAME, SECRET_NAME
from edgeplane.protocol.config import NodeSpec
from edgeplane.snapshot.build import snapshot
from edgeplane.snapshot.load import load_state
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.store.tables import CertificateRow, SecretRow

INV = "/api/v1/infrastructure"
NODE = NodeSpec(id="node-1", name="n1", region="eu-central")


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if status != 204 else None


def add(api: Api, domain: str, project: str | None = None, **kw: Any) -> Any:
    params = {"project": project} if project else None
    return api.post(f"{INV}/domains", json={"domain": domain, **kw}, params=params)


def served(api: Api) -> dict[str, tuple[str, ...]]:
    with api.db.read(LOCAL, "default") as tx:
        config = snapshot(load_state(tx.session, tx.secrets), NODE, 1)
    return {s.id: s.domains for s in config.sites}


def test_a_domain_gets_a_certificate_that_chains_to_the_internal_root(api: Api) -> None:
    doc = ok(add(api, "App.Example.COM."), 201)
    assert doc["verification_required"] is False
    domain = doc["domain_config"]
    assert domain["domain"] == "app.example.com" and domain["status"] == "active"
    cert_info = domain["certificate"]
    assert cert_info["issuer"] == "internal" and cert_info["names"] == ["app.example.com"]
    assert not {"key", "key_pem", "private_key", "cert_pem"} & set(cert_info)

    status = ok(api.get(f"{INV}/ssl/app.example.com"))
    assert status["status"] == "active" and status["certificate"]["id"] == cert_info["id"]

    root_pem = api.client.get(f"{INV}/ca.pem")  # public: no token needed
    assert root_pem.status_code == 200 and b"BEGIN CERTIFICATE" in root_pem.content
    root = x509.load_pem_x509_certificate(root_pem.content)

    with api.db.read(LOCAL, "default") as tx:
        row = tx.session.scalar(select(CertificateRow))
        assert row is not None
        chain_pem, key_encrypted = row.cert_pem, row.key_encrypted
    assert "PRIVATE KEY" not in key_encrypted  # encrypted at rest
    # What a server sends: the leaf, then the intermediate (not the root).
    leaf, intermediate = x509.load_pem_x509_certificates(chain_pem.encode())
    assert cert_info["fingerprint"] == leaf.fingerprint(hashes.SHA256()).hex()
    assert_intermediate_of(intermediate, root)
    assert leaf.issuer == intermediate.subject
    verifier = (
        PolicyBuilder().store(Store([root])).build_server_verifier(x509.DNSName("app.example.com"))
    )
    assert verifier.verify(leaf, [intermediate]) == [leaf, intermediate, root]
    with pytest.raises(VerificationError):
        verifier.verify(leaf, [])  # the root did not sign the leaf itself
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert 89 <= lifetime.days <= 91

    # The snapshot serves the domain with that certificate and its (decrypted) key.
    with api.db.read(LOCAL, "default") as tx:
        config = snapshot(load_state(tx.session, tx.secrets), NODE, 1)
    assert [c.names for c in config.certs] == [("app.example.com",)]
    assert config.certs[0].cert_pem == chain_pem  # nginx gets the leaf and the intermediate
    assert "PRIVATE KEY" in config.certs[0].key_pem
    assert config.sites[0].force_https is True  # a certificate exists for every domain

    # The root stays the same: it is created once.
    again = api.client.get(f"{INV}/ca.pem")
    assert again.content == root_pem.content


def assert_intermediate_of(intermediate: x509.Certificate, root: x509.Certificate) -> None:
    """A CA that may sign leaves only (pathLen 0), issued by ``root`` (itself pathLen 1)."""
    constraints = intermediate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is True and constraints.path_length == 0
    assert intermediate.issuer == root.subject != intermediate.subject
    intermediate.verify_directly_issued_by(root)
    root_constraints = root.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert root_constraints.ca is True and root_constraints.path_length == 1
    lifetime = intermediate.not_valid_after_utc - intermediate.not_valid_before_utc
    assert 1820 <= lifetime.days <= 1830
    assert intermediate.not_valid_after_utc <= root.not_valid_after_utc


def chain_of(api: Api, domain: str) -> list[x509.Certificate]:
    with api.db.read(LOCAL, "default") as tx:
        row = tx.session.scalar(select(CertificateRow).where(CertificateRow.domain == domain))
        assert row is not None
        return x509.load_pem_x509_certificates(row.cert_pem.encode())


def secret(api: Api, name: str) -> SecretRow | None:
    with api.db.read(LOCAL, PLATFORM_PROJECT) as tx:
        row = tx.session.get(SecretRow, name)
        if row is not None:
            tx.session.expunge(row)
        return row


def test_an_installation_with_only_a_root_gets_an_intermediate_on_the_next_issue(
    api: Api,
) -> None:
    ok(add(api, "first.test"), 201)
    root_pem = api.client.get(f"{INV}/ca.pem").content
    root = x509.load_pem_x509_certificate(root_pem)
    first = secret(api, INTERMEDIATE_SECRET_NAME)
    assert first is not None and first.public is not None
    assert "PRIVATE KEY" not in first.value_encrypted  # encrypted at rest
    assert chain_of(api, "first.test")[1].public_bytes(serialization.Encoding.PEM).decode() == (
        first.public
    )

    # An installation from before the intermediate: only the root is in the secrets table.
    with api.db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        row = tx.session.get(SecretRow, INTERMEDIATE_SECRET_NAME)
        assert row is not None
        tx.session.delete(row)
    assert secret(api, INTERMEDIATE_SECRET_NAME) is None

    ok(add(api, "second.test"), 201)
    again = secret(api, INTERMEDIATE_SECRET_NAME)
    assert again is not None and again.public is not None and again.public != first.public
    assert api.client.get(f"{INV}/ca.pem").content == root_pem  # the root stays the same
    root_row = secret(api, SECRET_NAME)
    assert root_row is not None and root_row.public is not None
    assert root_row.public.encode() == root_pem

    leaf, intermediate = chain_of(api, "second.test")
    assert intermediate.public_bytes(serialization.Encoding.PEM).decode() == again.public
    assert_intermediate_of(intermediate, root)
    verifier = (
        PolicyBuilder().store(Store([root])).build_server_verifier(x509.DNSName("second.test"))
    )
    assert verifier.verify(leaf, [intermediate]) == [leaf, intermediate, root]
    # The first leaf still verifies through the intermediate it was issued with.
    old_leaf, old_intermediate = chain_of(api, "first.test")
    verifier = (
        PolicyBuilder().store(Store([root])).build_server_verifier(x509.DNSName("first.test"))
    )
    assert verifier.verify(old_leaf, [old_intermediate])[-1] == root

    # The next issue reuses the intermediate.
    ok(add(api, "third.test"), 201)
    assert chain_of(api, "third.test")[1] == intermediate
    third = secret(api, INTERMEDIATE_SECRET_NAME)
    assert third is not None and third.public == again.public


def test_an_intermediate_that_would_expire_before_a_new_leaf_is_replaced(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(internal_ca, "INTERMEDIATE_DAYS", 30)
    ok(add(api, "short.test"), 201)
    leaf, short = chain_of(api, "short.test")
    assert (short.not_valid_after_utc - short.not_valid_before_utc).days == 30
    assert leaf.not_valid_after_utc <= short.not_valid_after_utc  # never outlives its issuer
    monkeypatch.undo()

    ok(add(api, "long.test"), 201)
    leaf, replaced = chain_of(api, "long.test")
    root = x509.load_pem_x509_certificate(api.client.get(f"{INV}/ca.pem").content)
    assert replaced != short
    assert_intermediate_of(replaced, root)
    assert 89 <= (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days <= 91


def test_a_legacy_root_that_may_not_certify_a_ca_keeps_signing_leaves_itself(api: Api) -> None:
    """Roots made before the intermediate (as the old code made them) have pathLen 0: an
    intermediate under one would not verify, so leaves stay signed by the root that clients
    already trust."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Edgeplane internal root CA")])
    now = datetime.now(UTC)
    legacy = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    legacy_pem = legacy.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    with api.db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        box = tx.secrets
        tx.session.add(
            SecretRow(name=SECRET_NAME, value_encrypted=box.encrypt(key_pem), public=legacy_pem)
        )

    ok(add(api, "legacy.test"), 201)
    assert api.client.get(f"{INV}/ca.pem").text == legacy_pem
    assert secret(api, INTERMEDIATE_SECRET_NAME) is None
    [leaf] = chain_of(api, "legacy.test")
    verifier = (
        PolicyBuilder().store(Store([legacy])).build_server_verifier(x509.DNSName("legacy.test"))
    )
    assert verifier.verify(leaf, []) == [leaf, legacy]


@pytest.mark.parametrize(
    "name",
    [
        "",
        "nodot",
        "-bad.example",
        "bad-.example",
        "a..example",
        "1.2.3.4",
        "*.example.com",
        "x" * 64 + ".example",
        "under_score.example",
        "sp ace.example",
    ],
)
def test_bad_names_are_refused_naming_the_field(api: Api, name: str) -> None:
    r = add(api, name)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "domain"
    assert ok(api.get(f"{INV}/domains"))["domains"] == []


def test_international_names_are_stored_as_a_labels(api: Api) -> None:
    doc = ok(add(api, "Bücher.Example"), 201)
    assert doc["domain_config"]["domain"] == "xn--bcher-kva.example"
    assert ok(api.get(f"{INV}/domains/Bücher.example"))["domain"] == "xn--bcher-kva.example"


def test_a_name_belongs_to_one_project(api: Api) -> None:
    ok(api.post("/api/v1/projects", json={"id": "other"}), 201)
    ok(add(api, "shop.test"), 201)
    r = add(api, "shop.test")
    assert r.status_code == 409 and r.json()["field"] == "domain"
    r = add(api, "SHOP.test", project="other")
    assert r.status_code == 409 and r.json()["field"] == "domain"
    assert "another project" in r.json()["detail"]
    # The other project cannot see or delete it.
    assert api.get(f"{INV}/domains/shop.test", params={"project": "other"}).status_code == 404
    assert api.delete(f"{INV}/domains/shop.test", params={"project": "other"}).status_code == 404
    assert api.get(f"{INV}/ssl/shop.test", params={"project": "other"}).status_code == 404


def test_list_is_paged_and_viewers_cannot_add(api: Api) -> None:
    for name in ("c.test", "a.test", "b.test"):
        ok(add(api, name), 201)
    page = ok(api.get(f"{INV}/domains", params={"limit": 2}))
    assert [d["domain"] for d in page["domains"]] == ["a.test", "b.test"]
    rest = ok(api.get(f"{INV}/domains", params={"cursor": page["next_cursor"]}))
    assert [d["domain"] for d in rest["domains"]] == ["c.test"] and rest["next_cursor"] is None
    viewer = api.token("viewer")
    r = api.post(f"{INV}/domains", token=viewer, json={"domain": "v.test"})
    assert r.status_code == 403
    assert ok(api.get(f"{INV}/domains/a.test", token=viewer))["domain"] == "a.test"


def test_delete_removes_the_domain_from_the_snapshot(api: Api) -> None:
    rev0 = ok(api.get("/api/v1/revision"))["revision"]
    ok(add(api, "one.localhost"), 201)
    ok(add(api, "two.localhost"), 201)
    assert ok(api.get("/api/v1/revision"))["revision"] > rev0
    assert served(api) == {"default": ("one.localhost", "two.localhost")}
    ok(api.delete(f"{INV}/domains/one.localhost"), 204)
    assert served(api) == {"default": ("two.localhost",)}
    assert api.get(f"{INV}/domains/one.localhost").status_code == 404
    assert api.get(f"{INV}/ssl/one.localhost").status_code == 404
    ok(api.delete(f"{INV}/domains/two.localhost"), 204)
    assert served(api) == {}
    with api.db.read(LOCAL, "default") as tx:
        assert tx.session.scalar(select(CertificateRow)) is None
    # The name is free again, for any project.
    ok(api.post("/api/v1/projects", json={"id": "other"}), 201)
    ok(add(api, "one.localhost", project="other"), 201)
    assert served(api) == {"other": ("one.localhost",)}
