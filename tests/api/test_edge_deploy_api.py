"""Edge deployments through the REST API: bundle uploads, deploys with placement, the canary
then rolling rollout driven by node heartbeats, failed versions, rollback and reactivation,
locations and metrics."""

from __future__ import annotations

import dataclasses
import io
import tarfile
from typing import Any

import pytest

from conftest import Api

EDGE = "/api/v1/edge"
INV = "/api/v1/infrastructure"
DEPLOY = f"{INV}/edge"
PROJECT = "default"


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if status != 204 else None


def problem(r: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    doc: dict[str, Any] = r.json()
    if field is not None:
        assert doc.get("field") == field, doc
    return doc


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
        "assets/app.3f2a9c1b.js": f"console.log('{version}')\n".encode() * 50,
    }


def upload(api: Api, data: bytes, status: int = 201) -> dict[str, Any]:
    return ok(api.post(f"{DEPLOY}/bundles", content=data), status)  # type: ignore[no-any-return]


def edge_token(api: Api) -> str:
    doc = ok(api.post("/api/v1/tokens", json={"name": "edge", "scope": "edge"}), 201)
    return str(doc["token"])


class Node:
    """An edge node as the control plane sees it: registered, sending heartbeats."""

    def __init__(self, api: Api, token: str, name: str, region: str) -> None:
        self.api = api
        self.token = token
        body = {"name": name, "region": region, "http_port": 8080}
        self.id = str(ok(api.post(f"{EDGE}/nodes", token=token, json=body))["id"])
        self.name = name
        self.region = region
        self.bundles: dict[str, Any] = {}
        self.beat()

    def beat(self, healthy: bool = True) -> None:
        body: dict[str, Any] = {"healthy": healthy}
        if self.bundles:
            body["bundles"] = self.bundles
        r = self.api.post(f"{EDGE}/nodes/{self.id}/heartbeat", token=self.token, json=body)
        ok(r, 204)

    def report(self, deployment: dict[str, Any], state: str, error: str | None = None) -> None:
        report: dict[str, Any] = {
            "deployment": deployment["id"],
            "bundle": deployment["bundle"],
            "state": state,
        }
        if error is not None:
            report["error"] = error
        self.bundles = {PROJECT: report}
        self.beat()


def nodes(api: Api, *where: tuple[str, str]) -> dict[str, Node]:
    token = edge_token(api)
    return {name: Node(api, token, name, region) for name, region in where}


def add_site_domain(api: Api, domain: str = "shop.test") -> None:
    doc = ok(api.post(f"{INV}/domains", json={"domain": domain}), 201)
    got = ok(api.get(f"{INV}/domains/{domain}"))
    assert got["status"] == "active", (doc, got)


def deployment(api: Api, deployment_id: str) -> dict[str, Any]:
    return ok(api.get(f"{DEPLOY}/deployments/{deployment_id}"))  # type: ignore[no-any-return]


def deploy(api: Api, status: int = 202, **body: Any) -> Any:
    return ok(api.post(f"{DEPLOY}/deploy", json=body), status)


@pytest.fixture
def two_regions(api: Api) -> dict[str, Node]:
    """A verified domain and a live node in each of eu-central and us-east."""
    add_site_domain(api)
    return nodes(api, ("eu-1", "eu-central"), ("us-1", "us-east"))


# Bundles ----------------------------------------------------------------------------------


def test_upload_is_content_addressed(api: Api) -> None:
    data = tar_of(site("v1"))
    first = upload(api, data, 201)
    assert first["created"] is True
    bundle = first["bundle"]
    assert len(bundle["id"]) == 64 and bundle["files"] == 2
    assert bundle["project_id"] == PROJECT
    assert bundle["source_bytes"] == sum(len(v) for v in site("v1").values())
    again = upload(api, data, 200)
    assert again["created"] is False and again["bundle"]["id"] == bundle["id"]
    other = upload(api, tar_of(site("v2")), 201)
    assert other["bundle"]["id"] != bundle["id"]
    listed = ok(api.get(f"{DEPLOY}/bundles"))
    assert sorted(b["id"] for b in listed) == sorted([bundle["id"], other["bundle"]["id"]])
    assert ok(api.get(f"{DEPLOY}/bundles/{bundle['id']}"))["files"] == 2
    problem(api.get(f"{DEPLOY}/bundles/{'0' * 64}"), 404)
    # Another project does not see it.
    ok(api.post("/api/v1/projects", json={"id": "other"}), 201)
    assert ok(api.get(f"{DEPLOY}/bundles", params={"project": "other"})) == []


