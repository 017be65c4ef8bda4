"""Domains: validation, uniqueness, the internal certificate issued at once, the snapshot."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store
from sqlalchemy import select

from conftest import Api
from edgeplane.edge.config import NodeSpec
from edgeplane.edge.snapshot import snapshot
from edgeplane.edge.state import load_state
from edgeplane.services.actor import LOCAL
from edgeplane.store.tables import CertificateRow

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
        config = snapshot(load_state(tx.session), NODE, 1)
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
        leaf_pem, key_encrypted = row.cert_pem, row.key_encrypted
    assert "PRIVATE KEY" not in key_encrypted  # encrypted at rest
    leaf = x509.load_pem_x509_certificate(leaf_pem.encode())
    verifier = (
        PolicyBuilder().store(Store([root])).build_server_verifier(x509.DNSName("app.example.com"))
    )
    chain = verifier.verify(leaf, [])
    assert chain[-1] == root
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert 89 <= lifetime.days <= 91

    # The snapshot serves the domain with that certificate and its (decrypted) key.
    with api.db.read(LOCAL, "default") as tx:
        config = snapshot(load_state(tx.session), NODE, 1)
    assert [c.names for c in config.certs] == [("app.example.com",)]
    assert "PRIVATE KEY" in config.certs[0].key_pem
    assert config.sites[0].force_https is True  # a certificate exists for every domain

    # The root stays the same: it is created once.
    again = api.client.get(f"{INV}/ca.pem")
    assert again.content == root_pem.content


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
