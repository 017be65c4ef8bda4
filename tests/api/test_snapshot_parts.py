"""A revision built from the previous one's parts equals a full build, byte for byte.

One ``SnapshotCache`` follows a sequence of varied changes made through the API, building
each revision from the one before (``snapshot.parts``) where it can, in full (into parts)
where it cannot; after each step a fresh cache without parts builds the same revision from
``served`` and serialises it whole, and everything nodes get must be equal: the shared
manifest bytes and their digests, the objects, the ``Served`` value and each node's manifest
and full snapshot.
"""

from __future__ import annotations

import io
import tarfile
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from conftest import Api
from edgeplane.protocol.config import EdgeManifest, NodeSpec
from edgeplane.protocol.delta import ManifestDelta
from edgeplane.snapshot.cache import DELTA_BASES, RevisionView, SnapshotCache
from edgeplane.snapshot.changes import classify
from edgeplane.store.actor import LOCAL
from edgeplane.store.tables import CertificateRow, utcnow

EDGE = "/api/v1/edge"
INV = "/api/v1/infrastructure"
DOMAINS = f"{INV}/domains"
INC = "incremental"
PIN = "sha256/" + "A" * 43 + "="


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if status != 204 else None


class Node:
    def __init__(self, api: Api, token: str, name: str, region: str, address: str) -> None:
        self.api, self.token = api, token
        body = {"name": name, "region": region, "http_port": 8080, "address": address}
        self.id = str(ok(api.post(f"{EDGE}/nodes", token=token, json=body))["id"])
        self.spec = NodeSpec(id=self.id, name=name, region=region)
        self.held: list[EdgeManifest] = []  # its last manifests
        self.beat()

    def beat(self, healthy: bool = True) -> None:
        r = self.api.post(f"{EDGE}/nodes/{self.id}/heartbeat", token=self.token,
                          json={"healthy": healthy})  # fmt: skip
        ok(r, 204)


SERVER = {
    "id": "web-1",
    "name": "web-1",
    "type": "primary",
    "region": "americas",
    "location": "us-east",
    "address": "10.0.0.7",
    "capacity": {"cpu": 4, "memory": 8, "storage": 50},
}


def build(api: Api, cache: SnapshotCache) -> RevisionView:
    with api.db.read(LOCAL, "default") as tx:
        return cache.view(tx.session, tx.current_revision())


def same_as_full(api: Api, cache: SnapshotCache, nodes: list[Node]) -> str:
    """Build the newest revision with ``cache`` and in full with a fresh cache; compare. A
    node's delta from each revision it held (the last ``DELTA_BASES``) gives its manifest."""
    got = build(api, cache)
    fresh = SnapshotCache(api.db.secrets, incremental=False)  # served(), serialised whole
    want = build(api, fresh)
    assert fresh.last_build[0] == "incremental builds are off"
    assert got.revision == want.revision
    assert got.shared == want.shared
    assert (got.shared_digest, got.http_digest) == (want.shared_digest, want.http_digest)
    assert got.objects == want.objects
    assert got.zones == want.zones and got.certs == want.certs
    assert got.base == want.base
    with api.db.read(LOCAL, "default") as tx:
        for n in nodes:
            mine = cache.for_node(tx.session, n.spec, got.revision)
            theirs = fresh.for_node(tx.session, n.spec, want.revision)
            assert mine.manifest == theirs.manifest and mine.hash == theirs.hash
            assert mine.body == theirs.body  # the full snapshot (older agents)
            manifest = EdgeManifest.model_validate_json(mine.manifest)
            held = n.held
            for old in held:
                delta = cache.delta(mine, old.revision, old.hash)
                if old.revision == mine.revision:
                    assert delta is None
                    continue
                assert delta is not None, (old.revision, mine.revision)
                applied = ManifestDelta.model_validate_json(delta).apply(old)
                for field in EdgeManifest.model_fields:
                    assert getattr(applied, field) == getattr(manifest, field), field
                assert applied == manifest
                assert cache.delta(mine, old.revision, "0" * 16) is None  # not what it holds
            n.held = [*held, manifest][-(DELTA_BASES - 1) :]  # the views kept, but this
    return cache.last_build[0]