def test_upload_with_a_path_out_of_the_bundle_is_refused(api: Api) -> None:
    data = tar_of({"index.html": b"hi", "../x": b"escape"})
    doc = problem(api.post(f"{DEPLOY}/bundles", content=data), 422, "bundle")
    assert "../x" in doc["detail"]
    assert ok(api.get(f"{DEPLOY}/bundles")) == []


def test_upload_with_a_link_out_of_the_bundle_is_refused(api: Api) -> None:
    link = tarfile.TarInfo("assets/passwd")
    link.type = tarfile.SYMTYPE
    link.linkname = "../../etc/passwd"
    doc = problem(
        api.post(f"{DEPLOY}/bundles", content=tar_of({"index.html": b"hi"}, [link])), 422, "bundle"
    )
    assert "assets/passwd" in doc["detail"]
    assert ok(api.get(f"{DEPLOY}/bundles")) == []


def test_an_oversized_file_is_refused_and_nothing_stored(api: Api) -> None:
    state = api.client.app.state  # type: ignore[attr-defined]
    limits = dataclasses.replace(state.settings.bundle_limits, max_file_bytes=1000)
    state.settings = dataclasses.replace(state.settings, bundle_limits=limits)
    data = tar_of({"index.html": b"small", "big.bin": b"x" * 1001})
    doc = problem(api.post(f"{DEPLOY}/bundles", content=data), 422, "bundle")
    assert "big.bin" in doc["detail"]
    assert ok(api.get(f"{DEPLOY}/bundles")) == []
    # At the limit is fine.
    assert upload(api, tar_of({"index.html": b"small", "big.bin": b"x" * 1000}))["created"]


def test_uploads_that_are_not_archives(api: Api) -> None:
    problem(api.post(f"{DEPLOY}/bundles", content=b""), 422, "bundle")
    doc = problem(api.post(f"{DEPLOY}/bundles", content=b"hello, not an archive"), 422, "bundle")
    assert "tar" in doc["detail"]
    assert ok(api.get(f"{DEPLOY}/bundles")) == []


def test_a_viewer_cannot_upload_or_deploy(api: Api) -> None:
    viewer = api.token("viewer")
    r = api.post(f"{DEPLOY}/bundles", token=viewer, content=tar_of(site("v1")))
    assert r.status_code == 403
    assert api.post(f"{DEPLOY}/deploy", token=viewer, json={}).status_code == 403
    assert ok(api.get(f"{DEPLOY}/bundles", token=viewer)) == []


# Deploying --------------------------------------------------------------------------------


def test_deploy_needs_a_bundle_and_a_verified_domain(api: Api) -> None:
    nodes(api, ("eu-1", "eu-central"))
    doc = problem(api.post(f"{DEPLOY}/deploy", json={}), 422, "bundle")
    assert "upload" in doc["detail"]
    problem(api.post(f"{DEPLOY}/deploy", json={"bundle": "f" * 64}), 404, "bundle")
    problem(api.post(f"{DEPLOY}/deploy", json={"bundle": "not-hex"}), 422, "bundle")
    bundle = upload(api, tar_of(site("v1")))["bundle"]["id"]
    doc = problem(api.post(f"{DEPLOY}/deploy", json={"bundle": bundle}), 409, "domains")
    assert "verified domain" in doc["detail"]
    assert ok(api.get(f"{DEPLOY}/deployments")) == []
    problem(api.get(f"{DEPLOY}/deployments/current"), 404)


def test_canary_then_rolling_then_active(api: Api, two_regions: dict[str, Node]) -> None:
    eu, us = two_regions["eu-1"], two_regions["us-1"]
    bundle = upload(api, tar_of(site("v1")))["bundle"]["id"]
    doc = deploy(api, bundle=bundle, strategy="all")
    dep = doc["deployment"]
    assert doc["regions_deployed"] == ["eu-central", "us-east"]
    assert dep["status"] == "canary" and dep["version"] == 1
    assert dep["regions"] == ["eu-central", "us-east"] and dep["bundle"] == bundle
    # The canary is the first node of the first region.
    assert dep["canary_node"] == eu.id
    assert dep["cost_per_month"] == 0.0 and dep["placement"]["strategy"] == "all"
    progress = {p["region"]: p for p in deployment(api, dep["id"])["progress"]}
    assert progress["eu-central"]["state"] == "canary"
    assert progress["us-east"]["state"] == "pending"
    assert all(p["nodes"] == 1 and p["active"] == 0 for p in progress.values())
    assert ok(api.get(f"{DEPLOY}/deployments/current"))["id"] == dep["id"]

    # A node that is not the canary reporting the version does not move it on.
    us.report(dep, "active")
    assert deployment(api, dep["id"])["status"] == "canary"

    eu.report(dep, "active")
    got = deployment(api, dep["id"])
    # Both nodes now serve it: the canary passed, and the rollout completes with it.
    assert got["status"] == "active", got
    assert got["activated_at"] is not None and got["error"] is None
    assert all(p["active"] == 1 and p["state"] == "done" for p in got["progress"])


