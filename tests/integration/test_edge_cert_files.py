"""The engine keeps in memory which certificate files and SNI links it wrote, and touches only
what changed: what it serves and what is on disk must still match exactly, through changes,
removals and a restart of the engine over files it did not write (real nginx)."""

from __future__ import annotations

import hashlib
import os
import socket
import ssl

import pytest
from nginx_edge import Edge, backend, edge_config, pool, running_edge
from origins import Origin, start_origin
from test_edge_tls import make_certs

from edgeplane.node.nginx.engine import NginxEngine
from edgeplane.node.nginx.render_tls import DEFAULT_CERT, name_key
from edgeplane.protocol.config import CertSpec, EdgeConfig, SiteSpec

pytestmark = pytest.mark.integration


def _served(edge: Edge, host: str) -> str:
    """The SHA-256 of the leaf certificate the edge presents for SNI ``host``."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    address = ("127.0.0.1", edge.local.https_port or 0)
    with (
        socket.create_connection(address, timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def _fingerprint(cert: CertSpec) -> str:
    """Of the leaf: the first certificate of the chain."""
    end = "-----END CERTIFICATE-----"
    leaf = cert.cert_pem[: cert.cert_pem.index(end) + len(end)]
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(leaf)).hexdigest()


def _config(origin: Origin, hosts: list[str], certs: list[CertSpec], revision: int) -> EdgeConfig:
    site = SiteSpec(id="p1", domains=tuple(hosts), pool="origin.p1")
    return edge_config(
        [site], [pool("origin.p1", backend(origin))], certs=tuple(certs), revision=revision
    )


def _on_disk(edge: Edge) -> tuple[set[str], dict[str, str]]:
    certs = edge.local.prefix / "certs"
    files = {p.name for p in certs.iterdir() if p.is_file() and not p.name.startswith(".")}
    links = {p.name: os.readlink(p) for p in (certs / "names").iterdir()}
    return files, links


def _link(host: str) -> str:
    return f"{name_key(host)}.pem"


def test_certificate_files_and_links_follow_every_change_and_a_restart() -> None:
    origin = start_origin("certfiles")
    try:
        _, a = make_certs(["a.test"])
        _, b1 = make_certs(["b.test"])
        _, b2 = make_certs(["b.test"])
        with running_edge() as edge:
            edge.apply(_config(origin, ["a.test", "b.test", "c.test"], [a, b1], 1))
            files, links = _on_disk(edge)
            assert files == {f"{a.id}.pem", f"{b1.id}.pem", f"{DEFAULT_CERT}.pem"}
            assert links[_link("b.test")] == f"../{b1.id}.pem"
            assert links[_link("c.test")] == f"../{DEFAULT_CERT}.pem"
            assert _served(edge, "b.test") == _fingerprint(b1)

            # b.test renewed, c.test gone, a.test's certificate gone (its name stays)
            edge.apply(_config(origin, ["a.test", "b.test"], [b2], 2))
            files, links = _on_disk(edge)
            # the files of the previous apply stay one apply longer (a handshake may still
            # open them: nginx opens a certificate's file twice)
            assert files == {f"{a.id}.pem", f"{b1.id}.pem", f"{b2.id}.pem", f"{DEFAULT_CERT}.pem"}
            assert set(links) == {_link("a.test"), _link("b.test"), f"{DEFAULT_CERT}.pem"}
            assert links[_link("a.test")] == f"../{DEFAULT_CERT}.pem"
            assert links[_link("b.test")] == f"../{b2.id}.pem"
            assert _served(edge, "b.test") == _fingerprint(b2)
            with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
                _served(edge, "a.test")  # no certificate any more: refused (render_sni)
            edge.apply(_config(origin, ["a.test", "b.test", "d.test"], [b2], 3))
            assert _on_disk(edge)[0] == {f"{b2.id}.pem", f"{DEFAULT_CERT}.pem"}

            # A new engine over the same prefix (an agent restart) knows nothing of what is on
            # disk: files it did not write and a link pointing elsewhere are set right.
            certs = edge.local.prefix / "certs"
            (certs / "stale.pem").write_text("left by someone else")
            os.symlink(f"../{DEFAULT_CERT}.pem", certs / "names" / "n_stale.pem")
            os.remove(certs / "names" / _link("b.test"))
            os.symlink(f"../{DEFAULT_CERT}.pem", certs / "names" / _link("b.test"))
            edge.engine = NginxEngine(edge.local)
            edge.apply(_config(origin, ["a.test", "b.test"], [a, b2], 4))
            files, links = _on_disk(edge)
            assert files == {f"{a.id}.pem", f"{b2.id}.pem", f"{DEFAULT_CERT}.pem"}
            assert set(links) == {_link("a.test"), _link("b.test"), f"{DEFAULT_CERT}.pem"}
            assert links[_link("b.test")] == f"../{b2.id}.pem"
            assert _served(edge, "a.test") == _fingerprint(a)
            assert _served(edge, "b.test") == _fingerprint(b2)
    finally:
        origin.terminate()