def bundle() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        data = b"<h1>v1</h1>\n"
        info = tarfile.TarInfo("index.html")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_each_revision_built_from_parts_equals_a_full_build(api: Api) -> None:
    token = ok(api.post("/api/v1/tokens", json={"name": "edge", "scope": "edge"}), 201)["token"]
    nodes = [
        Node(api, token, "eu-1", "eu-central", "192.0.2.1"),
        Node(api, token, "us-1", "us-east", "192.0.2.2"),
    ]
    for name in ("a.localhost", "b.localhost", "c.localhost", "d.localhost"):
        ok(api.post(DOMAINS, json={"domain": name}), 201)
    ok(api.post("/api/v1/projects", json={"id": "other"}), 201)
    cache = SnapshotCache(api.db.secrets)
    cache.delta_ratio = 100.0  # deltas of any size (a few domains make small manifests)
    assert same_as_full(api, cache, nodes) != "incremental"  # the first build is a full one

    # (what, the change, "incremental" or words of the reason it is built in full)
    steps: list[tuple[str, Any, str]] = [
        ("add a domain", lambda: ok(api.post(DOMAINS, json={"domain": "e.localhost"}), 201),
         INC),
        ("add a domain of another project", lambda: ok(api.post(
            DOMAINS, json={"domain": "x.localhost"}, params={"project": "other"}), 201), INC),
        ("add a domain that waits for verification",
         lambda: ok(api.post(DOMAINS, json={"domain": "shop.example"}), 201), INC),
        ("remove a domain", lambda: ok(api.delete(f"{DOMAINS}/b.localhost"), 204), INC),
        ("change a DNS record", lambda: ok(api.patch(f"{DOMAINS}/c.localhost/records", json={
            "set": [{"name": "mail", "type": "MX", "values": ["10 mx.example.net."]}]})), INC),
        ("a proxied record", lambda: ok(api.patch(f"{DOMAINS}/c.localhost/records", json={
            "set": [{"name": "api", "type": "AAAA", "values": [], "proxied": True}]})), INC),
        ("renew a certificate", lambda: ok(api.post(f"{INV}/ssl/a.localhost/renew"), 201),
         INC),
        ("revoke a certificate", lambda: ok(api.post(f"{INV}/ssl/a.localhost/revoke")), INC),
        ("DNSSEC on", lambda: ok(api.patch(f"{DOMAINS}/d.localhost", json={"dnssec": True})),
         INC),
        ("a node goes dead", lambda: nodes[1].beat(healthy=False), INC),
        ("a domain added after it", lambda: ok(api.post(DOMAINS, json={"domain": "f.localhost"}),
                                               201), INC),
        ("the node comes back", lambda: nodes[1].beat(healthy=True), INC),
        ("a server, no load balancer", lambda: ok(api.post(f"{INV}/servers", json=SERVER), 201),
         INC),
        ("a load balancer", lambda: ok(api.post(f"{INV}/loadbalancer", json={
            "id": "lb1", "endpoints": ["10.0.0.1:8080"],
            "backends": [{"address": "web-1", "port": 8000}]}), 201), "load_balancer"),
        ("the server changed under it", lambda: ok(api.patch(f"{INV}/servers/web-1", json={
            "name": "web one"})), "a server changed"),
        ("a domain added behind it",
         lambda: ok(api.post(DOMAINS, json={"domain": "lb.localhost"}), 201), INC),
        ("a CDN config", lambda: ok(api.post(f"{INV}/cdn", json={
            "origins": [{"url": "http://192.0.2.50:8080"}],
            "cache_rules": [{"pattern": "/static/*", "ttl": 600}],
            "security": {"hsts_max_age": 600}}), 201), "cdn_config"),
        ("a domain added under it", lambda: ok(api.post(DOMAINS, json={"domain": "g.localhost"}),
                                               201), INC),
        ("private origins: a client certificate, pins",
         lambda: ok(api.post(f"{INV}/cdn", json={"origins": [{
             "url": "https://192.0.2.51:8443",
             "tls": {"client_certificate": True, "verify": "pin", "pins": [PIN]}}]})),
         "origin_client_certificate"),
        ("a domain added with them", lambda: ok(api.post(DOMAINS, json={"domain": "j.localhost"}),
                                                201), INC),
        ("the client certificate renewed",
         lambda: ok(api.post(f"{INV}/ca/origin-client/renew")), "origin_client_certificate"),
        # eu-1 beats first: the steps since its last heartbeat can outlast the 5 s of
        # liveness on a loaded machine, and a deployment needs a live node in its region.
        ("an edge deployment", lambda: nodes[0].beat() or ok(api.post(
            f"{INV}/edge/deploy", json={
                "bundle": ok(api.post(f"{INV}/edge/bundles", content=bundle()),
                             201)["bundle"]["id"],
                "regions": ["eu-central"]}), 202), "deployment"),
        ("a domain added while it rolls out",
         lambda: ok(api.post(DOMAINS, json={"domain": "h.localhost"}), 201), INC),
        ("remove the domain of the other project",
         lambda: ok(api.delete(f"{DOMAINS}/x.localhost", params={"project": "other"}), 204),
         INC),
    ]  # fmt: skip
    for what, change, expected in steps:
        change()
        how = same_as_full(api, cache, nodes)
        assert expected in how and (how == "incremental") == (expected == "incremental"), (
            what,
            how,
        )

    # Several revisions at once (another replica built the ones between): still from parts.
    ok(api.post(DOMAINS, json={"domain": "i.localhost"}), 201)
    ok(api.patch(f"{DOMAINS}/i.localhost/records", json={
        "set": [{"name": "www", "type": "TXT", "values": ['"hello"']}]}))  # fmt: skip
    ok(api.delete(f"{DOMAINS}/e.localhost"), 204)
    assert same_as_full(api, cache, nodes) == "incremental"
    assert cache.incremental_builds >= 12


