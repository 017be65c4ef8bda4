"""Edge deployments across three hosts: network namespaces joined by veth pairs, one real edge
node (agent, nginx, PowerDNS) in each of three regions, a real control plane and an origin in
the root namespace. Requests go through each node's nginx at the host's own address; DNS
answers come from each node's PowerDNS with EDNS Client Subnet saying where the client is.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dns.rdatatype
import httpx
import pytest
from edge_agents import Api, EdgeAgent, new_agent, searchable_tmp, wait_for
from netns import Host, hosts
from pdns import query
from processes import ControlPlane, clean_env, start_up

pytestmark = pytest.mark.integration

INV = "/api/v1/infrastructure"
EDGE = f"{INV}/edge"
DOMAIN = "shop.test"
REGIONS = {"eu": "eu-central", "us": "us-east", "ap": "ap-northeast"}
EU_SUBNET, US_SUBNET, ASIA_SUBNET = "81.2.69.0", "8.8.8.0", "133.242.0.0"
HTTP, HTTPS, DNS = 8080, 8443, 8053
APP_JS = "assets/app.3f2a9c1b.js"
JS = ("function hello(name) { return 'hello ' + name; }\n" * 400).encode()


def tar_of(files: dict[str, bytes], extra: list[tarfile.TarInfo] | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info)
    return out.getvalue()


def site(version: str) -> dict[str, bytes]:
    return {
        "index.html": f"<h1>{version}</h1>\n".encode(),
        "about/index.html": f"about {version}\n".encode(),
        APP_JS: JS + version.encode(),
    }


class _Origin(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 404 if self.path.startswith("/missing") else 200
        body = f"origin {self.path}\n".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class World:
    cp: ControlPlane
    api: Api
    hosts: dict[str, Host]
    nodes: dict[str, EdgeAgent]

    def get(self, key: str, path: str, **headers: str) -> httpx.Response:
        return httpx.get(
            f"http://{self.hosts[key].address}:{HTTP}{path}",
            headers={"Host": DOMAIN, **headers},
            timeout=10,
        )

    def served(self, key: str) -> str | None:
        """The deployment whose bundle the node answers ``/`` from (None: the origin)."""
        r = self.get(key, "/")
        return r.headers.get("x-edge-deployment") or None

    def a(self, key: str, ecs: str) -> list[str]:
        node = self.nodes[key]
        msg = query(_Endpoint(node.bind, DNS), DOMAIN, "A", ecs=ecs)  # type: ignore[arg-type]
        return sorted(
            r.to_text() for rrset in msg.answer if rrset.rdtype == dns.rdatatype.A for r in rrset
        )

    def upload(self, body: bytes) -> httpx.Response:
        return self.api.http.post(
            f"{EDGE}/bundles", content=body, headers={"Content-Type": "application/x-tar"}
        )

    def deploy(self, **body: Any) -> dict[str, Any]:
        return dict(self.api.ok("POST", f"{EDGE}/deploy", json=body))

    def wait_status(self, deployment: str, wanted: str, timeout: float = 30) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            doc = self.api.ok("GET", f"{EDGE}/deployments/{deployment}")
            if doc["status"] in ("failed", "cancelled") and wanted != doc["status"]:
                raise RuntimeError(f"deployment {doc['status']}: {doc['error']}")
            return dict(doc) if doc["status"] == wanted else None

        return wait_for(done, timeout, f"deployment {deployment} {wanted}", every=0.1)


@dataclass
class _Endpoint:
    dns_address: str
    dns_port: int


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    tmp = searchable_tmp("edge-deploy-")
    agents: list[EdgeAgent] = []
    cp: ControlPlane | None = None
    with hosts(3, prefix="epd") as made:
        gateway = made[0].gateway
        origin = ThreadingHTTPServer((gateway, 0), _Origin)
        threading.Thread(target=origin.serve_forever, daemon=True).start()
        try:
            env = clean_env(EDGEPLANE_NODE_TIMEOUT="3", EDGEPLANE_BUNDLE_MAX_FILE_BYTES="2000000")
            cp = start_up(tmp / "cp", env=env, host=gateway)
            api = Api(cp)
            by_key = dict(zip(REGIONS, made, strict=True))
            nodes: dict[str, EdgeAgent] = {}
            for key, region in REGIONS.items():
                host = by_key[key]
                agent = new_agent(cp, api, tmp, f"edge-{key}")
                agent.netns = host.name
                agent.region, agent.bind, agent.address = region, host.address, host.address
                agent.http_port, agent.https_port, agent.dns_port = HTTP, HTTPS, DNS
                nodes[key] = agent.start()
                agents.append(agent)
            wait_for(
                lambda: len([n for n in api.nodes() if n["live"]]) == 3 or None,
                40,
                "three live edge nodes",
            )
            api.ok("POST", f"{INV}/domains", json={"domain": DOMAIN})
            origin_url = f"http://{gateway}:{origin.server_address[1]}"
            api.ok(
                "POST",
                f"{INV}/cdn",
                json={"origins": [{"url": origin_url}], "security": {"force_https": False}},
            )
            yield World(cp, api, by_key, nodes)
            api.close()
        finally:
            for agent in agents:
                agent.stop()
            if cp is not None:
                cp.stop()
            origin.shutdown()


def test_a_deployment_to_two_regions_is_served_there_and_not_in_the_third(world: World) -> None:
    up = world.upload(tar_of(site("v1")))
    assert up.status_code == 201, up.text
    bundle = up.json()["bundle"]
    assert bundle["files"] == 3 and len(bundle["id"]) == 64
    again = world.upload(tar_of(site("v1")))
    assert again.status_code == 200 and again.json()["bundle"]["id"] == bundle["id"]

    started = time.monotonic()
    doc = world.deploy(bundle=bundle["id"], regions=["eu-central", "us-east"], strategy="all")
    assert doc["regions_deployed"] == ["eu-central", "us-east"]
    dep = doc["deployment"]
    assert dep["status"] == "canary" and dep["canary_node"]
    active = world.wait_status(dep["id"], "active")
    print(f"\nv1 active on two regions after {time.monotonic() - started:.2f} s")
    assert {p["region"]: p["active"] for p in active["progress"]} == {
        "eu-central": 1,
        "us-east": 1,
    }

    for key in ("eu", "us"):
        r = world.get(key, "/")
        assert r.status_code == 200 and r.text == "<h1>v1</h1>\n", (key, r.text)
        assert r.headers["x-edge-deployment"] == dep["id"]
        assert r.headers["x-cache-status"] == "STATIC"
        assert r.headers["x-served-by"] == f"edge-{key}"
        assert "must-revalidate" in r.headers["cache-control"]
        assert world.get(key, "/about/").text == "about v1\n"
        # Precompressed variants, and a year of immutable caching for a fingerprinted name.
        br = world.get(key, f"/{APP_JS}", **{"Accept-Encoding": "br"})
        assert br.headers.get("content-encoding") == "br", br.headers
        assert br.content == JS + b"v1"  # httpx decodes it
        assert "immutable" in br.headers["cache-control"]
        assert br.headers["content-type"].startswith("application/javascript")
        gz = world.get(key, f"/{APP_JS}", **{"Accept-Encoding": "gzip"})
        assert gz.headers.get("content-encoding") == "gzip"
        assert gz.content == JS + b"v1"
        # What the bundle does not hold goes to the origin.
        api = world.get(key, "/api/orders")
        assert api.text == "origin /api/orders\n" and api.headers["x-cache-status"] != "STATIC"
    # The third region serves the site from its origin, without the bundle.
    r = world.get("ap", "/")
    assert r.text == "origin /\n" and "x-edge-deployment" not in r.headers

    locations = {loc["region"]: loc for loc in world.api.ok("GET", f"{EDGE}/locations")}
    assert set(locations) == set(REGIONS.values())
    assert locations["eu-central"]["deployments"] == [dep["id"]]
    assert locations["ap-northeast"]["deployments"] == []
    assert all(loc["status"] == "up" for loc in locations.values())
    assert locations["us-east"]["latitude"] > 30


def test_geodns_sends_each_area_to_the_nearest_region_that_has_the_deployment(
    world: World,
) -> None:
    eu, us = world.hosts["eu"].address, world.hosts["us"].address
    # Tokyo's nearest region (ap-northeast) does not have it: Frankfurt is nearer than Ashburn.
    wanted = {EU_SUBNET: [eu], US_SUBNET: [us], ASIA_SUBNET: [eu]}

    def right() -> dict[tuple[str, str], list[str]] | None:
        got = {(key, ecs): world.a(key, ecs) for key in REGIONS for ecs in wanted}
        return got if all(v == wanted[ecs] for (_, ecs), v in got.items()) else None

    # Every node's DNS server takes the zone from the same snapshot as its nginx, a moment
    # apart: allow it a few seconds.
    got = wait_for(right, 10, "every node answering each area with its nearest deployed region")
    assert len(got) == 9


def test_a_failed_check_on_the_canary_rolls_back_automatically(world: World) -> None:
    before = world.api.ok("GET", f"{EDGE}/deployments/current")
    up = world.upload(tar_of(site("broken")))
    doc = world.deploy(bundle=up.json()["bundle"]["id"], check_path="/missing/health")
    failed = world.wait_status(doc["deployment"]["id"], "failed")
    assert "/missing/health" in failed["error"] and "404" in failed["error"], failed["error"]
    assert world.api.ok("GET", f"{EDGE}/deployments/current")["id"] == before["id"]
    for key in ("eu", "us"):
        wait_for(lambda k=key: world.served(k) == before["id"], 10, f"{key} back on v1")
        assert world.get(key, "/").text == "<h1>v1</h1>\n"


def test_rollback_restores_the_previous_version_on_every_node(world: World) -> None:
    v1 = world.api.ok("GET", f"{EDGE}/deployments/current")
    etag_v1 = world.get("eu", "/").headers["etag"]
    up = world.upload(tar_of(site("v2")))
    doc = world.deploy(bundle=up.json()["bundle"]["id"], check_path=None)
    v2 = world.wait_status(doc["deployment"]["id"], "active")
    assert v2["regions"] == sorted(REGIONS.values())  # no regions given: all of them
    for key in REGIONS:
        assert world.get(key, "/").text == "<h1>v2</h1>\n"
    # index.html is as long in v2 as in v1: its ETag must differ all the same.
    etag_v2 = world.get("eu", "/").headers["etag"]
    assert etag_v2 != etag_v1 and world.get("us", "/").headers["etag"] == etag_v2
    assert world.api.ok("GET", f"{EDGE}/deployments/{v1['id']}")["status"] == "superseded"

    started = time.monotonic()
    back = world.api.ok("POST", f"{EDGE}/rollback")["deployment"]
    assert back["status"] == "rolling" and back["reactivates"] == v1["id"]
    for key in ("eu", "us"):
        wait_for(lambda k=key: world.get(k, "/").text == "<h1>v1</h1>\n", 10, f"{key} on v1")
    took = time.monotonic() - started
    world.wait_status(back["id"], "active", 10)
    print(f"\nrolled back to v1 on every node in {took:.2f} s")
    assert world.api.ok("GET", f"{EDGE}/deployments/{v2['id']}")["status"] == "superseded"
    # v1 was not in ap-northeast: once it is active again there, that region has no bundle.
    wait_for(lambda: world.get("ap", "/").text == "origin /\n", 10, "ap back on the origin")


def test_a_bad_bundle_is_refused_and_nothing_is_deployed(world: World) -> None:
    bundles = world.api.ok("GET", f"{EDGE}/bundles")
    versions = world.api.ok("GET", f"{EDGE}/deployments")
    current = world.api.ok("GET", f"{EDGE}/deployments/current")

    escape = world.upload(tar_of({"index.html": b"x", "../../etc/evil": b"x"}))
    assert escape.status_code == 422, escape.text
    assert "../../etc/evil" in escape.json()["detail"], escape.json()

    link = tarfile.TarInfo("assets/passwd")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    linked = world.upload(tar_of({"index.html": b"x"}, [link]))
    assert linked.status_code == 422 and "assets/passwd" in linked.json()["detail"]

    big = world.upload(tar_of({"index.html": b"x", "video.mp4": b"\0" * 2_500_000}))
    assert big.status_code == 422, big.text
    assert "video.mp4" in big.json()["detail"], big.json()

    assert world.api.ok("GET", f"{EDGE}/bundles") == bundles
    assert world.api.ok("GET", f"{EDGE}/deployments") == versions
    for key in ("eu", "us"):
        assert world.served(key) == current["id"]
    missing = world.api.http.post(f"{EDGE}/deploy", json={"bundle": "0" * 64})
    assert missing.status_code == 404, missing.text


def test_metrics_per_region_count_what_each_region_served(world: World) -> None:
    current = world.api.ok("GET", f"{EDGE}/deployments/current")
    path = f"{EDGE}/deployments/{current['id']}/metrics"

    def regions() -> dict[str, dict[str, Any]]:
        return {r["region"]: r for r in world.api.ok("GET", path)["regions"]}

    before = regions()
    for _ in range(20):
        world.get("eu", "/")
    for _ in range(5):
        world.get("us", "/api/x")

    def origin_served(r: dict[str, Any]) -> int:
        return int(r["requests"] - r["static"])

    def counted() -> dict[str, dict[str, Any]] | None:
        now = regions()
        eu_static = now["eu-central"]["static"] - before["eu-central"]["static"]
        us_origin = origin_served(now["us-east"]) - origin_served(before["us-east"])
        return now if eu_static >= 20 and us_origin >= 5 else None

    after = wait_for(counted, 30, "traffic in the metrics", every=0.5)
    eu, us = after["eu-central"], after["us-east"]
    assert eu["hit_ratio"] is not None and eu["hit_ratio"] > 0.5
    assert eu["p50_ms"] is not None and eu["p95_ms"] is not None
    assert us["bytes_out"] > before["us-east"]["bytes_out"]
    only = world.api.ok("GET", path, params={"region": "us-east"})
    assert [r["region"] for r in only["regions"]] == ["us-east"]
    assert world.api.http.get(path, params={"region": "ap-northeast"}).status_code == 422


def test_a_new_config_serves_the_app_for_client_side_routes(world: World) -> None:
    current = world.api.ok("GET", f"{EDGE}/deployments/current")
    r = world.api.http.patch(
        f"{EDGE}/deployments/{current['id']}", json={"spa": True, "origin_paths": ["/api/"]}
    )
    assert r.status_code == 202, r.text
    spa = world.wait_status(r.json()["deployment"]["id"], "active")
    assert spa["version"] == current["version"] + 1 and spa["bundle"] == current["bundle"]
    for key in ("eu", "us"):
        route = world.get(key, "/shop/cart/42")
        assert route.status_code == 200 and route.text == "<h1>v1</h1>\n", route.text
        assert route.headers["x-edge-deployment"] == spa["id"]
        assert "must-revalidate" in route.headers["cache-control"]
        assert world.get(key, "/api/cart").text == "origin /api/cart\n"  # an origin path
        assert world.get(key, "/missing.js").text == "origin /missing.js\n"  # has an extension
        assert world.get(key, "/about/").text == "about v1\n"


def many_files(version: str, count: int = 300) -> dict[str, bytes]:
    """``site(version)`` and ``count`` more files, the same in every version."""
    files = site(version)
    for i in range(count):
        files[f"lib/part{i % 9}/mod{i}.js"] = JS[: 500 + i * 7] + b"// %d\n" % i
        files[f"img/pic{i}.bin"] = hashlib.sha256(b"%d" % i).digest() * (20 + i % 40)
    files[APP_JS] = JS + b"v1"  # what the last test of the module expects
    return files


def sample(files: dict[str, bytes]) -> list[str]:
    return ["index.html", APP_JS, *sorted(files)[::60]]


def every_node_serves(world: World, deployment: str, files: dict[str, bytes]) -> None:
    """Asserted at once, no waiting: what a version that says it is active must already do."""
    for key in REGIONS:
        for name in sample(files):
            path = "/" if name == "index.html" else f"/{name}"
            r = world.get(key, path, **{"Accept-Encoding": "identity"})
            assert r.status_code == 200, (key, name, r.status_code)
            assert r.headers["x-edge-deployment"] == deployment, (key, name)
            assert hashlib.sha256(r.content).digest() == hashlib.sha256(files[name]).digest()


def bundle_dirs(world: World, bundle: str) -> dict[str, Path]:
    return {key: node.prefix / "bundles" / bundle for key, node in world.nodes.items()}


def test_a_fast_deploy_is_served_everywhere_once_active_and_rolls_back(world: World) -> None:
    # Two versions that differ in index.html only: the second's other files are linked to
    # the first's on each node and its variants reused on the control plane.
    first_files = many_files("v3")
    up = world.upload(tar_of(first_files))
    assert up.status_code == 201, up.text
    first = world.wait_status(world.deploy(bundle=up.json()["bundle"]["id"])["deployment"]["id"],
                              "active")  # fmt: skip
    every_node_serves(world, first["id"], first_files)

    second_files = dict(first_files, **{"index.html": b"<h1>v4</h1>\n"})
    up = world.upload(tar_of(second_files))
    assert "build;dur=" in up.headers["server-timing"]
    second = world.wait_status(
        world.deploy(bundle=up.json()["bundle"]["id"])["deployment"]["id"], "active"
    )
    every_node_serves(world, second["id"], second_files)
    for key, path in bundle_dirs(world, second["bundle"]).items():
        earlier = bundle_dirs(world, first["bundle"])[key]
        # An unchanged file: the same inode as the first version's; the changed one: its own.
        assert (path / APP_JS).stat().st_ino == (earlier / APP_JS).stat().st_ino, key
        assert (path / "index.html").stat().st_ino != (earlier / "index.html").stat().st_ino
        assert "linked to earlier bundles" in world.nodes[key].output()
    # Validators by content: an unchanged file keeps its ETag across versions and nodes.
    etags = {world.get(k, f"/{APP_JS}").headers["etag"] for k in REGIONS}
    assert len(etags) == 1

    back = world.api.ok("POST", f"{EDGE}/rollback")["deployment"]
    assert back["reactivates"] == first["id"]
    world.wait_status(back["id"], "active")
    every_node_serves(world, back["id"], first_files)
    for key in REGIONS:
        assert world.get(key, "/").text == "<h1>v3</h1>\n"
        assert world.get(key, f"/{APP_JS}").headers["etag"] in etags


def test_a_corrupted_download_is_refused_and_the_nodes_keep_their_version(
    world: World,
) -> None:
    import sqlite3

    current = world.api.ok("GET", f"{EDGE}/deployments/current")
    files = dict(many_files("v3"), **{"index.html": b"<h1>corrupted on the way</h1>\n"})
    up = world.upload(tar_of(files))
    bundle = up.json()["bundle"]["id"]
    # One byte flipped in what the control plane serves the nodes: its stored archive, and
    # the copy it keeps (and serves from) beside its home.
    kept_copies = list((world.cp.home / "cache").rglob(f"{bundle}.tar"))
    assert kept_copies
    for kept in kept_copies:
        data = bytearray(kept.read_bytes())
        data[len(data) // 3] ^= 0x01
        kept.write_bytes(bytes(data))
    with sqlite3.connect(world.cp.home / "edgeplane.db") as db:
        seq, data = db.execute(
            "SELECT seq, data FROM bundle_chunks WHERE bundle_id = ? ORDER BY seq DESC LIMIT 1",
            (bundle,),
        ).fetchone()
        flipped = bytearray(data)
        flipped[len(flipped) // 3] ^= 0x01
        db.execute(
            "UPDATE bundle_chunks SET data = ? WHERE bundle_id = ? AND seq = ?",
            (bytes(flipped), bundle, seq),
        )
    dep = world.deploy(bundle=bundle)["deployment"]
    failed = world.wait_status(dep["id"], "failed")
    assert "the bundle's sha256 is" in failed["error"] and bundle[:12] in failed["error"]
    assert world.api.ok("GET", f"{EDGE}/deployments/current")["id"] == current["id"]
    for key, path in bundle_dirs(world, bundle).items():
        assert world.served(key) == current["id"], key
        assert world.get(key, "/").text == "<h1>v3</h1>\n"
        assert not path.exists(), key  # nothing of it was ever in place
        assert not [p for p in path.parent.iterdir() if p.name.startswith(f".{bundle}")], key


def test_stopping_a_region_moves_its_clients_within_10_seconds(world: World) -> None:
    eu, us = world.hosts["eu"].address, world.hosts["us"].address
    assert world.a("eu", US_SUBNET) == [us]
    world.nodes["us"].stop()
    started = time.monotonic()

    def moved() -> bool:  # as every remaining node's DNS server answers
        return all(world.a(key, US_SUBNET) == [eu] for key in ("eu", "ap"))

    try:
        wait_for(moved, 10, "US clients sent to eu-central by every remaining node")
    except AssertionError as exc:  # say where the time went: liveness, or a node's apply
        seen = [
            (n["name"], n["live"], n["desired_revision"], n["applied_revision"], n["last_error"])
            for n in world.api.nodes()
        ]
        raise AssertionError(f"{exc}; nodes (name, live, desired, applied, error): {seen}") from exc
    took = time.monotonic() - started
    print(f"\nus-east stopped: US clients answered with eu-central after {took:.2f} s")


def test_sha_of_served_file_matches(world: World) -> None:
    r = world.get("eu", f"/{APP_JS}", **{"Accept-Encoding": "identity"})
    assert hashlib.sha256(r.content).hexdigest() == hashlib.sha256(JS + b"v1").hexdigest()
