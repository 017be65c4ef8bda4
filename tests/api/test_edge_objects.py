"""Snapshots by reference: the manifest of the long-poll, the objects endpoint, partial serials."""

from __future__ import annotations

import hashlib
from typing import Any

from conftest import Api
from edgeplane.protocol.config import CertSpec, EdgeManifest, ZoneSpec, canonical_body
from edgeplane.services import zone_serials
from edgeplane.store.actor import LOCAL

EDGE = "/api/v1/edge"
DOMAINS = "/api/v1/infrastructure/domains"


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if status != 204 else None


def node(api: Api, name: str) -> tuple[str, str]:
    token = ok(api.post("/api/v1/tokens", json={"name": name, "scope": "edge"}), 201)["token"]
    body = {"name": name, "region": "eu-central", "http_port": 8080}
    return ok(api.post(f"{EDGE}/nodes", token=token, json=body))["id"], token


def manifest(api: Api, node_id: str, token: str, after: int = -1) -> EdgeManifest:
    params = {"after": after, "refs": "true", "wait": 0}
    doc = ok(api.get(f"{EDGE}/nodes/{node_id}/config", token=token, params=params))
    assert doc["config"] is None and doc["manifest"] is not None
    got = EdgeManifest.model_validate(doc["manifest"])
    assert got.hash == doc["hash"] and got.revision == doc["revision"]
    return got


def fetch(api: Api, node_id: str, token: str, hashes: list[str]) -> Any:
    return api.post(f"{EDGE}/nodes/{node_id}/objects", token=token, json={"hashes": hashes})


def test_manifest_names_objects_the_node_fetches_by_hash(api: Api) -> None:
    for name in ("a.localhost", "b.localhost", "c.localhost"):
        ok(api.post(DOMAINS, json={"domain": name}), 201)
    node_id, token = node(api, "n1")
    first = manifest(api, node_id, token)
    assert set(first.zones) == {"a.localhost.", "b.localhost.", "c.localhost."}
    assert len(first.certs) == 3  # the internal CA's, one per (reserved, verified) domain
    objects = ok(fetch(api, node_id, token, first.objects()))["objects"]
    assert set(objects) == set(first.objects())
    for digest, doc in objects.items():
        assert hashlib.sha256(canonical_body(doc)).hexdigest() == digest
    zones = {ZoneSpec.model_validate(objects[h]).name for h in first.zones.values()}
    assert zones == set(first.zones)
    certs = [CertSpec.model_validate(objects[h]) for h in first.certs]
    names = sorted(n for c in certs for n in c.names)
    assert names == ["a.localhost", "b.localhost", "c.localhost"]
    assert all("PRIVATE KEY" in c.key_pem for c in certs)
    # The full snapshot of the same revision has the same hash (older agents poll it).
    full = ok(api.get(f"{EDGE}/nodes/{node_id}/config", token=token, params={"wait": 0}))
    assert full["hash"] == first.hash and full["manifest"] is None
    assert len(full["config"]["zones"]) == 3

    # A change of one zone changes that zone's reference only.
    patch = {"set": [{"name": "www", "type": "A", "values": ["192.0.2.7"]}]}
    ok(api.patch(f"{DOMAINS}/b.localhost/records", json=patch))
    second = manifest(api, node_id, token, after=first.revision)
    changed = {z for z in first.zones if first.zones[z] != second.zones[z]}
    assert changed == {"b.localhost."}
    assert second.certs == first.certs and second.hash != first.hash
    new = ok(fetch(api, node_id, token, [second.zones["b.localhost."]]))["objects"]
    zone = ZoneSpec.model_validate(new[second.zones["b.localhost."]])
    assert any(r.name == "www.b.localhost." and r.type == "A" for r in zone.rrsets)
    # Objects of the previous revision are still had (a node a little behind).
    assert fetch(api, node_id, token, [first.zones["b.localhost."]]).status_code == 200


def test_objects_are_the_node_s_own_and_known(api: Api) -> None:
    ok(api.post(DOMAINS, json={"domain": "a.localhost"}), 201)
    node_id, token = node(api, "n1")
    other_id, other_token = node(api, "n2")
    got = manifest(api, node_id, token)
    # Another node's token: refused, saying why.
    r = fetch(api, node_id, other_token, got.objects())
    assert r.status_code == 403 and node_id in r.json()["detail"]
    assert "edge token" in r.json()["detail"]
    # An API token (even the admin's) is not an edge token.
    r = api.post(f"{EDGE}/nodes/{node_id}/objects", json={"hashes": got.objects()})
    assert r.status_code == 403
    # An unknown hash: 404 naming it.
    unknown = "0" * 64
    r = fetch(api, node_id, token, [got.certs[0], unknown])
    assert r.status_code == 404 and unknown in r.json()["detail"]
    # Not a hash: 422 naming the field; none at all: 422.
    r = fetch(api, node_id, token, ["../../etc/passwd"])
    assert r.status_code == 422 and r.json()["field"] == "hashes"
    assert fetch(api, node_id, token, []).status_code == 422
    assert fetch(api, "node-nope", token, got.objects()).status_code == 404
    assert fetch(api, other_id, other_token, got.objects()).status_code == 200


def test_heartbeats_send_zone_serials_whole_or_changed_only(api: Api) -> None:
    node_id, token = node(api, "n1")

    def stored() -> dict[str, int]:
        with api.db.read(LOCAL, "default") as tx:
            return zone_serials.of_node(tx, node_id)

    def beat(body: dict[str, Any]) -> None:
        ok(api.post(f"{EDGE}/nodes/{node_id}/heartbeat", token=token, json=body), 204)

    beat({"dns_serials": {"a.example.": 1, "b.example.": 2}})
    assert stored() == {"a.example.": 1, "b.example.": 2}
    beat({"dns_serials": None})  # unchanged
    assert stored() == {"a.example.": 1, "b.example.": 2}
    beat({"dns_serials": {"b.example.": 3, "a.example.": 0, "c.example.": 1},
          "dns_serials_partial": True})  # fmt: skip
    assert stored() == {"b.example.": 3, "c.example.": 1}
    beat({"dns_serials": {"d.example.": 9}})  # whole again (an agent restarted)
    assert stored() == {"d.example.": 9}