def test_a_certificate_that_expires_without_a_change_means_a_full_build(api: Api) -> None:
    for name in ("a.localhost", "b.localhost"):
        ok(api.post(DOMAINS, json={"domain": name}), 201)
    # a.localhost's certificate ends in a moment (no event: time passes).
    ends = utcnow() + timedelta(seconds=1)
    with api.db.transaction(LOCAL, "default") as tx:
        tx.session.execute(
            update(CertificateRow)
            .where(CertificateRow.domain == "a.localhost")
            .values(not_after=ends)
        )
    cache = SnapshotCache(api.db.secrets)
    assert len(build(api, cache).certs) == 2
    ok(api.post("/api/v1/projects", json={"id": "p1"}), 201)  # a revision that names neither
    if utcnow() < ends:  # (unless the machine was that slow)
        assert same_as_full(api, cache, []) == "incremental"
    time.sleep(max(0.0, (ends - utcnow()).total_seconds()) + 0.05)
    ok(api.post("/api/v1/projects", json={"id": "p2"}), 201)
    how = same_as_full(api, cache, [])
    assert how == "a certificate or OCSP staple expired or became valid"
    assert len(build(api, cache).certs) == 1


def test_events_name_the_domains_they_change() -> None:
    events = [
        ("domain", "create", "a.example", None, {"domain": "a.example"}),
        ("dns-records", "update", "b.example", {}, {}),
        ("acme-challenge", "create", "ch1", None, {"domain": "c.example", "kind": "dns-01"}),
        ("certificate", "issue", "cert-1", None, {"domain": "d.example"}),
        ("ocsp_staple", "staple", "cert-2", None, {"certificate_id": "cert-2"}),
        ("purge", "create", "p1", None, {}),
        ("server", "update", "srv-1", {}, {}),
        ("project", "create", "p2", None, {}),
    ]
    got = classify(events)
    assert not got.full
    assert got.domains == {"a.example", "b.example", "c.example", "d.example"}
    assert got.certs == {"cert-2"}  # its domain is looked up
    assert got.servers  # a full build only where load balancers are
    for kind, action in [("cdn_config", "update"), ("project", "delete"), ("new-kind", "x")]:
        full = classify([*events, (kind, action, "x", None, None)])
        assert full.full and kind in full.reason