def test_rolling_waits_for_every_node(api: Api, two_regions: dict[str, Node]) -> None:
    eu, us = two_regions["eu-1"], two_regions["us-1"]
    bundle = upload(api, tar_of(site("v1")))["bundle"]["id"]
    dep = deploy(api, bundle=bundle)["deployment"]
    eu.report(dep, "active")
    got = deployment(api, dep["id"])
    assert got["status"] == "rolling", got
    progress = {p["region"]: p for p in got["progress"]}
    assert progress["eu-central"]["active"] == 1 and progress["us-east"]["pending"] == 1
    assert progress["us-east"]["state"] == "rolling"
    us.report(dep, "active")
    got = deployment(api, dep["id"])
    assert got["status"] == "active", got
    versions = ok(api.get(f"{DEPLOY}/deployments"))
    assert [(v["version"], v["status"]) for v in versions] == [(1, "active")]


def _active_version(api: Api, nodes_: dict[str, Node], files: dict[str, bytes]) -> dict[str, Any]:
    bundle = upload(api, tar_of(files))["bundle"]["id"]
    dep = deploy(api, bundle=bundle)["deployment"]
    canary = next(n for n in nodes_.values() if n.id == dep["canary_node"])
    canary.report(dep, "active")
    for n in nodes_.values():
        if n is not canary:
            n.report(dep, "active")
    got = deployment(api, dep["id"])
    assert got["status"] == "active", got
    return got


def test_a_failed_canary_fails_the_version_and_keeps_the_active_one(
    api: Api, two_regions: dict[str, Node]
) -> None:
    v1 = _active_version(api, two_regions, site("v1"))
    bundle = upload(api, tar_of(site("v2")))["bundle"]["id"]
    v2 = deploy(api, bundle=bundle, check_path="/healthz")["deployment"]
    assert v2["status"] == "canary" and v2["version"] == 2
    assert v2["options"]["check_path"] == "/healthz"
    # While v2 is in its canary phase it is current; v1 still serves.
    assert ok(api.get(f"{DEPLOY}/deployments/current"))["id"] == v2["id"]
    assert deployment(api, v1["id"])["status"] == "active"
    canary = two_regions["eu-1"]
    canary.report(v2, "failed", "GET /healthz answered 500")
    got = deployment(api, v2["id"])
    assert got["status"] == "failed", got
    assert "eu-1" in got["error"] and "500" in got["error"]
    assert got["finished_at"] is not None
    assert all(p["state"] in ("failed", "offline") for p in got["progress"])
    current = ok(api.get(f"{DEPLOY}/deployments/current"))
    assert current["id"] == v1["id"] and current["status"] == "active"
    versions = {v["version"]: v["status"] for v in ok(api.get(f"{DEPLOY}/deployments"))}
    assert versions == {1: "active", 2: "failed"}


def test_a_new_deploy_cancels_one_in_progress(api: Api, two_regions: dict[str, Node]) -> None:
    bundle = upload(api, tar_of(site("v1")))["bundle"]["id"]
    first = deploy(api, bundle=bundle)["deployment"]
    second = deploy(api, bundle=bundle, spa=True)["deployment"]
    got = deployment(api, first["id"])
    assert got["status"] == "cancelled" and "version 2" in got["error"]
    assert second["options"]["spa"] is True and second["status"] == "canary"


