"""The edge protocol's versions and the agent's tolerance: version arithmetic, the lenient
parse of snapshots (unknown fields ignored and named), the node's object store and saved
manifest read leniently, the control plane's URLs, and the agent's client against control
planes it must fall back for: a URL that refuses connections, a control plane of version 1
(emulated on loopback from the recorded version-1 bodies: it refuses fields it does not
know), and one that serves newer versions only."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from edgeplane.node.agent.client import EdgeClient, Rejected, control_plane_urls
from edgeplane.node.agent.objects import ObjectStore
from edgeplane.node.agent.statedir import StateDir
from edgeplane.protocol import lenient, versions
from edgeplane.protocol.config import EdgeManifest, canonical_body, object_hash
from edgeplane.protocol.messages import Ack, ConfigPoll, NodeRegister

V1 = Path(__file__).parent.parent / "fixtures" / "protocol_v1"
NODE = {"id": "node-1", "name": "n1", "region": "eu-central"}


def test_versions_served_refused_and_negotiated() -> None:
    assert (versions.MIN_PROTOCOL_VERSION, versions.PROTOCOL_VERSION) == (1, 3)
    assert versions.served() == {"min": 1, "max": 3}
    assert versions.refusal(1) is None and versions.refusal(2) is None
    assert "upgrade the agent" in (versions.refusal(0) or "")
    assert versions.refusal(3) is None
    assert "upgrade the control plane first" in (versions.refusal(4) or "")
    assert versions.parse_header(None) == 1  # a version-1 agent sends none
    assert versions.parse_header(" 2 ") == 2
    for bad in ("", "two", "-1", "1.5", "٣", "9" * 7):
        with pytest.raises(ValueError, match="not a version number"):
            versions.parse_header(bad)
    assert versions.common(1, 1) == 1 and versions.common(1, 5) == 3
    assert versions.common(2, 2) == 2
    assert versions.common(4, 5) is None  # a control plane past this agent
    node = {"id": "n", "protocol": 2, "ignored_fields": ["x"]}
    assert versions.for_protocol(node, "EdgeNode", 1) == {"id": "n"}
    assert versions.for_protocol(node, "EdgeNode", 2) == node
    assert versions.added_after("Ack", 1) == {"ignored"}
    assert versions.added_after("Heartbeat", 2) == {"functions"}
    assert versions.added_after("Heartbeat", 3) == frozenset()
    node3 = {**node, "functions": True}
    assert versions.for_protocol(node3, "EdgeNode", 2) == node
    assert versions.for_protocol(node3, "EdgeNode", 3) == node3
    assert versions.added_after("NodeRegister", 2) == {"functions"}


def _manifest(**extra: Any) -> dict[str, Any]:
    site = {"id": "p1", "domains": ["a.localhost"], "pool": None}
    return {"revision": 3, "hash": "h" * 16, "http_hash": "g" * 16, "node": NODE,
            "sites": [site, {**site, "id": "p2"}], **extra}  # fmt: skip


def test_a_snapshot_with_unknown_fields_is_read_and_they_are_named() -> None:
    strict = json.dumps({"revision": 3, "hash": "h", "config": None, "manifest": _manifest()})
    poll, ignored = lenient.parse_poll(ConfigPoll, strict)
    assert ignored == [] and poll == ConfigPoll.model_validate_json(strict)

    manifest = _manifest(future={"x": [1]})
    manifest["node"] = {**NODE, "future_node": 1}
    manifest["sites"] = [{**s, "future_site": True} for s in manifest["sites"]]
    manifest["sites"][0]["cache_rules"] = [{"id": "r", "pattern": "/*", "ttl": 5, "later": 1}]
    manifest["verifications"] = [{"domain": "a.localhost", "token": "t", "later": 2}]
    raw = json.dumps({"revision": 3, "hash": "h", "config": None, "manifest": manifest})
    with pytest.raises(ValidationError):
        ConfigPoll.model_validate_json(raw)  # the models stay strict
    poll, ignored = lenient.parse_poll(ConfigPoll, raw)
    assert ignored == [
        "future",
        "node.future_node",
        "sites[].cache_rules[].later",
        "sites[].future_site",
        "verifications[].later",
    ]
    assert poll.manifest is not None
    assert [s.id for s in poll.manifest.sites] == ["p1", "p2"]
    assert poll.manifest.sites[0].cache_rules[0].ttl == 5
    assert poll.manifest.model_dump() == EdgeManifest.model_validate(_manifest(
        verifications=[{"domain": "a.localhost", "token": "t"}],
        sites=[{**_manifest()["sites"][0],
                "cache_rules": [{"id": "r", "pattern": "/*", "ttl": 5}]},
               _manifest()["sites"][1]],
    )).model_dump()  # fmt: skip

    # A delta names them as places in the manifest it makes.
    delta = {"base": 2, "base_hash": "b" * 16, "revision": 3, "hash": "h" * 16,
             "http_hash": "g" * 16, "node": NODE, "future": 1,
             "sites": {"removed": [0], "added": [[0, {"id": "p", "domains": [], "pool": None,
                                                      "future_site": 1}]]}}  # fmt: skip
    _, ignored = lenient.parse_poll(
        ConfigPoll, json.dumps({"revision": 3, "hash": "h", "config": None, "delta": delta})
    )
    assert ignored == ["future", "sites[].future_site"]

    # Anything else wrong is refused as before, unknown fields or not.
    bad = _manifest(future=1)
    bad["sites"][0]["pool"] = 7
    with pytest.raises(ValidationError) as refused:
        lenient.parse_json(EdgeManifest, json.dumps(bad))
    assert {e["type"] for e in refused.value.errors()} == {"string_type", "extra_forbidden"}


def test_the_node_reads_objects_and_its_saved_manifest_leniently(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "objects")
    zone = {"name": "a.localhost.", "serial": 1, "future": "x",
            "rrsets": [{"name": "a.localhost.", "type": "A", "ttl": 60,
                        "records": ["192.0.2.1"], "comment": "later"}]}  # fmt: skip
    digest = object_hash(canonical_body(zone))  # a newer control plane hashes it whole
    assert store.missing([digest]) == [digest]
    store.put(digest, zone)
    spec = store.zone(digest)
    assert (spec.name, spec.serial) == ("a.localhost.", 1)
    assert spec.rrsets[0].records == ("192.0.2.1",)
    assert store.ignored == {"zones[].future", "zones[].rrsets[].comment"}
    assert digest in store.known()  # kept: it is what its name says

    state = StateDir(tmp_path / "state")
    state.prepare()
    state.manifest_path.write_text(json.dumps(_manifest(future=1)))
    loaded = state.load_manifest()
    assert loaded is not None and [s.id for s in loaded.sites] == ["p1", "p2"]


def test_control_plane_urls() -> None:
    assert control_plane_urls("http://a:1") == ("http://a:1",)
    assert control_plane_urls(["http://a:1/, https://b", "http://a:1", " http://c:3 "]) == (
        "http://a:1",
        "https://b",
        "http://c:3",
    )
    for bad in ("a:1", "ftp://a", "http://", "http://a:port"):
        with pytest.raises(ValueError, match="is not a control plane URL"):
            control_plane_urls(bad)
    with pytest.raises(ValueError, match="no control plane URL"):
        control_plane_urls([" , "])
    with pytest.raises(ValueError) as refused:
        control_plane_urls("ftp://user:secret@host")
    assert "secret" not in str(refused.value)


# The client against control planes it must fall back for -------------------------------------


def _node_v1() -> dict[str, Any]:
    return {**NODE, "address": None, "http_port": 8080, "https_port": None,
            "status": "online", "registered_at": "2026-01-01T00:00:00Z",
            "last_seen_at": None, "desired_revision": 1, "applied_revision": None,
            "applied_hash": None, "applied_at": None, "in_sync": False, "apply_ms": None,
            "propagation_ms": None, "last_error": None, "failed_revision": None}  # fmt: skip


@contextmanager
def control_plane(kind: str) -> Iterator[tuple[str, list[tuple[str, str | None, list[str]]]]]:
    """A control plane on loopback: ``v1`` refuses, as version 1 did, any field it does not
    know (those of the recorded version-1 bodies) and sends no protocol header; ``newer``
    serves only the two versions after this agent's. Yields its URL and the calls it got
    (path, protocol header, body fields)."""
    known = {
        "/api/v1/edge/nodes": set(json.loads((V1 / "register.json").read_text())),
        "/api/v1/edge/nodes/node-1/ack": set(json.loads((V1 / "ack.json").read_text())),
    }
    seen: list[tuple[str, str | None, list[str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, self.headers.get(versions.HEADER), sorted(body)))
            unknown = sorted(set(body) - known[self.path])
            if kind == "newer":
                past = versions.PROTOCOL_VERSION + 1
                self._send(422, {"status": 422, "detail": "too old", "field": versions.HEADER,
                                 "protocols": {"min": past, "max": past + 1}})  # fmt: skip
            elif unknown:
                errors = [{"field": f, "reason": "is not a known field"} for f in unknown]
                self._send(422, {"status": 422, "field": unknown[0], "errors": errors,
                                 "detail": f"{unknown[0]}: is not a known field"})  # fmt: skip
            else:
                self._send(200, _node_v1())

        def _send(self, status: int, doc: dict[str, Any]) -> None:
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _refused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # closed when this returns


REGISTER = NodeRegister(name="n1", region="eu-central", http_port=8080, protocol=2)
AGENT = str(versions.PROTOCOL_VERSION)  # what this agent says in its header
ACK = Ack(revision=1, hash="h", ok=True, apply_ms=1.0, ignored=["sites[].future"])


def test_the_client_moves_on_and_speaks_version_1_to_a_version_1_control_plane(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="edgeplane.agent")
    refused = _refused_url()
    with control_plane("v1") as (url, seen):

        async def run() -> EdgeClient:
            client = EdgeClient([refused, url], "token-not-logged")
            try:
                node = await client.register(REGISTER)
                assert node.id == "node-1" and node.protocol == 1
                await client.ack("node-1", ACK)
                await client.ack("node-1", ACK)
            finally:
                await client.aclose()
            return client

        client = asyncio.run(run())
    assert client.url == url and client.protocol() == 1
    assert seen == [
        ("/api/v1/edge/nodes", AGENT, sorted(REGISTER.model_dump())),  # refused: "protocol"
        (
            "/api/v1/edge/nodes",
            "1",
            sorted(set(REGISTER.model_dump()) - set(versions.ADDED["NodeRegister"])),
        ),
        ("/api/v1/edge/nodes/node-1/ack", "1", sorted(set(ACK.model_dump()) - {"ignored"})),
        ("/api/v1/edge/nodes/node-1/ack", "1", sorted(set(ACK.model_dump()) - {"ignored"})),
    ]
    moves = [r.getMessage() for r in caplog.records if "moving to" in r.getMessage()]
    assert moves == [f"control plane {refused} unreachable (POST /nodes: ConnectError: "
                     f"All connection attempts failed); moving to {url}"]  # fmt: skip
    older = [r.getMessage() for r in caplog.records if "speaks edge protocol" in r.getMessage()]
    assert older == [f"control plane {url} speaks edge protocol version 1 (this agent {AGENT}): "
                     "speaking 1"]  # fmt: skip
    assert "token-not-logged" not in caplog.text


def test_the_client_says_which_versions_a_control_plane_past_it_serves() -> None:
    with control_plane("newer") as (url, seen):

        async def run() -> None:
            client = EdgeClient(url, "t")
            try:
                await client.register(REGISTER)
            finally:
                await client.aclose()

        with pytest.raises(Rejected, match="422: POST /nodes: too old"):
            asyncio.run(run())
    assert [s[1] for s in seen] == [AGENT]  # no version in common: not tried again


def test_paths_are_safe_to_send_back() -> None:
    """A field's name comes from the control plane: what the ack carries is printable and
    bounded (the control plane refuses control characters and overlong paths)."""
    assert lenient.path(("sites", 4, "a\x00b\nc")) == "sites[].a?b?c"
    assert len(lenient.path(["x" * 1000])) == lenient.MAX_PATH_LENGTH
    many = lenient.paths([("f", str(i)) for i in range(500)])
    assert len(many) == lenient.MAX_PATHS
    Ack(revision=1, hash="h", ok=True, apply_ms=0, ignored=many)  # accepted as it is
