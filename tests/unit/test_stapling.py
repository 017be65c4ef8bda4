"""OCSP stapling, the pure parts: the stapling server blocks (names, files, same routing as the
shared server), the staple in the certificate object (and its hash), the checks a response
passes before it is stapled, and when staples are fetched again."""

from __future__ import annotations

import base64
import dataclasses
import re
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from edgeplane.certificates import staples
from edgeplane.node.nginx.local import LocalHealth
from edgeplane.node.nginx.render import render
from edgeplane.node.nginx.render_stapling import staple_file, staple_files, stapled_names
from edgeplane.node.nginx.render_tls import cert_links
from edgeplane.protocol.config import (
    CertSpec,
    EdgeConfig,
    NodeSpec,
    SiteSpec,
    canonical_body,
    object_hash,
)
from unit.test_certs_upload import Made, make
from unit.test_nginx_render import LOCAL

NOW = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
STAPLE = base64.b64encode(b"\x30\x03\x0a\x01\x00").decode()  # the bytes do not matter here


def spec(cid: str, names: tuple[str, ...], staple: str | None = None) -> CertSpec:
    return CertSpec(
        id=cid, names=names, cert_pem="C", key_pem="K", not_after="2027-01-01", ocsp_staple=staple
    )


def config(*certs: CertSpec, domains: tuple[str, ...] = ("a.test",)) -> EdgeConfig:
    return EdgeConfig(
        revision=1,
        node=NodeSpec(id="n1", name="edge-1", region="local"),
        sites=(SiteSpec(id="p1", domains=domains, pool=None),),
        certs=certs,
    )


def servers(cfg: EdgeConfig) -> list[str]:
    text = render(cfg, LOCAL, LocalHealth())["servers.conf"].decode()
    return re.findall(r"(?ms)^server \{\n.*?^\}\n", text)


def test_a_stapled_certificate_gets_a_server_with_the_same_routing() -> None:
    plain = config(spec("c1", ("a.test", "www.a.test")))
    stapled = config(spec("c1", ("a.test", "www.a.test"), STAPLE))
    # HTTP, the HTTPS default (refuses unknown names), the shared HTTPS of the known names
    assert len(servers(plain)) == 3
    blocks = servers(stapled)
    assert blocks[:3] == servers(plain)  # the shared servers are untouched
    [block] = blocks[3:]
    name = staple_file(stapled.certs[0])
    head = [
        f"    listen {LOCAL.bind}:{LOCAL.https_port} ssl http2;",
        "    server_name a.test www.a.test;",
        "    ssl_certificate ../../certs/c1.pem;",
        "    ssl_certificate_key ../../certs/c1.pem;",
        "    ssl_stapling on;",
        f"    ssl_stapling_file ../../certs/{name};",
    ]
    lines = block.splitlines()
    assert lines[1:7] == head
    assert "default_server" not in block
    assert "ssl_reject_handshake on;" in blocks[1] and "default_server" in blocks[1]
    shared = blocks[2].splitlines()
    assert "default_server" not in blocks[2] and shared[2] == "    include tls-names.conf;"
    assert lines[7:] == shared[5:]  # everything after the head: the same routing
    assert staple_files(stapled, 100) == {name: base64.b64decode(STAPLE)}
    assert name.endswith(".ocsp") and len(name) == 32 + 5


def test_names_follow_the_sni_links_and_wildcards_yield_to_other_certificates() -> None:
    wild = spec("w", ("*.wild.test",), STAPLE)
    exact = spec("x", ("x.wild.test",))
    cfg = config(wild, exact, domains=("y.wild.test", "x.wild.test"))
    links = cert_links(cfg, ["y.wild.test", "x.wild.test"])
    # The wildcard would catch x.wild.test (served with another, unstapled certificate).
    assert stapled_names(cfg, links, 100) == [(wild, ["y.wild.test"])]
    both = config(wild, spec("x", ("x.wild.test",), STAPLE), domains=("y.wild.test",))
    links = cert_links(both, ["y.wild.test"])
    assert [(c.id, n) for c, n in stapled_names(both, links, 100)] == [
        ("w", ["*.wild.test", "y.wild.test"]),
        ("x", ["x.wild.test"]),
    ]
    # A newer certificate for a name takes it from the stapled one.
    older = spec("o", ("a.test",), STAPLE).model_copy(update={"not_after": "2026-12-31"})
    newer = spec("n", ("a.test",))
    cfg = config(older, newer)
    assert stapled_names(cfg, cert_links(cfg, ["a.test"]), 100) == []
    assert len(servers(cfg)) == 3


def test_a_node_staples_at_most_max_stapled_certificates() -> None:
    certs = [spec(f"c{i}", (f"d{i}.test",), STAPLE) for i in range(5)]
    cfg = config(*certs, domains=tuple(f"d{i}.test" for i in range(5)))
    links = cert_links(cfg, [])
    assert [c.id for c, _ in stapled_names(cfg, links, 2)] == ["c0", "c1"]
    assert len(staple_files(cfg, 2)) == 1  # the same staple bytes: one file
    assert stapled_names(cfg, links, 0) == []
    local = dataclasses.replace(LOCAL, max_stapled=3)
    text = render(cfg, local, LocalHealth())["servers.conf"].decode()
    assert text.count("ssl_stapling on;") == 3