def test_rollback_and_activate_roll_out_at_once(api: Api, two_regions: dict[str, Node]) -> None:
    problem(api.post(f"{DEPLOY}/rollback"), 409)
    v1 = _active_version(api, two_regions, site("v1"))
    problem(api.post(f"{DEPLOY}/rollback"), 409)  # nothing before v1
    v2 = _active_version(api, two_regions, site("v2"))
    assert deployment(api, v1["id"])["status"] == "superseded"

    back = ok(api.post(f"{DEPLOY}/rollback"), 202)["deployment"]
    assert back["version"] == 3 and back["status"] == "rolling"
    assert back["reactivates"] == v1["id"] and back["bundle"] == v1["bundle"]
    assert back["canary_node"] is None
    assert back["regions"] == v1["regions"]
    # Activating a version being rolled out is refused; an earlier one is a new version.
    problem(api.post(f"{DEPLOY}/deployments/{back['id']}/activate"), 409)
    again = ok(api.post(f"{DEPLOY}/deployments/{v2['id']}/activate"), 202)["deployment"]
    assert again["version"] == 4 and again["status"] == "rolling"
    assert again["reactivates"] == v2["id"] and again["bundle"] == v2["bundle"]
    assert deployment(api, back["id"])["status"] == "cancelled"
    for n in two_regions.values():
        n.report(again, "active")
    assert deployment(api, again["id"])["status"] == "active"
    assert deployment(api, v2["id"])["status"] == "superseded"
    problem(api.post(f"{DEPLOY}/deployments/dep-nope/activate"), 404)


def test_update_config_is_a_new_version(api: Api, two_regions: dict[str, Node]) -> None:
    v1 = _active_version(api, two_regions, site("v1"))
    r = api.patch(
        f"{DEPLOY}/deployments/{v1['id']}",
        json={"spa": True, "origin_paths": ["/api/", "/auth/"], "regions": ["us-east"]},
    )
    v2 = ok(r, 202)["deployment"]
    assert v2["version"] == 2 and v2["status"] == "canary"
    assert v2["bundle"] == v1["bundle"] and v2["regions"] == ["us-east"]
    assert v2["options"] == {"spa": True, "origin_paths": ["/api/", "/auth/"], "check_path": None}
    assert v2["canary_node"] == two_regions["us-1"].id
    bad = api.patch(f"{DEPLOY}/deployments/{v1['id']}", json={"origin_paths": ["api"]})
    problem(bad, 422)
    # A single-page app needs an index.html.
    bundle = upload(api, tar_of({"app.js": b"1"}))["bundle"]["id"]
    problem(api.post(f"{DEPLOY}/deploy", json={"bundle": bundle, "spa": True}), 422, "spa")


def test_regions_are_checked(api: Api, two_regions: dict[str, Node]) -> None:
    bundle = upload(api, tar_of(site("v1")))["bundle"]["id"]
    doc = problem(
        api.post(f"{DEPLOY}/deploy", json={"bundle": bundle, "regions": ["xx-nowhere"]}),
        422,
        "regions[0]",
    )
    assert "xx-nowhere" in doc["detail"]
    doc = problem(
        api.post(
            f"{DEPLOY}/deploy", json={"bundle": bundle, "regions": ["eu-central", "ap-northeast"]}
        ),
        422,
        "regions[1]",
    )
    assert "no live edge node" in doc["detail"]
    only = deploy(api, bundle=bundle, regions=["us-east"])["deployment"]
    assert only["regions"] == ["us-east"] and only["canary_node"] == two_regions["us-1"].id
    problem(api.post(f"{DEPLOY}/deploy", json={"bundle": bundle, "strategy": "fastest"}), 422)


def test_a_region_whose_node_is_down_is_not_a_candidate(
    api: Api, two_regions: dict[str, Node]
) -> None:
    two_regions["us-1"].beat(healthy=False)
    bundle = upload(api, tar_of(site("v1")))["bundle"]["id"]
    dep = deploy(api, bundle=bundle)["deployment"]
    assert dep["regions"] == ["eu-central"]
    problem(
        api.post(f"{DEPLOY}/deploy", json={"bundle": bundle, "regions": ["us-east"]}),
        422,
        "regions[0]",
    )


def test_closest_serves_each_location_from_its_nearest_region(
    api: Api, two_regions: dict[str, Node]
) -> None:
    bundle = upload(api, tar_of(site("v1")))["bundle"]["id"]
    eu = deploy(api, bundle=bundle, strategy="closest", locations=["DE", "FR@2"])["deployment"]
    assert eu["regions"] == ["eu-central"] and eu["strategy"] == "closest"
    users = {u["label"]: u for u in eu["placement"]["users"]}
    assert set(users) == {"DE", "FR"} and users["FR"]["weight"] == 2
    assert all(u["region"] == "eu-central" for u in users.values())
    both = deploy(api, bundle=bundle, strategy="closest", locations=["DE", "US@3"])["deployment"]
    assert both["regions"] == ["eu-central", "us-east"]
    capped = deploy(
        api, bundle=bundle, strategy="closest", locations=["DE", "US@3"], max_regions=1
    )["deployment"]
    # The region nearest most of the traffic is kept.
    assert capped["regions"] == ["us-east"]
    # No locations and no traffic: nothing to place by.
    doc = problem(
        api.post(f"{DEPLOY}/deploy", json={"bundle": bundle, "strategy": "closest"}),
        422,
        "locations",
    )
    assert "traffic" in doc["detail"]
    problem(
        api.post(
            f"{DEPLOY}/deploy",
            json={"bundle": bundle, "strategy": "closest", "locations": ["DE", "Germany"]},
        ),
        422,
        "locations[1]",
    )


