"""Agents follow the control plane: several URLs, and snapshots from a newer control plane.

Two control planes (``edgeplane serve``) share one SQLite database, as replicas do. An agent
given both serves throughout while the first is killed, moves to the second without applying
again what it serves (nginx is not given the same configuration again: the agent's apply count
and nginx's master are unchanged), then follows the second. Another agent, given a URL that
refuses connections first, talks through a proxy that plays a control plane of a newer protocol
version: its snapshots carry fields this agent does not know (at the top and in every site). It
applies them and its acknowledgements name the fields it ignored.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from edge_agents import Api, EdgeAgent, wait_for
from origins import OriginSet, origin_set
from processes import ControlPlane, clean_env, free_port
from replicas import start_serve

from edgeplane.protocol.versions import HEADER, PROTOCOL_VERSION

pytestmark = pytest.mark.integration

APPLIES = re.compile(r'^edgeplane_edge_apply_duration_seconds_count\{outcome="ok"\} (\S+)$', re.M)


@dataclass
class Replicas:
    first: ControlPlane
    second: ControlPlane
    api: Api  # on the second, which stays up


@pytest.fixture(scope="module")
def replicas(tmp_module: Path) -> Iterator[Replicas]:
    home = tmp_module / "cp"
    # In turn: the first migrates the database (replicas on SQLite do not start at once).
    first = start_serve(home, clean_env(), "first")
    second: ControlPlane | None = None
    try:
        second = start_serve(home, clean_env(), "second")
        api = Api(second)
        try:
            yield Replicas(first, second, api)
        finally:
            api.close()
    finally:
        if second is not None:
            second.stop()
        first.stop()


@pytest.fixture
def origins() -> Iterator[OriginSet]:
    with origin_set() as s:
        yield s


def agent(replicas: Replicas, tmp: Path, name: str, urls: str, *extra: str) -> EdgeAgent:
    return EdgeAgent(
        name=name,
        home=tmp / f"home-{name}",
        http_port=free_port(),
        control_plane=urls,
        token=replicas.api.edge_token(f"edge-{name}"),
        log=tmp / f"agent-{name}.log",
        extra_args=list(extra),
    )


def site(api: Api, domain: str, origin: str) -> None:
    api.ok("POST", "/api/v1/infrastructure/domains", json={"domain": domain})
    body = {"origins": [{"url": origin}], "security": {"force_https": False}}
    api.ok("POST", "/api/v1/infrastructure/cdn", json=body)


def served_by(node: EdgeAgent, host: str) -> str | None:
    r = node.get(host, "/")
    return r.headers.get("x-origin") if r.status_code == 200 else None


def node_doc(api: Api, name: str) -> dict[str, Any] | None:
    return next((n for n in api.nodes() if n["name"] == name), None)


def applies(node: EdgeAgent) -> float:
    """How many times the agent has given nginx a configuration (its metrics)."""
    m = APPLIES.search(node.scrape().text)
    return float(m.group(1)) if m else 0.0


def test_an_agent_moves_to_the_next_replica_without_applying_again(
    replicas: Replicas, tmp_module: Path, origins: OriginSet
) -> None:
    api = replicas.api.in_project("fo")
    a, b = origins.start("a"), origins.start("b")
    site(api, "fo.localhost", a.url)
    node = agent(replicas, tmp_module, "fo", f"{replicas.first.url},{replicas.second.url}")
    node.start()
    try:
        wait_for(lambda: served_by(node, "fo.localhost") == "a", 20, "served from origin a")
        before = wait_for(
            lambda: (n := node_doc(api, "fo")) and n["in_sync"] and n, 10, "node acked"
        )
        count, masters = applies(node), node.nginx_pids()
        assert count >= 1 and len(masters) == 1

        failures: list[str] = []
        served = [0]
        stop = threading.Event()

        def probe() -> None:
            while not stop.is_set():
                try:
                    r = node.get("fo.localhost", "/")
                    if r.status_code == 200:
                        served[0] += 1
                    else:
                        failures.append(str(r.status_code))
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                time.sleep(0.02)

        prober = threading.Thread(target=probe)
        prober.start()
        try:
            wait_for(lambda: served[0] >= 3, 10, "requests served before the kill")
            killed = datetime.now()
            replicas.first.stop(signal.SIGKILL)
            moved = f"moving to {replicas.second.url}"
            line = wait_for(
                lambda: next((x for x in node.output().splitlines() if moved in x), None),
                15,
                "the agent moved to the second",
            )
            at = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")  # the log's own time
            print(f"\nmoved {(at - killed).total_seconds() * 1000:.0f} ms after the kill")
            at_move = served[0]
            wait_for(lambda: served[0] >= at_move + 3, 10, "requests served after the move")
            # A revision that changes nothing nginx serves, from the second: received there
            # (polled with the revision and hash the agent holds) and acknowledged.
            api.ok("POST", "/api/v1/projects", json={"id": "fo-other"})
            revision = api.ok("GET", "/api/v1/revision")["revision"]
            after = wait_for(
                lambda: (
                    (n := node_doc(api, "fo"))
                    and n["applied_revision"] == revision
                    and n["in_sync"]
                    and n
                ),
                20,
                "the revision applied through the second",
            )
            assert applies(node) == count and node.nginx_pids() == masters
            assert after["applied_hash"] == before["applied_hash"]
            # A change that does: applied once, from the second.
            api.ok(
                "POST",
                "/api/v1/infrastructure/cdn",
                json={"origins": [{"url": b.url}], "security": {"force_https": False}},
            )
            wait_for(lambda: served_by(node, "fo.localhost") == "b", 20, "served from b")
        finally:
            stop.set()
            prober.join()
        assert failures == []
        assert applies(node) == count + 1 and node.nginx_pids() == masters
        assert node.output().count("moving to") == 1
        print(f"\nfailover: {served[0]} requests served across the kill and the move, 0 failed")
    finally:
        node.stop()


@contextmanager
def newer_control_plane(target: str) -> Iterator[str]:
    """A proxy to ``target`` that plays a control plane of a newer protocol version: its
    snapshots (manifests and deltas) carry a field at the top and one in every site."""

    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            kept = ("authorization", "content-type", HEADER.lower())
            headers = {k: v for k, v in self.headers.items() if k.lower() in kept}
            try:
                r = httpx.request(self.command, target + self.path, content=body,
                                  headers=headers, timeout=60)  # fmt: skip
            except httpx.HTTPError:
                self.send_error(502)
                return
            content = r.content
            if r.status_code == 200 and "/config" in self.path:
                content = json.dumps(newer(r.json())).encode()
            with suppress(OSError):  # the agent stopped meanwhile
                self.send_response(r.status_code)
                for name in ("content-type", HEADER.lower()):
                    if name in r.headers:
                        self.send_header(name, r.headers[name])
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        do_GET = do_POST = _forward

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def newer(doc: dict[str, Any]) -> dict[str, Any]:
    manifest, delta = doc.get("manifest"), doc.get("delta")
    if manifest is not None:
        manifest["future_top"] = {"kind": "later"}
        for s in manifest["sites"]:
            s["future_site"] = True
    if delta is not None:
        delta["future_top"] = {"kind": "later"}
        for _, s in delta["sites"]["added"]:
            s["future_site"] = True
    return doc


def test_an_agent_applies_a_snapshot_with_fields_it_does_not_know(
    replicas: Replicas, tmp_module: Path, origins: OriginSet
) -> None:
    api = replicas.api.in_project("later")
    origin = origins.start("l")
    site(api, "later.localhost", origin.url)
    refused = f"http://127.0.0.1:{free_port()}"
    with newer_control_plane(replicas.second.url) as proxy:
        node = agent(replicas, tmp_module, "later", refused, "--control-plane", proxy)
        node.start()
        try:
            wait_for(lambda: served_by(node, "later.localhost") == "l", 20, "served")
            ignored = ["future_top", "sites[].future_site"]
            doc = wait_for(
                lambda: (n := node_doc(api, "later")) and n["ignored_fields"] == ignored and n,
                10,
                "the ack names the ignored fields",
            )
            assert doc["in_sync"] and doc["last_error"] is None
            assert doc["protocol"] == PROTOCOL_VERSION
            # Another change reaches it (as a delta, its new site carrying the field too).
            site(api, "later2.localhost", origin.url)
            wait_for(lambda: served_by(node, "later2.localhost") == "l", 20, "second site")
            doc = wait_for(lambda: (n := node_doc(api, "later")) and n["in_sync"] and n, 10,
                           "acked")  # fmt: skip
            assert doc["ignored_fields"] == ignored
        finally:
            node.stop()
    log = node.output()
    assert log.count("ignored: future_top, sites[].future_site") == 1  # logged once
    assert "received as changes to revision" in log  # a delta's new site had the field too
    assert f"control plane {refused} unreachable" in log and log.count("moving to") == 1
