"""TLS session resumption across edge nodes: the ticket keys of the snapshot are the same on
every node, so a client resumes on node 2 with the ticket node 1 gave it; after a rotation the
previous key still decrypts (real nginx, Python's ssl client)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

import pytest
from nginx_edge import Edge, backend, edge_config, pool, running_edge
from origins import Origin, start_origin
from test_edge_tls import make_certs

from edgeplane.protocol.config import EdgeConfig, SiteSpec, TicketKeySpec
from edgeplane.snapshot.tickets import period_key, ticket_keys

pytestmark = pytest.mark.integration

HOST = "resume.test"
SECRET = b"s" * 32


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    o = start_origin("resume")
    yield o
    o.terminate()


def _config(origin: Origin, cert: object, keys: tuple[TicketKeySpec, ...]) -> EdgeConfig:
    site = SiteSpec(id="p1", domains=(HOST,), pool="origin.p1")
    config = edge_config([site], [pool("origin.p1", backend(origin))], certs=(cert,))
    return config.model_copy(update={"ticket_keys": keys})


def _get(edge: Edge, ctx: ssl.SSLContext, session: ssl.SSLSession | None) -> ssl.SSLSocket:
    """One HTTPS request on a new connection (offering ``session``); the socket, still open,
    holds the session the server sent (TLS 1.3 tickets arrive after the handshake, so the
    response is read first)."""
    assert edge.local.https_port is not None
    raw = socket.create_connection(("127.0.0.1", edge.local.https_port), timeout=5)
    tls = ctx.wrap_socket(raw, server_hostname=HOST, session=session)
    tls.sendall(f"GET /x HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := tls.recv(65536):
        data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    return tls


def _resumes(edge: Edge, ctx: ssl.SSLContext, session: ssl.SSLSession) -> bool:
    tls = _get(edge, ctx, session)
    try:
        return tls.session_reused
    finally:
        tls.close()


def _ticket_from(edge: Edge, ctx: ssl.SSLContext) -> ssl.SSLSession:
    tls = _get(edge, ctx, None)
    try:
        assert not tls.session_reused
        session = tls.session
        assert session is not None and session.has_ticket
        return session
    finally:
        tls.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
def test_ticket_of_one_node_resumes_on_another(origin: Origin, version: ssl.TLSVersion) -> None:
    ca, cert = make_certs([HOST])
    keys = ticket_keys(SECRET, now=1_000_000.0)
    ctx = ssl.create_default_context(cadata=ca)
    ctx.minimum_version = ctx.maximum_version = version
    with running_edge("edge-1") as one, running_edge("edge-2") as two:
        one.apply(_config(origin, cert, keys))
        two.apply(_config(origin, cert, keys))
        for path in (one.local.prefix / "tickets").iterdir():
            assert path.stat().st_mode & 0o777 == 0o600  # secrets: the owner only
        session = _ticket_from(one, ctx)
        assert _resumes(two, ctx, session)  # the other node decrypts node 1's ticket
        assert _resumes(one, ctx, session)


def test_rotation_keeps_the_previous_key_for_decryption(origin: Origin) -> None:
    ca, cert = make_certs([HOST])
    ctx = ssl.create_default_context(cadata=ca)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    before = ticket_keys(SECRET, now=10 * 43_200.0)  # period 10: (k10, k9, k11)
    after = ticket_keys(SECRET, now=11 * 43_200.0)  # period 11: (k11, k10, k12)
    assert after[1] == before[0]
    with running_edge("edge-1") as one, running_edge("edge-2") as two:
        one.apply(_config(origin, cert, before))
        two.apply(_config(origin, cert, after))  # node 2 already rotated, node 1 not yet
        old = _ticket_from(one, ctx)  # encrypted with k10
        new = _ticket_from(two, ctx)  # encrypted with k11
        assert _resumes(two, ctx, old)  # k10 is node 2's previous key
        assert _resumes(one, ctx, new)  # k11 is node 1's next key
        one.apply(_config(origin, cert, after))  # node 1 rotates too
        assert _resumes(one, ctx, old)
        # two periods later, k10 is gone everywhere: a full handshake, not an error
        later = ticket_keys(SECRET, now=12 * 43_200.0)
        one.apply(_config(origin, cert, later))
        assert not _resumes(one, ctx, old)
        names = {p.name for p in (one.local.prefix / "tickets").iterdir()}
        assert names == {f"{k.id}.key" for k in later}  # keys no longer named are deleted


def test_keys_are_derived_per_period_and_checked() -> None:
    assert period_key(SECRET, 5) == period_key(SECRET, 5)
    assert period_key(SECRET, 5).key != period_key(SECRET, 6).key
    assert period_key(SECRET, 5).key != period_key(b"t" * 32, 5).key
    assert "key=" not in repr(period_key(SECRET, 5))  # never in a log line