def test_cheapest_takes_the_fewest_regions_within_the_target(
    api: Api, two_regions: dict[str, Node]
) -> None:
    bundle = upload(api, tar_of(site("v1")))["bundle"]["id"]
    near = deploy(api, bundle=bundle, strategy="cheapest", locations=["DE", "FR"])["deployment"]
    assert near["regions"] == ["eu-central"]
    assert near["placement"]["latency_target_ms"] == 100.0
    assert all(u["meets_target"] for u in near["placement"]["users"])
    far = deploy(
        api, bundle=bundle, strategy="cheapest", locations=["DE", "US"], latency_target_ms=50
    )["deployment"]
    assert far["regions"] == ["eu-central", "us-east"]
    assert far["cost_per_month"] == 0.0
    problem(
        api.post(
            f"{DEPLOY}/deploy",
            json={
                "bundle": bundle,
                "strategy": "cheapest",
                "locations": ["DE"],
                "latency_target_ms": 0,
            },
        ),
        422,
        "latency_target_ms",
    )


# Locations and metrics --------------------------------------------------------------------


def test_locations_list_regions_with_nodes(api: Api) -> None:
    assert ok(api.get(f"{DEPLOY}/locations")) == []
    add_site_domain(api)
    made = nodes(api, ("eu-1", "eu-central"), ("eu-2", "eu-central"), ("us-1", "us-east"))
    locations = {loc["region"]: loc for loc in ok(api.get(f"{DEPLOY}/locations"))}
    assert sorted(locations) == ["eu-central", "us-east"]
    eu = locations["eu-central"]
    assert eu["name"] == "Europe Central (Frankfurt)" and eu["latitude"] == pytest.approx(50.1109)
    assert eu["status"] == "up" and [n["name"] for n in eu["nodes"]] == ["eu-1", "eu-2"]
    assert all(n["live"] for n in eu["nodes"]) and eu["load"] == 0.0
    assert eu["deployments"] == []
    # eu-1 beats again first: live means a heartbeat within 5 s, and on a loaded machine the
    # requests since its first one took that long once (it was "down", not "degraded")
    made["eu-1"].beat()
    made["eu-2"].beat(healthy=False)
    made["us-1"].beat(healthy=False)
    locations = {loc["region"]: loc for loc in ok(api.get(f"{DEPLOY}/locations"))}
    assert locations["eu-central"]["status"] == "degraded"
    assert locations["us-east"]["status"] == "down"
    assert [n["live"] for n in locations["eu-central"]["nodes"]] == [True, False]
    bundle = upload(api, tar_of(site("v1")))["bundle"]["id"]
    dep = deploy(api, bundle=bundle)["deployment"]
    assert dep["regions"] == ["eu-central"]
    locations = {loc["region"]: loc for loc in ok(api.get(f"{DEPLOY}/locations"))}
    assert locations["eu-central"]["deployments"] == [dep["id"]]
    assert locations["us-east"]["deployments"] == []


def test_metrics_per_region(api: Api, two_regions: dict[str, Node]) -> None:
    bundle = upload(api, tar_of(site("v1")))["bundle"]["id"]
    dep = deploy(api, bundle=bundle)["deployment"]
    doc = ok(api.get(f"{DEPLOY}/deployments/{dep['id']}/metrics"))
    assert doc["deployment_id"] == dep["id"]
    assert [r["region"] for r in doc["regions"]] == ["eu-central", "us-east"]
    for r in doc["regions"]:
        assert (r["requests"], r["bytes_out"], r["hits"], r["static"]) == (0, 0, 0, 0)
        assert r["hit_ratio"] is None and r["p50_ms"] is None and r["countries"] == {}
    one = ok(api.get(f"{DEPLOY}/deployments/{dep['id']}/metrics", params={"region": "us-east"}))
    assert [r["region"] for r in one["regions"]] == ["us-east"]
    r = api.get(f"{DEPLOY}/deployments/{dep['id']}/metrics", params={"region": "ap-northeast"})
    problem(r, 422, "region")
    problem(api.get(f"{DEPLOY}/deployments/dep-nope/metrics"), 404)
