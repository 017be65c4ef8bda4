"""The internal CA's OCSP responder (good / revoked / unknown / unauthorized, malformed
requests refused) and the control plane's staples: fetched, checked, stored, carried by the
snapshot, the last good one kept while the responder fails, dropped once stale."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from sqlalchemy import select

from conftest import Api, Cli
from edgeplane.certificates import staples, stapling
from edgeplane.protocol.config import NodeSpec
from edgeplane.snapshot.build import snapshot
from edgeplane.snapshot.load import load_state
from edgeplane.store.actor import LOCAL
from edgeplane.store.tables import utcnow
from unit.test_certs_upload import make

INV = "/api/v1/infrastructure"
NODE = NodeSpec(id="node-1", name="n1", region="eu-central")
OCSP_URL = "http://testserver/ocsp"


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if status != 204 else None


@pytest.fixture
def shop(api: Api) -> str:
    api.db.ocsp_url = OCSP_URL  # what `serve` / `up` give their Database
    ok(api.post(f"{INV}/domains", json={"domain": "shop.test"}), 201)
    return "shop.test"


def served(api: Api, domain: str) -> tuple[x509.Certificate, x509.Certificate]:
    pem = ok(api.get(f"{INV}/ssl/{domain}"))["certificate"]["id"]
    with api.db.read(LOCAL, "default") as tx:
        from edgeplane.store.tables import CertificateRow

        row = tx.session.get(CertificateRow, ("default", pem))
        assert row is not None
        chain = x509.load_pem_x509_certificates(row.cert_pem.encode())
    return chain[0], chain[1]


def ask(api: Api, leaf: x509.Certificate, issuer: x509.Certificate, get: bool = False) -> Any:
    der = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(leaf, issuer, hashes.SHA1())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    if get:
        r = api.client.get("/ocsp/" + base64.b64encode(der).decode().replace("/", "%2F"))
    else:
        r = api.client.post(
            "/ocsp", content=der, headers={"Content-Type": "application/ocsp-request"}
        )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/ocsp-response"
    return ocsp.load_der_ocsp_response(r.content), r.content


def snapshot_certs(api: Api) -> list[Any]:
    with api.db.read(LOCAL, "default") as tx:
        return list(snapshot(load_state(tx.session, tx.secrets), NODE, 1).certs)


def via_app(api: Api) -> stapling.Fetch:
    def fetch(url: str, der: bytes) -> bytes:
        assert url == OCSP_URL
        r = api.client.post("/ocsp", content=der)
        if r.status_code != 200:
            raise staples.StapleError(f"the responder answered HTTP {r.status_code}")
        return r.content

    return fetch


def test_internal_certificates_name_the_responder_which_answers_good(api: Api, shop: str) -> None:
    leaf, issuer = served(api, shop)
    assert staples.ocsp_url(leaf) == OCSP_URL
    for get in (False, True):
        response, der = ask(api, leaf, issuer, get=get)
        assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
        assert response.serial_number == leaf.serial_number
        assert response.next_update_utc - response.this_update_utc == timedelta(days=4)
        # Signed by the intermediate that issued the leaf, and fit to staple.
        checked = staples.check(der, leaf, issuer, utcnow())
        assert checked.status == "good"


def test_revoked_and_deleted_certificates_answer_revoked(api: Api, shop: str) -> None:
    first, issuer = served(api, shop)
    ok(api.post(f"{INV}/ssl/{shop}", json={"type": "internal"}), 201)
    second, _ = served(api, shop)
    assert second.serial_number != first.serial_number
    ok(api.post(f"{INV}/ssl/{shop}/revoke"))  # the newest: back to the first
    response, der = ask(api, second, issuer)
    assert response.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_reason == x509.ReasonFlags.unspecified
    with pytest.raises(staples.StapleError, match="revoked"):
        staples.check(der, second, issuer, utcnow())
    assert ask(api, first, issuer)[0].certificate_status == ocsp.OCSPCertStatus.GOOD
    ok(api.delete(f"{INV}/domains/{shop}"), 204)
    response, _ = ask(api, first, issuer)
    assert response.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_reason == x509.ReasonFlags.cessation_of_operation


def test_unknown_serials_other_issuers_and_malformed_requests(api: Api, shop: str) -> None:
    leaf, issuer = served(api, shop)
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA256()).build()
    unknown = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(
            request.issuer_name_hash, request.issuer_key_hash, 12345, hashes.SHA256()
        )
        .build()
    )
    r = api.client.post("/ocsp", content=unknown.public_bytes(serialization.Encoding.DER))
    response = ocsp.load_der_ocsp_response(r.content)
    assert response.certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    other_ca = make("Other CA", ca=True)
    other = make("x.test", issuer=other_ca)
    r = api.client.post(
        "/ocsp",
        content=ocsp.OCSPRequestBuilder()
        .add_certificate(other.cert, other_ca.cert, hashes.SHA1())
        .build()
        .public_bytes(serialization.Encoding.DER),
    )
    assert ocsp.load_der_ocsp_response(r.content).response_status == (
        ocsp.OCSPResponseStatus.UNAUTHORIZED
    )
    for bad in (b"", b"not an OCSP request", b"\x30\x03\x02\x01\x01"):
        r = api.client.post("/ocsp", content=bad)
        assert r.status_code == 400, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "OCSP request" in r.json()["detail"]
    r = api.client.get("/ocsp/%%%not-base64***")
    assert r.status_code == 400
    assert r.json()["field"] == "path" or "base64" in r.json()["detail"]


def test_staples_are_stored_refreshed_and_kept_while_the_responder_fails(
    api: Api, shop: str, cli: Cli
) -> None:
    # The first staple is made with the certificate: served from the first handshake.
    [cert] = snapshot_certs(api)
    assert cert.ocsp_staple
    leaf, issuer = served(api, shop)
    first = staples.check(base64.b64decode(cert.ocsp_staple), leaf, issuer, utcnow())
    status = ok(api.get(f"{INV}/ssl/{shop}"))["ocsp"]
    assert status["stapled"] is True and status["status"] == "good"
    assert status["ocsp_url"] == OCSP_URL and status["attempts"] == 0
    # Not due before half of its validity (2 days of 4); then fetched from the responder.
    assert stapling.run_once(api.db, fetch=via_app(api)) == 0
    later = first.this_update + timedelta(days=2, minutes=1)
    before = api.db.current_revision()
    assert stapling.run_once(api.db, fetch=via_app(api), now=later) == 1
    assert api.db.current_revision() > before  # reaches the nodes
    [cert] = snapshot_certs(api)
    good = staples.check(base64.b64decode(cert.ocsp_staple or ""), leaf, issuer, utcnow())
    assert good.status == "good"

    def failing(url: str, der: bytes) -> bytes:
        raise staples.StapleError("the responder answered HTTP 503")

    retry = later + timedelta(minutes=10)
    revision = api.db.current_revision()
    assert stapling.run_once(api.db, fetch=failing, now=retry) == 0
    assert api.db.current_revision() == revision  # nothing new for the nodes
    assert [c.ocsp_staple for c in snapshot_certs(api)] == [cert.ocsp_staple]  # the last good
    status = ok(api.get(f"{INV}/ssl/{shop}"))["ocsp"]
    assert status["stapled"] is True and status["attempts"] == 1
    assert status["last_error"] == "the responder answered HTTP 503"
    out = cli.run("cert", "status", shop).stdout
    assert "OCSP staple" in out and "good until" in out and "HTTP 503" in out
    # Past its nextUpdate the kept response is dropped (a revision: nodes stop stapling it).
    stale = good.next_update + timedelta(seconds=1)
    stapling.run_once(api.db, fetch=failing, now=stale)
    assert api.db.current_revision() > revision
    assert ok(api.get(f"{INV}/ssl/{shop}"))["ocsp"]["stapled"] is False
    assert [c.ocsp_staple for c in snapshot_certs(api)] == [None]


def test_the_control_plane_asks_its_own_responder_in_process(api: Api, shop: str) -> None:
    # http://testserver is not reachable over the network: only the in-process path works.
    [cert] = snapshot_certs(api)
    leaf, issuer = served(api, shop)
    first = staples.check(base64.b64decode(cert.ocsp_staple or ""), leaf, issuer, utcnow())
    later = first.this_update + timedelta(days=2, minutes=1)
    assert stapling.run_once(api.db, now=later) == 1
    assert ok(api.get(f"{INV}/ssl/{shop}"))["ocsp"]["last_error"] is None


def test_a_certificate_without_an_ocsp_url_is_never_fetched(api: Api) -> None:
    # No public URL: the internal CA names no responder.
    ok(api.post(f"{INV}/domains", json={"domain": "plain.test"}), 201)
    calls: list[str] = []

    def fetch(url: str, der: bytes) -> bytes:
        calls.append(url)
        raise AssertionError("fetched")

    assert stapling.run_once(api.db, fetch=fetch) == 0
    assert stapling.run_once(api.db, fetch=fetch) == 0
    assert calls == []
    status = ok(api.get(f"{INV}/ssl/plain.test"))["ocsp"]
    assert status["ocsp_url"] is None and status["stapled"] is False
    assert [c.ocsp_staple for c in snapshot_certs(api)] == [None]


def test_a_run_over_many_certificates_skips_one_deleted_meanwhile(api: Api, shop: str) -> None:
    # Certificates of two projects due in one run: read and written in batches. One domain is
    # deleted while its staple is fetched: the others are stored, it gets no row.
    ok(api.post("/api/v1/projects", json={"id": "other"}), 201)
    for name in ("a.test", "b.test", "c.test"):
        ok(api.post(f"{INV}/domains", json={"domain": name}), 201)
    ok(api.post(f"{INV}/domains", params={"project": "other"}, json={"domain": "o.test"}), 201)
    [cert] = [c for c in snapshot_certs(api) if shop in c.names]
    leaf, issuer = served(api, shop)
    first = staples.check(base64.b64decode(cert.ocsp_staple or ""), leaf, issuer, utcnow())
    later = first.this_update + timedelta(days=2, minutes=1)
    own = stapling.own_or_http(api.db)
    gone = served(api, "b.test")[0].serial_number
    asked: list[int] = []

    def fetch(url: str, der: bytes) -> bytes:
        serial = ocsp.load_der_ocsp_request(der).serial_number
        asked.append(serial)
        if serial == gone:
            ok(api.client.delete(f"{INV}/domains/b.test", headers=api.headers()), 204)
        return own(url, der)

    assert stapling.run_once(api.db, fetch=fetch, now=later) == 4  # shop, a, c and o
    assert len(asked) == 5 and gone in asked
    for name in (shop, "a.test", "c.test"):
        assert ok(api.get(f"{INV}/ssl/{name}"))["ocsp"]["stapled"] is True, name
    other = ok(api.get(f"{INV}/ssl/o.test", params={"project": "other"}))["ocsp"]
    assert other["stapled"] is True and other["status"] == "good"
    assert api.get(f"{INV}/ssl/b.test").status_code == 404
    with api.db.read(LOCAL, "default") as tx:
        from edgeplane.store.tables import OcspStapleRow

        rows = tx.session.execute(
            select(OcspStapleRow.project_id, OcspStapleRow.certificate_id)
        ).all()
    assert sorted(p for p, _c in rows) == ["default", "default", "default", "other"]
