"""Edge functions in the snapshot the control plane serves (``SnapshotCache``): only nodes of
protocol 3 that can run functions get them (the others' manifests and hashes stay as they
were); a revision built from the previous one's parts equals a full build, byte for byte,
functions included, and a node's delta gives its manifest; only routes change the http hash
(a new version with the same routes reloads no nginx); secrets travel to the node but never
show in a repr."""

from __future__ import annotations

import json
from typing import Any

from test_functions_api import CODE, FnNode, edge_token, make_active, ok, put, version

from conftest import Api
from edgeplane.protocol.config import EdgeConfig, EdgeManifest
from edgeplane.protocol.delta import ManifestDelta
from edgeplane.snapshot.cache import NodeSnapshot, SnapshotCache
from edgeplane.snapshot.functions import runs_functions
from edgeplane.store.actor import LOCAL

INV = "/api/v1/infrastructure"


def snapshots(api: Api, cache: SnapshotCache, nodes: list[FnNode]) -> dict[str, NodeSnapshot]:
    """Each node's snapshot of the newest revision, checked against a full build."""
    fresh = SnapshotCache(api.db.secrets, incremental=False)
    out: dict[str, NodeSnapshot] = {}
    with api.db.read(LOCAL, "default") as tx:
        revision = tx.current_revision()
        for n in nodes:
            capable = runs_functions(n.protocol, n.protocol >= 3 and n.name != "unable")
            mine = cache.for_node(tx.session, spec(n), revision, functions=capable)
            theirs = fresh.for_node(tx.session, spec(n), revision, functions=capable)
            assert mine.manifest == theirs.manifest and mine.hash == theirs.hash
            assert mine.http_hash == theirs.http_hash
            assert mine.body == theirs.body
            out[n.name] = mine
    return out


def spec(n: FnNode) -> Any:
    from edgeplane.protocol.config import NodeSpec

    return NodeSpec(id=n.id, name=n.name, region=n.region)


def manifest(snap: NodeSnapshot) -> EdgeManifest:
    return EdgeManifest.model_validate_json(snap.manifest)


def test_functions_reach_capable_nodes_and_only_routes_change_the_http_hash(api: Api) -> None:
    token = edge_token(api)
    able = FnNode(api, token, "able", "eu-central")
    old = FnNode(api, token, "old", "eu-central", protocol=2)
    unable = FnNode(api, token, "unable", "eu-central", functions=False)
    nodes = [able, old, unable]
    ok(api.post(f"{INV}/domains", json={"domain": "a.localhost"}), 201)
    cache = SnapshotCache(api.db.secrets)
    cache.delta_ratio = 100.0
    before = snapshots(api, cache, nodes)
    assert all(b'"functions"' not in s.manifest for s in before.values())

    routes = [{"pattern": "a.localhost/api/*"}]
    put(api, "hello", routes=routes, env={"A": "1"}, secrets={"KEY": "s3cret"})
    first = snapshots(api, cache, nodes)
    assert cache.last_build[0] == "incremental"  # a function's change is per node data
    for n in (old, unable):  # nothing for them: the same hashes as before
        assert b'"functions"' not in first[n.name].manifest
        assert (first[n.name].hash, first[n.name].http_hash) == (
            before[n.name].hash,
            before[n.name].http_hash,
        )
    got = manifest(first["able"])
    assert [(f.key, f.version, f.id) for f in got.functions] == [
        ("default/hello", 1, version(api, "hello", 1)["id"])
    ]
    fn = got.functions[0]
    assert fn.secrets == {"KEY": "s3cret"} and fn.env == {"A": "1"}
    assert fn.hosts == ("a.localhost",) and fn.routes[0].path == "/api/*"
    assert "s3cret" not in repr(fn) and "s3cret" not in repr(got)
    assert first["able"].http_hash != before["able"].http_hash  # routes: nginx reloads
    # the node's own view of the manifest (EdgeConfig) carries and hashes the same
    config = got.resolve(())
    assert config.functions == got.functions
    assert EdgeConfig.model_validate_json(first["able"].body).functions == got.functions
    # a delta from what the node held gives the manifest
    delta = cache.delta(first["able"], before["able"].revision, before["able"].hash)
    assert delta is not None
    applied = ManifestDelta.model_validate_json(delta).apply(manifest(before["able"]))
    assert applied == got

    make_active({"able": able}, version(api, "hello", 1))
    put(api, "hello", code=CODE.replace('"hi"', '"v2"'), env={"A": "2"})
    second = snapshots(api, cache, nodes)
    assert [f.version for f in manifest(second["able"]).functions] == [2]
    assert second["able"].hash != first["able"].hash
    assert second["able"].http_hash == first["able"].http_hash  # same routes: no reload
    assert second["old"].hash == before["old"].hash

    make_active({"able": able}, version(api, "hello", 2))
    put(api, "hello", routes=[{"pattern": "*/api/*", "methods": ["GET"]}])
    third = snapshots(api, cache, nodes)
    assert third["able"].http_hash != second["able"].http_hash  # new routes: nginx reloads

    ok(api.delete(f"{INV}/functions/hello"), 204)
    gone = snapshots(api, cache, nodes)
    assert b'"functions"' not in gone["able"].manifest
    assert (gone["able"].hash, gone["able"].http_hash) == (
        before["able"].hash,
        before["able"].http_hash,
    )
    assert json.loads(gone["able"].manifest)["revision"] > before["able"].revision
