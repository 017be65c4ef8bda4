"""OCSP stapling end to end through `edgeplane up`: the internal CA names the control plane's
responder in a domain's certificate, the control plane fetches and checks the staple, the
snapshot carries it and the local edge node's nginx staples it from the first handshake after
(``openssl s_client -status``, and the raw staple checked against the CA in Python). An
uploaded certificate without an OCSP URL is served without a staple."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from datetime import timedelta

import pytest
from cryptography import x509
from edge_agents import Api, searchable_tmp, wait_for
from nginx_edge import Edge
from processes import ControlPlane, clean_env, start_up
from test_edge_stapling import raw_staple, s_client

from edgeplane.certificates import staples
from edgeplane.store.tables import utcnow
from unit.test_certs_upload import make

pytestmark = pytest.mark.integration

INV = "/api/v1/infrastructure"


@pytest.fixture(scope="module")
def up() -> Iterator[tuple[ControlPlane, Api]]:
    tmp = searchable_tmp("ocsp-")
    env = clean_env(
        EDGEPLANE_STAPLE_INTERVAL="0.5",
        EDGEPLANE_DNS_RESOLVERS="127.0.0.1:9",
        EDGEPLANE_INTERNAL_OCSP="1",
    )
    cp = start_up(tmp / "cp", env=env, edge=True)
    api = Api(cp)
    try:
        yield cp, api
    finally:
        api.close()
        cp.stop()
        shutil.rmtree(tmp, ignore_errors=True)


class _Port:
    """What ``s_client`` / ``raw_staple`` need of an edge: its HTTPS port."""

    def __init__(self, port: int) -> None:
        self.local = type("L", (), {"https_port": port})()


def test_internal_certificate_is_stapled_from_the_control_plane(
    up: tuple[ControlPlane, Api],
) -> None:
    cp, api = up
    assert cp.https_port is not None
    edge: Edge = _Port(cp.https_port)  # type: ignore[assignment]
    api.ok("POST", f"{INV}/domains", json={"domain": "shop.test"})
    status = wait_for(
        lambda: (
            (doc := api.ok("GET", f"{INV}/ssl/shop.test"))["ocsp"]
            and doc["ocsp"]["stapled"]
            and doc
        ),
        30,
        "a staple for shop.test",
    )
    assert status["ocsp"]["ocsp_url"] == f"{cp.url}/ocsp"
    assert status["ocsp"]["status"] == "good"
    text = wait_for(
        lambda: (
            (t := s_client(edge, "shop.test")) and "OCSP Response Status: successful" in t and t
        ),
        30,
        "nginx staples shop.test",
    )
    assert "Cert Status: good" in text
    der, leaf = raw_staple(edge, "shop.test")
    chain = x509.load_pem_x509_certificates(api.http.get(f"{INV}/ca.pem").content)
    root = chain[0]
    assert staples.ocsp_url(leaf) == f"{cp.url}/ocsp"
    assert leaf.issuer != root.subject  # issued by the intermediate, which the edge sends
    intermediate_text = s_client(edge, "shop.test")
    assert "Edgeplane internal intermediate CA" in intermediate_text
    # The staple verifies against the intermediate (signed by the root the user trusts).
    with_chain = [c for c in _peer_chain("shop.test", cp.https_port) if c.subject == leaf.issuer]
    assert with_chain, "the intermediate is sent"
    with_chain[0].verify_directly_issued_by(root)
    checked = staples.check(der, leaf, with_chain[0], utcnow())
    assert checked.status == "good"
    assert checked.next_update - checked.this_update == timedelta(days=4)


def test_an_upload_without_an_ocsp_url_is_served_without_a_staple(
    up: tuple[ControlPlane, Api],
) -> None:
    cp, api = up
    assert cp.https_port is not None
    edge: Edge = _Port(cp.https_port)  # type: ignore[assignment]
    api.ok("POST", f"{INV}/domains", json={"domain": "plain.test"})
    now = dt.datetime.now(dt.UTC)
    dates = {"not_before": now - timedelta(days=1), "not_after": now + timedelta(days=60)}
    ca = make("Upload CA", ca=True, **dates)
    leaf = make("plain.test", issuer=ca, **dates)
    api.ok(
        "POST",
        f"{INV}/ssl/plain.test/upload",
        json={"cert_data": leaf.pem + ca.pem, "key_data": leaf.key_pem},
    )

    def served() -> bool:
        try:
            return raw_staple(edge, "plain.test")[1] == leaf.cert
        except Exception as exc:  # no certificate for the name yet: the handshake is refused
            assert "unrecognized name" in str(exc), exc
            return False

    wait_for(served, 30, "the upload is served")
    wait_for(
        lambda: (api.ok("GET", f"{INV}/ssl/plain.test")["ocsp"] or {}).get("ocsp_url", 1) is None,
        30,
        "the staple job looked at the upload",
    )
    assert "OCSP response: no response sent" in s_client(edge, "plain.test")
    assert raw_staple(edge, "plain.test")[0] == b""
    # The internal certificate of the other name keeps its staple.
    assert "Cert Status: good" in s_client(edge, "shop.test")


def _peer_chain(name: str, port: int) -> list[x509.Certificate]:
    import socket

    from OpenSSL import SSL

    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(None)
    conn = SSL.Connection(ctx, sock)
    conn.set_tlsext_host_name(name.encode())
    conn.set_connect_state()
    conn.do_handshake()
    chain = [c.to_cryptography() for c in conn.get_peer_cert_chain() or []]
    conn.shutdown()
    sock.close()
    return chain
