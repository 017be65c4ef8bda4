"""The project's certificates at a glance (``GET /ssl``, paged by domain), one version in
detail (its chain decoded), the auto-renewal switch, and internal orders followed like ACME
ones (``wait=false``)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from conftest import Api
from edgeplane.store.tables import utcnow
from unit.test_certs_upload import make

INV = "/api/v1/infrastructure"


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def test_the_list_pages_domains_with_their_certificates(api: Api) -> None:
    for name in ("a.test", "b.test", "c.test"):
        ok(api.post(f"{INV}/domains", json={"domain": name}), 201)
    ok(api.post(f"{INV}/domains", json={"domain": "pending.edgeplane-ssl-list.com"}), 201)
    ok(api.post(f"{INV}/ssl/b.test", json={"type": "internal"}), 201)
    first = ok(api.get(f"{INV}/ssl", params={"limit": 2}))
    assert [c["domain"] for c in first["certificates"]] == ["a.test", "b.test"]
    assert first["next_cursor"] == "b.test"
    a, b = first["certificates"]
    assert a["status"] == "active" and a["versions"] == 1 and a["domain_status"] == "active"
    assert a["certificate"]["issuer"] == "internal" and a["certificate"]["auto_renew"]
    assert a["expires_at"] == a["certificate"]["not_after"]
    assert a["renewal"]["due_at"] is not None and a["renewal"]["attempts"] == 0
    assert b["versions"] == 2
    assert b["certificate"]["id"] == ok(api.get(f"{INV}/ssl/b.test"))["certificate"]["id"]
    rest = ok(api.get(f"{INV}/ssl", params={"cursor": first["next_cursor"]}))
    names = [c["domain"] for c in rest["certificates"]]
    assert names == ["c.test", "pending.edgeplane-ssl-list.com"]
    pending = rest["certificates"][1]
    assert pending["status"] == "none" and pending["certificate"] is None
    assert pending["domain_status"] == "pending" and pending["versions"] == 0
    assert rest["next_cursor"] is None
    r = api.get(f"{INV}/ssl", params={"limit": 0})
    assert r.status_code == 422


def test_details_decode_the_chain(api: Api) -> None:
    ok(api.post(f"{INV}/domains", json={"domain": "shop.test"}), 201)
    now = utcnow()
    dates = {"not_before": now - timedelta(days=1), "not_after": now + timedelta(days=60)}
    root = make("Upload Root", ca=True, **dates)
    ca = make("Upload CA", ca=True, issuer=root, **dates)
    leaf = make("shop.test", issuer=ca, **dates)
    cert = ok(
        api.post(
            f"{INV}/ssl/shop.test/upload",
            json={"cert_data": leaf.pem + ca.pem + root.pem, "key_data": leaf.key_pem},
        ),
        201,
    )["certificate"]
    doc = ok(api.get(f"{INV}/ssl/shop.test/certificates/{cert['id']}"))
    assert doc["served"] and doc["certificate"]["fingerprint"] == cert["fingerprint"]
    assert doc["key_type"] == "EC P-256" and doc["key_size"] == 256
    assert [c["subject"] for c in doc["chain"]] == ["CN=shop.test", "CN=Upload CA"]
    assert doc["chain"][0]["issuer"] == "CN=Upload CA" and doc["chain"][1]["is_ca"]
    assert doc["chain"][1]["issuer"] == "CN=Upload Root" and not doc["chain"][0]["is_ca"]
    assert doc["chain"][0]["fingerprint"] == cert["fingerprint"]
    assert doc["serial"] == format(leaf.cert.serial_number, "x")
    assert "PRIVATE KEY" not in str(doc) and doc["chain_pem"].startswith("-----BEGIN CERT")
    internal_id = ok(api.get(f"{INV}/ssl/shop.test"))["certificates"][1]["id"]
    older = ok(api.get(f"{INV}/ssl/shop.test/certificates/{internal_id}"))
    assert not older["served"] and older["certificate"]["issuer"] == "internal"
    r = api.get(f"{INV}/ssl/shop.test/certificates/cert-nope")
    assert r.status_code == 404


def test_auto_renew_is_switched_on_the_served_certificate(api: Api) -> None:
    ok(api.post(f"{INV}/domains", json={"domain": "renew.test"}), 201)
    off = ok(api.patch(f"{INV}/ssl/renew.test", json={"auto_renew": False}))
    assert off["auto_renew"] is False
    status = ok(api.get(f"{INV}/ssl/renew.test"))
    assert status["certificate"]["auto_renew"] is False and status["renewal"] is None
    # Renewing now keeps the setting; so does an internal certificate asked for without it.
    renewed = ok(api.post(f"{INV}/ssl/renew.test/renew"), 201)["certificate"]
    assert renewed["id"] != off["id"] and renewed["auto_renew"] is False
    asked = ok(api.post(f"{INV}/ssl/renew.test", json={"type": "internal", "auto_renew": False}),
               201)["certificate"]
    assert asked["auto_renew"] is False
    assert ok(api.patch(f"{INV}/ssl/renew.test", json={"auto_renew": True}))["auto_renew"]
    r = api.patch(f"{INV}/ssl/renew.test", json={"auto_renew": "maybe"})
    assert r.status_code == 422
    # An upload is renewed by people: refused on the field.
    now = utcnow()
    leaf = make("renew.test", not_before=now - timedelta(days=1), not_after=now + timedelta(30))
    ok(api.post(f"{INV}/ssl/renew.test/upload",
                json={"cert_data": leaf.pem, "key_data": leaf.key_pem}), 201)
    r = api.patch(f"{INV}/ssl/renew.test", json={"auto_renew": True})
    assert r.status_code == 409 and r.json()["field"] == "auto_renew", r.text


def test_an_internal_order_is_followed_like_an_acme_one(api: Api) -> None:
    ok(api.post(f"{INV}/domains", json={"domain": "order.test"}), 201)
    order = ok(
        api.post(f"{INV}/ssl/order.test", params={"wait": "false"}, json={"type": "internal"}),
        202,
    )
    assert order["status"] == "running" and order["events"][0]["message"] == "order accepted"
    deadline = time.monotonic() + 20
    while order["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
        order = ok(api.get(f"{INV}/ssl/order.test/orders/{order['id']}"))
    assert order["status"] == "valid", order
    messages = [e["message"] for e in order["events"]]
    assert "issuing from the internal CA" in messages and messages[-1].startswith("issued cert-")
    served = ok(api.get(f"{INV}/ssl/order.test"))["certificate"]
    assert order["result"]["certificate"]["id"] == served["id"]
    # Refused before anything starts: an unverified domain.
    ok(api.post(f"{INV}/domains", json={"domain": "late.edgeplane-ssl-list.com"}), 201)
    r = api.post(f"{INV}/ssl/late.edgeplane-ssl-list.com", params={"wait": "false"},
                 json={"type": "internal"})
    assert r.status_code == 409 and r.json()["field"] == "domain"