def test_a_staple_that_is_not_base64_is_refused() -> None:
    with pytest.raises(ValueError, match="not base64"):
        staple_files(config(spec("c1", ("a.test",), "%%%")), 100)


def test_the_staple_changes_the_object_hash_and_nothing_without_one() -> None:
    bare = spec("c1", ("a.test",))
    assert "ocsp_staple" not in bare.model_dump(mode="json")  # hashes as before the field
    doc = bare.model_dump(mode="json")
    assert CertSpec.model_validate(doc) == bare
    with_staple = spec("c1", ("a.test",), STAPLE)
    hashes_ = {object_hash(canonical_body(c.model_dump(mode="json"))) for c in (bare, with_staple)}
    assert len(hashes_) == 2
    assert config(bare).http_hash() != config(with_staple).http_hash()
    again = CertSpec.model_validate(with_staple.model_dump(mode="json"))
    assert again.ocsp_staple == STAPLE


def test_refresh_at_half_and_retries_doubling_within_the_kept_response() -> None:
    this, nxt = NOW, NOW + timedelta(days=4)
    assert staples.refresh_at(this, nxt, NOW) == NOW + timedelta(days=2)
    assert staples.refresh_at(this, NOW + timedelta(minutes=2), NOW) == NOW + staples.MIN_REFRESH
    waits = [(staples.retry_at(n, NOW) - NOW).total_seconds() for n in (1, 2, 3, 8)]
    assert waits == [60, 120, 240, 3600]
    assert staples.retry_at(8, NOW, NOW + timedelta(minutes=10)) == NOW + timedelta(minutes=10)
    # One due: those due within 12 hours come with it (one batch, one reload of the edge).
    assert staples.horizon([NOW + timedelta(hours=1)], NOW) == NOW
    assert staples.horizon([NOW, NOW + timedelta(hours=1)], NOW) == NOW + timedelta(hours=12)
    assert staples.usable(NOW + timedelta(seconds=1), NOW)
    assert not staples.usable(NOW, NOW) and not staples.usable(None, NOW)


def _response(
    leaf: Made,
    issuer: Made,
    signer: Made,
    *,
    this: datetime,
    nxt: datetime | None,
    status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
    certs: list[x509.Certificate] | None = None,
) -> bytes:
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=leaf.cert,
            issuer=issuer.cert,
            algorithm=hashes.SHA1(),
            cert_status=status,
            this_update=this,
            next_update=nxt,
            revocation_time=this if status == ocsp.OCSPCertStatus.REVOKED else None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, signer.cert)
    )
    if certs:
        builder = builder.certificates(certs)
    return builder.sign(signer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)  # type: ignore[arg-type]


def test_only_a_fresh_good_response_of_the_issuer_for_this_certificate_is_stapled() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    dates = {"not_before": now - timedelta(days=1), "not_after": now + timedelta(days=60)}
    ca = make("CA", ca=True, **dates)
    leaf = make("a.test", issuer=ca, **dates)
    other = make("b.test", issuer=ca, **dates)
    stranger = make("Other CA", ca=True, **dates)
    ok = {"this": now - timedelta(minutes=1), "nxt": now + timedelta(days=4)}
    assert staples.check(_response(leaf, ca, ca, **ok), leaf.cert, ca.cert, now).status == "good"
    delegate = make("OCSP signer", issuer=ca, eku=[ExtendedKeyUsageOID.OCSP_SIGNING], **dates)
    delegated = _response(leaf, ca, delegate, certs=[delegate.cert], **ok)
    assert staples.check(delegated, leaf.cert, ca.cert, now).status == "good"
    cases = {
        "another certificate": _response(other, ca, ca, **ok),
        "not signed by the issuer": _response(leaf, ca, stranger, **ok),
        "stale": _response(leaf, ca, ca, this=now - timedelta(days=5), nxt=now - timedelta(days=1)),
        "no nextUpdate": _response(leaf, ca, ca, this=ok["this"], nxt=None),
        "from the future": _response(leaf, ca, ca, this=now + timedelta(hours=1), nxt=ok["nxt"]),
        "revoked": _response(leaf, ca, ca, status=ocsp.OCSPCertStatus.REVOKED, **ok),
        "unauthorized": ocsp.OCSPResponseBuilder.build_unsuccessful(
            ocsp.OCSPResponseStatus.UNAUTHORIZED
        ).public_bytes(serialization.Encoding.DER),
        "not a DER OCSP response": b"<html>",
    }
    for reason, der in cases.items():
        with pytest.raises(staples.StapleError, match=reason):
            staples.check(der, leaf.cert, ca.cert, now)
    # A delegate without OCSPSigning is not a responder.
    plain = make("not a signer", issuer=ca, **dates)
    with pytest.raises(staples.StapleError, match="not signed"):
        staples.check(_response(leaf, ca, plain, certs=[plain.cert], **ok), leaf.cert, ca.cert, now)


def test_internal_ca_names_its_responder_only_when_asked() -> None:
    from edgeplane.settings import Settings

    assert Settings(public_url="http://cp:8800").ocsp_url is None  # the default: off
    assert Settings(internal_ocsp=True).ocsp_url is None  # no public URL: nothing to name
    on = Settings(public_url="http://cp:8800/", internal_ocsp=True)
    assert on.ocsp_url == "http://cp:8800/ocsp"
