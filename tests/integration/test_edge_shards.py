"""Applies that render and write only what changed (map shards named by their content, memoised
renders) leave the node exactly as an apply from nothing would: after a domain added, removed, a
certificate renewed and a site's cache rule changed, the served release equals a fresh render of
the same snapshot, the shards it names are on disk and no other, and real nginx serves every
site with its certificate (1,100 sites: the big maps are sharded)."""

from __future__ import annotations

import datetime as dt
import hashlib
import socket
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from nginx_edge import Edge, backend, edge_config, pool, running_edge
from origins import Origin, start_origin

from edgeplane.node.nginx.local import LocalHealth
from edgeplane.node.nginx.render import render_release
from edgeplane.node.nginx.render_shards import SHARD_DIR
from edgeplane.protocol.config import CacheRuleSpec, CertSpec, EdgeConfig, PoolSpec, SiteSpec

pytestmark = pytest.mark.integration

N = 1100


class Issuer:
    """Leaves of one throwaway CA, for one key."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shards CA")])
        key = ec.generate_private_key(ec.SECP256R1())
        self.key = key
        self.key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self.serial = 100

    def issue(self, name: str) -> CertSpec:
        self.serial += 1
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.ca_name)
            .public_key(self.key.public_key())
            .serial_number(self.serial)
            .not_valid_before(self.now - dt.timedelta(days=1))
            .not_valid_after(self.now + dt.timedelta(days=30, seconds=self.serial))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), False)
            .sign(self.ca_key, hashes.SHA256())
        )
        pem = leaf.public_bytes(serialization.Encoding.PEM).decode()
        return CertSpec(
            id=hashlib.sha256(pem.encode()).hexdigest(),
            names=(name,),
            cert_pem=pem,
            key_pem=self.key_pem,
            not_after=(self.now + dt.timedelta(days=30, seconds=self.serial)).isoformat(),
        )


def _domain(i: int) -> str:
    return f"d{i}.shards.test"


class Platform:
    def __init__(self, origin: Origin) -> None:
        self.issuer = Issuer()
        self.origin = origin
        self.certs = {i: self.issuer.issue(_domain(i)) for i in range(N)}
        self.ttl = 60
        self.revision = 0

    def site(self, i: int) -> tuple[SiteSpec, PoolSpec | None]:
        if i % 100:
            return SiteSpec(id=f"s{i:05d}", domains=(_domain(i),), pool=None), None
        p = pool(f"origin.s{i:05d}", backend(self.origin))
        rule = CacheRuleSpec(id=f"r{i}", pattern="/static/*", ttl=self.ttl)
        return SiteSpec(id=f"s{i:05d}", domains=(_domain(i),), pool=p.id, cache_rules=(rule,)), p

    def snapshot(self) -> EdgeConfig:
        self.revision += 1
        specs = [self.site(i) for i in sorted(self.certs)]
        return edge_config(
            [s for s, _ in specs],
            [p for _, p in specs if p is not None],
            certs=tuple(sorted(self.certs.values(), key=lambda c: c.id)),
            revision=self.revision,
        )


def _fingerprint(pem: str) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


_CLIENT = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # one context: not the CA store per handshake
_CLIENT.check_hostname, _CLIENT.verify_mode = False, ssl.CERT_NONE


def _served(edge: Edge, host: str) -> str:
    ctx = _CLIENT
    with (
        socket.create_connection(("127.0.0.1", edge.local.https_port or 0), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def _assert_served_release_is_a_fresh_render(edge: Edge, config: EdgeConfig) -> None:
    prefix = edge.local.prefix
    fresh = render_release(config, edge.local, LocalHealth())
    current = (prefix / "current").resolve()
    assert current.name == fresh.marker
    on_disk = {p.name: p.read_bytes() for p in current.iterdir()}
    assert on_disk == fresh.files
    assert fresh.shards, "the test's maps are big enough to be sharded"
    shards = prefix / SHARD_DIR
    for name, content in fresh.shards.items():
        assert (shards / name).read_bytes() == content
    named: set[str] = set()
    for release in (prefix / "releases").iterdir():
        for path in release.iterdir():
            text = path.read_text()
            named |= {line.split("/")[-1].rstrip(";") for line in text.splitlines()
                      if line.strip().startswith(f"include ../../{SHARD_DIR}/")}  # fmt: skip
    assert {p.name for p in shards.iterdir()} == named  # nothing left that no release names


def _https(edge: Edge, host: str, path: str) -> httpx.Response:
    url = f"https://127.0.0.1:{edge.local.https_port}{path}"
    with httpx.Client(verify=False, timeout=10) as c:
        return c.get(url, headers={"Host": host}, extensions={"sni_hostname": host})


def test_applies_of_changes_leave_what_an_apply_from_nothing_would(tmp_path: Path) -> None:
    origin = start_origin("shards")
    try:
        p = Platform(origin)
        with running_edge() as edge:
            edge.apply(p.snapshot())
            p.certs[N] = p.issuer.issue(_domain(N))  # a domain added
            config = p.snapshot()
            edge.apply(config)
            _assert_served_release_is_a_fresh_render(edge, config)
            assert _served(edge, _domain(N)) == _fingerprint(p.certs[N].cert_pem)
            del p.certs[N]  # removed
            config = p.snapshot()
            edge.apply(config)
            _assert_served_release_is_a_fresh_render(edge, config)
            p.certs[5] = p.issuer.issue(_domain(5))  # renewed: no reload
            config = p.snapshot()
            assert not edge.apply(config).changed
            _assert_served_release_is_a_fresh_render(edge, config)
            p.ttl = 120  # a CDN rule of every site with rules
            config = p.snapshot()
            assert edge.apply(config).changed
            _assert_served_release_is_a_fresh_render(edge, config)

            for i in range(N):  # every site, its own certificate
                assert _served(edge, _domain(i)) == _fingerprint(p.certs[i].cert_pem), i
            with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
                _served(edge, _domain(N))  # its certificate removed: refused (render_sni)
            # the maps from shards route: a site with an origin, one without, an unknown name
            assert _https(edge, _domain(100), "/static/a").status_code == 200
            assert _https(edge, _domain(101), "/").status_code == 502
            unknown = edge.get("unknown.shards.test", "/")
            assert unknown.status_code == 404 and unknown.text == "unknown host\n"
    finally:
        origin.terminate()
