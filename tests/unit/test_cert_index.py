"""The certificate index gives the answers of the name-by-name scan it replaced; updated
from the previous index and links, it gives the answers of one built from nothing."""

from __future__ import annotations

import random

from edgeplane.node.nginx.cert_index import CertIndex
from edgeplane.node.nginx.render import map_hash_size
from edgeplane.node.nginx.render_tls import DEFAULT_CERT, SniLinks, cert_links, name_matches
from edgeplane.protocol.config import CertSpec, EdgeConfig, NodeSpec

NODE = NodeSpec(id="n1", name="n1", region="eu-central")


def _cert(cid: str, *names: str, not_after: str = "2030-01-01T00:00:00Z") -> CertSpec:
    return CertSpec(id=cid, names=names, cert_pem="C", key_pem="K", not_after=not_after)


CERTS = (
    _cert("a", "shop.test", "www.shop.test"),
    _cert("b", "*.shop.test"),
    _cert("c", "Blog.Test", not_after="2029-01-01T00:00:00Z"),
    _cert("d", "blog.test", not_after="2031-01-01T00:00:00Z"),
    _cert("e", "*.a.b.test"),
)
HOSTS = ["shop.test", "WWW.shop.test", "api.shop.test", "x.api.shop.test", "blog.test",
         "c.a.b.test", "a.b.test", "other.test", "*.shop.test", "*.a.b.test"]  # fmt: skip


def test_covers_is_the_scan_it_replaced() -> None:
    index = CertIndex.of(CERTS)
    for host in HOSTS:
        scan = any(name_matches(n, host) for c in CERTS for n in c.names)
        assert index.covers(host) is scan, host
        assert {c.id for c in index.covering(host)} == {
            c.id for c in CERTS if any(name_matches(n, host) for n in c.names)
        }, host


def test_links_pick_exact_then_latest_wildcard_then_default() -> None:
    later = _cert("f", "*.shop.test", not_after="2032-01-01T00:00:00Z")
    config = EdgeConfig(revision=1, node=NODE, certs=(*CERTS, later))
    links = cert_links(config, [h.lower() for h in HOSTS])
    assert links["shop.test"] == "a" and links["www.shop.test"] == "a"  # exact beats wildcard
    assert links["api.shop.test"] == "f"  # the latest of two wildcards
    assert links["x.api.shop.test"] == DEFAULT_CERT  # a wildcard covers one label
    assert links["blog.test"] == "d"  # the latest exact, case-insensitive
    assert links["c.a.b.test"] == "e" and links["a.b.test"] == DEFAULT_CERT
    assert links["*.shop.test"] == "f" and links["other.test"] == DEFAULT_CERT


def test_ten_thousand_names_are_linked_quickly() -> None:
    certs = tuple(_cert(f"c{i}", f"d{i}.test", f"www.d{i}.test") for i in range(10_000))
    config = EdgeConfig(revision=1, node=NODE, certs=certs)
    links = cert_links(config, [f"d{i}.test" for i in range(10_000)])
    assert len(links) == 20_000
    assert all(links[f"www.d{i}.test"] == f"c{i}" for i in range(0, 10_000, 997))


def test_map_hash_size_grows_with_the_names() -> None:
    assert map_hash_size(0) == map_hash_size(10) == 2048
    assert map_hash_size(20_000) == 65_536
    assert all(map_hash_size(n) >= 2 * n for n in (1000, 1025, 40_000, 100_001))


def _random_cert(rng: random.Random, serial: int) -> CertSpec:
    zone = f"z{rng.randrange(6)}.test"
    pick = [zone, f"www.{zone}", f"*.{zone}", f"api.{zone}", f"*.api.{zone}", f"X.{zone}."]
    names = rng.sample(pick, rng.randint(1, 3))
    day = rng.randint(1, 28)
    return _cert(f"k{serial}", *names, not_after=f"2030-01-{day:02d}T00:00:00Z")


def test_an_index_and_links_updated_change_by_change_equal_ones_from_nothing() -> None:
    """Certificates (exact, wildcard, overlapping, case and trailing dot) and names come and
    go; after each change the updated index and links answer as ones built from nothing."""
    rng = random.Random(7)
    certs: list[CertSpec] = []
    names: list[str] = []
    index, links, serial = CertIndex(), None, 0
    hosts = [f"{h}z{z}.test" for z in range(6) for h in ("", "www.", "api.", "a.api.", "x.")]
    for step in range(300):
        if rng.random() < 0.5 or not certs:
            serial += 1
            certs.append(_random_cert(rng, serial))
        else:
            certs.remove(rng.choice(certs))
        if rng.random() < 0.3:
            names = rng.sample(hosts, rng.randint(0, len(hosts)))
        index = index.updated(tuple(certs))
        links = SniLinks.of(links, index, names)
        fresh = SniLinks.of(None, CertIndex.of(tuple(certs)), names)
        assert links.links == fresh.links, step
        assert links.targets == fresh.targets, step
        assert links.patterns == fresh.patterns, step
        for host in hosts:
            assert {c.id for c in index.covering(host)} == {
                c.id for c in fresh.index.covering(host)
            }, (step, host)
