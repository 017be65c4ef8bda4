"""Rolling upgrades and replicas: a control plane of edge protocol version 2 and agents of
version 1, and a node that moves to another replica.

The agents' side of version 1 is recorded in ``tests/fixtures/protocol_v1`` (the bodies they
send, the schemas of what they parse): every recorded body is accepted, and what is sent to a
node that registered as version 1 validates against the recorded schemas with additional
properties forbidden everywhere (a version-1 agent refuses a snapshot field it does not know).
Then the version checks of version 2: the header, the refusals naming the versions served, the
fields of newer agents ignored, ``Ack.ignored`` stored and shown. Last, a second replica (an
app of its own on the same database, with its own snapshot cache) answers a node that moved to
it with the revision and hash it holds: nothing to apply, then the next revision whole. On
SQLite only: nothing here depends on the database engine.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from fastapi.testclient import TestClient

from conftest import Api
from edgeplane.api.app import create_app
from edgeplane.protocol.versions import HEADER, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL
from edgeplane.store.tables import EdgeNodeRow, PurgeRow

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

EDGE = "/api/v1/edge"
DOMAINS = "/api/v1/infrastructure/domains"
V1 = Path(__file__).parent.parent / "fixtures" / "protocol_v1"
SCHEMAS: dict[str, Any] = json.loads((V1 / "schemas.json").read_text())


def body(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((V1 / f"{name}.json").read_text())
    return doc


def closed(schema: Any) -> Any:
    """``schema`` with additional properties forbidden in every object it describes."""
    if isinstance(schema, dict):
        out = {k: closed(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [closed(v) for v in schema]
    return schema


def check_v1(model: str, doc: Any) -> None:
    """``doc`` is what a version-1 agent parses as ``model``; the errors listed if not."""
    validator = jsonschema_rs.validator_for(closed(SCHEMAS[model]))
    errors = [
        f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]
    assert not errors, f"{model}: {errors[:5]}"


def v1_call(api: Api, method: str, path: str, token: str, **kw: Any) -> Any:
    """A call as a version-1 agent makes it: no protocol header."""
    r = api.client.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kw)
    assert HEADER not in r.request.headers
    return r


def edge_token(api: Api, name: str) -> str:
    r = api.post("/api/v1/tokens", json={"name": name, "scope": "edge"})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def purge_row(api: Api) -> str:
    purge_id = f"purge-{time.monotonic_ns()}"
    with api.db.transaction(LOCAL, "default") as tx:
        tx.session.add(
            PurgeRow(id=purge_id, project_id="default", paths=["/a"], purge_all=False,
                     created_by="test")
        )  # fmt: skip
        tx.record("purge", "cdn", purge_id, None, {"paths": ["/a"]})
    return purge_id


def test_every_recorded_v1_body_is_accepted_and_answered_in_v1_shapes(api: Api) -> None:
    for name in ("a.localhost", "b.localhost"):
        assert api.post(DOMAINS, json={"domain": name}).status_code == 201
    token = edge_token(api, "v1")
    r = v1_call(api, "POST", f"{EDGE}/nodes", token, json=body("register"))
    assert r.status_code == 200, r.text
    assert r.headers[HEADER] == str(PROTOCOL_VERSION)  # the control plane says its own
    node = r.json()
    check_v1("EdgeNode", node)
    assert "protocol" not in node and "ignored_fields" not in node
    node_id = node["id"]
    nodes = f"{EDGE}/nodes/{node_id}"
    with api.db.read(LOCAL, "default") as tx:
        row = tx.session.get(EdgeNodeRow, node_id)
        assert row is not None and row.protocol == 1

    # The long-poll: the full snapshot (the oldest agents), the manifest, then a delta.
    full = v1_call(api, "GET", f"{nodes}/config", token, params={"wait": 0}).json()
    check_v1("ConfigPoll", full)
    assert full["config"]["zones"] and full["manifest"] is None
    params = {"wait": 0, "refs": "true"}
    first = v1_call(api, "GET", f"{nodes}/config", token, params=params).json()
    check_v1("ConfigPoll", first)
    manifest = first["manifest"]
    assert manifest is not None and manifest["zones"]
    patch = {"set": [{"name": "www", "type": "A", "values": ["192.0.2.7"]}]}
    assert api.patch(f"{DOMAINS}/b.localhost/records", json=patch).status_code == 200
    purge_id = purge_row(api)
    params = {"wait": 0, "refs": "true", "after": manifest["revision"], "have": manifest["hash"]}
    second = v1_call(api, "GET", f"{nodes}/config", token, params=params).json()
    check_v1("ConfigPoll", second)
    assert second["delta"] is not None and second["delta"]["zones"]["added"]
    assert [p["id"] for p in second["purges"]] == [purge_id]
    hashes = [
        *manifest["certs"],
        *manifest["zones"].values(),
        second["delta"]["zones"]["added"][0][1][1],
    ]
    asked = {**body("objects"), "hashes": hashes}
    r = v1_call(api, "POST", f"{nodes}/objects", token, json=asked)
    assert r.status_code == 200, r.text
    objects = r.json()
    check_v1("ObjectsAnswer", objects)
    for digest in manifest["certs"]:
        check_v1("CertSpec", objects["objects"][digest])
    for digest in hashes[len(manifest["certs"]) :]:
        check_v1("ZoneSpec", objects["objects"][digest])

    # Every other body a version-1 agent sends.
    ack = {**body("ack"), "revision": second["revision"], "hash": second["hash"]}
    r = v1_call(api, "POST", f"{nodes}/ack", token, json=ack)
    assert r.status_code == 200, r.text
    check_v1("EdgeNode", r.json())
    assert r.json()["applied_revision"] == second["revision"]
    r = v1_call(api, "POST", f"{nodes}/ack", token, json=body("ack_failed"))
    assert r.status_code == 200, r.text
    calls = [
        ("heartbeat", f"{nodes}/heartbeat"),
        ("heartbeat_partial", f"{nodes}/heartbeat"),
        ("health", f"{nodes}/health"),
        ("purge_ack", f"{nodes}/purges/{purge_id}"),
        ("analytics", f"{nodes}/analytics"),
        ("uptime", f"{nodes}/uptime"),
        ("logs", f"{nodes}/logs"),
    ]
    for name, path in calls:
        r = v1_call(api, "POST", path, token, json=body(name))
        assert r.status_code == 204, (name, r.text)
    listed = next(n for n in api.get(f"{EDGE}/nodes").json() if n["id"] == node_id)
    assert listed["protocol"] == 1 and listed["ignored_fields"] == []
    assert listed["failed_revision"] == body("ack_failed")["revision"]


def test_versions_are_checked_and_named(api: Api) -> None:
    token = edge_token(api, "v2")
    headers = {"Authorization": f"Bearer {token}"}
    register = {**body("register"), "protocol": PROTOCOL_VERSION}
    newer = str(PROTOCOL_VERSION + 1)
    r = api.client.post(f"{EDGE}/nodes", json=register, headers={**headers, HEADER: newer})
    assert r.status_code == 422, r.text
    doc = r.json()
    assert doc["field"] == HEADER and f"version {newer} is newer" in doc["detail"]
    assert doc["protocols"] == {"min": MIN_PROTOCOL_VERSION, "max": PROTOCOL_VERSION}
    assert f"versions {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}" in doc["detail"]
    r = api.client.post(f"{EDGE}/nodes", json=register, headers={**headers, HEADER: "0"})
    assert r.status_code == 422 and "no longer served" in r.json()["detail"]
    r = api.client.post(f"{EDGE}/nodes", json=register, headers={**headers, HEADER: "two"})
    assert r.status_code == 422 and r.json()["field"] == HEADER, r.text
    r = api.client.post(
        f"{EDGE}/nodes", json={**register, "protocol": PROTOCOL_VERSION + 1}, headers=headers
    )
    assert r.status_code == 422 and r.json()["field"] == "protocol", r.text
    assert r.json()["protocols"]["max"] == PROTOCOL_VERSION
    assert api.get(f"{EDGE}/nodes").json() == []  # nothing registered by a refusal

    # Version 2: the version stored and shown; what a newer agent adds is ignored.
    v2 = {**headers, HEADER: str(PROTOCOL_VERSION)}
    r = api.client.post(f"{EDGE}/nodes", json={**register, "future": {"x": 1}}, headers=v2)
    assert r.status_code == 200, r.text
    node = r.json()
    assert node["protocol"] == PROTOCOL_VERSION and node["ignored_fields"] == []
    nodes = f"{EDGE}/nodes/{node['id']}"
    beat = {**body("heartbeat"), "future": 1, "bundles": {}}
    r = api.client.post(f"{nodes}/heartbeat", json=beat, headers=v2)
    assert r.status_code == 204, r.text
    poll = api.client.get(f"{nodes}/config", params={"wait": 0, "refs": "true"}, headers=v2)
    assert poll.status_code == 200 and poll.headers[HEADER] == str(PROTOCOL_VERSION)
    doc = poll.json()
    check_v1("ConfigPoll", doc)  # version 2 adds nothing to the snapshot
    ignored = ["sites[].future_rule", "zones[].future"]
    ack = {**body("ack"), "revision": doc["revision"], "hash": doc["hash"], "ignored": ignored}
    r = api.client.post(f"{nodes}/ack", json=ack, headers=v2)
    assert r.status_code == 200, r.text
    assert r.json()["ignored_fields"] == ignored
    shown = next(n for n in api.get(f"{EDGE}/nodes").json() if n["id"] == node["id"])
    assert shown["ignored_fields"] == ignored and shown["protocol"] == PROTOCOL_VERSION
    # The same node's agent rolled back to version 1: registered again, shown as such, and
    # its acks (no ``ignored``) clear the list.
    r = v1_call(api, "POST", f"{EDGE}/nodes", token, json=body("register"))
    assert r.status_code == 200 and "protocol" not in r.json()
    ack = {**body("ack"), "revision": doc["revision"], "hash": doc["hash"]}
    r = v1_call(api, "POST", f"{nodes}/ack", token, json=ack)
    assert r.status_code == 200 and "ignored_fields" not in r.json()
    shown = next(n for n in api.get(f"{EDGE}/nodes").json() if n["id"] == node["id"])
    assert shown["protocol"] == 1 and shown["ignored_fields"] == []
    # Its answer as a version-2 agent sees it does not fit the version-1 shape: the check
    # above would catch a field leaking to version 1.
    with pytest.raises(AssertionError, match="protocol"):
        check_v1("EdgeNode", shown)


def test_a_replica_answers_a_node_that_moved_to_it_without_sending_its_revision_again(
    api: Api,
) -> None:
    assert api.post(DOMAINS, json={"domain": "m.localhost"}).status_code == 201
    token = edge_token(api, "moving")
    headers = {"Authorization": f"Bearer {token}", HEADER: str(PROTOCOL_VERSION)}
    register = {**body("register"), "name": "moving", "protocol": PROTOCOL_VERSION}
    node = api.client.post(f"{EDGE}/nodes", json=register, headers=headers).json()
    config = f"{EDGE}/nodes/{node['id']}/config"
    held = api.client.get(config, params={"wait": 0, "refs": "true"}, headers=headers).json()
    manifest = held["manifest"]
    settings = Settings(home=api.tmp / "home", database_url=api.db.url, node_timeout_s=60.0)
    with TestClient(create_app(settings, api.db), raise_server_exceptions=False) as other:
        params = {
            "wait": 0,
            "refs": "true",
            "after": manifest["revision"],
            "have": manifest["hash"],
        }
        doc = other.get(config, params=params, headers=headers).json()
        assert doc["revision"] == manifest["revision"] and doc["hash"] == manifest["hash"]
        assert (doc["config"], doc["manifest"], doc["delta"]) == (None, None, None)
        # The next revision: as changes from the node's (this replica built that revision to
        # answer), and the same for nginx and in content when nothing the node serves changed.
        assert api.post("/api/v1/projects", json={"id": "other"}).status_code == 201
        doc = other.get(config, params=params, headers=headers).json()
        delta = doc["delta"]
        assert doc["revision"] > manifest["revision"] and doc["manifest"] is None
        assert (delta["base"], delta["base_hash"]) == (manifest["revision"], manifest["hash"])
        assert (delta["hash"], delta["http_hash"]) == (manifest["hash"], manifest["http_hash"])
