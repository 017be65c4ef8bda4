"""Function versions rolling out, driven by the heartbeats of fake edge nodes registered
through the real edge protocol: canary → rolling → active, a failed load or check failing the
version while the previous one stays active, timeouts and an offline canary through the
runner's job, the regions of the project's edge deployment, and nodes that cannot run
functions (no capability, or protocol 2) never chosen, waited for, or given a function."""

from __future__ import annotations

from typing import Any

from api.test_edge_deploy_api import site as bundle_files
from api.test_edge_deploy_api import tar_of, upload
from api.test_functions_api import (
    CODE,
    EDGE,
    FN,
    INV,
    ROUTES,
    SECRET,
    FnNode,
    add_domain,
    code,
    edge_token,
    fn_nodes,
    make_active,
    ok,
    put,
    version,
)
from conftest import Api
from edgeplane.protocol.config import NodeSpec
from edgeplane.services import jobs
from edgeplane.settings import Settings
from edgeplane.snapshot.functions import load_functions, node_functions, runs_functions
from edgeplane.store.actor import LOCAL
from edgeplane.store.tables import EdgeNodeRow


def status(api: Api, n: int, name: str = "hello") -> str:
    return str(version(api, name, n)["status"])


def chosen(api: Api, node: FnNode) -> dict[str, int]:
    """``<project>/<name> -> version`` the node's snapshot would run (``node_functions`` on the
    loaded state, as the snapshot will call it)."""
    with api.db.read(LOCAL, "default") as tx:
        row = tx.session.get(EdgeNodeRow, node.id)
        assert row is not None
        state = load_functions(tx.session, tx.secrets)
        specs = node_functions(
            NodeSpec(id=row.id, name=row.name, region=row.region),
            state,
            capable=runs_functions(row.protocol, row.functions),
        )
    return {s.key: s.version for s in specs}


def test_canary_then_rolling_then_active(api: Api) -> None:
    add_domain(api)
    nodes = fn_nodes(api, ("eu-1", "eu-central"), ("eu-2", "eu-central"), ("us-1", "us-east"))
    eu1, eu2, us1 = nodes["eu-1"], nodes["eu-2"], nodes["us-1"]
    v1 = put(api, "hello", routes=ROUTES, secrets={"TOKEN": SECRET})["version"]
    assert v1["canary_node"] == eu1.id
    # Only the canary runs it; the others have no version of it yet.
    assert chosen(api, eu1) == {"default/hello": 1}
    assert chosen(api, eu2) == {} and chosen(api, us1) == {}
    # A node that is not the canary reporting it does not move it on; loading neither.
    us1.report(v1, "active")
    eu1.report(v1, "loading")
    assert status(api, 1) == "canary"
    eu1.report(v1, "active")
    got = version(api, "hello", 1)
    assert got["status"] == "rolling", got
    progress = {p["region"]: p for p in got["progress"]}
    assert progress["eu-central"] == {
        "region": "eu-central", "nodes": 2, "serving": 1, "failed": 0, "state": "rolling",
    }  # fmt: skip
    assert progress["us-east"]["serving"] == 1 and progress["us-east"]["state"] == "active"
    assert chosen(api, eu2) == {"default/hello": 1}
    eu2.report(v1, "active")
    got = version(api, "hello", 1)
    assert got["status"] == "active" and got["activated_at"] is not None, got
    assert all(p["state"] == "done" for p in got["progress"])
    fn = ok(api.get(f"{FN}/hello"))
    assert fn["active_version"] == 1 and fn["current"]["id"] == v1["id"]
    # The reports are kept on the node; the secret reaches the runtime's spec only.
    with api.db.read(LOCAL, "default") as tx:
        row = tx.session.get(EdgeNodeRow, eu1.id)
        assert row is not None and row.function_reports["default/hello"]["state"] == "active"
        (spec,) = node_functions(
            NodeSpec(id=row.id, name=row.name, region=row.region),
            load_functions(tx.session, tx.secrets),
            capable=True,
        )
    assert spec.secrets == {"TOKEN": SECRET} and SECRET not in repr(spec)
    assert spec.hosts == ("shop.test",) and spec.routes[0].host == "*"
    assert spec.routes[0].path == "/api/*" and spec.routes[0].methods == ("GET", "POST")
    assert (spec.site, spec.name, spec.id, spec.code) == ("default", "hello", v1["id"], CODE)


def test_a_failed_canary_keeps_the_active_version(api: Api) -> None:
    add_domain(api)
    nodes = fn_nodes(api, ("eu-1", "eu-central"), ("us-1", "us-east"))
    v1 = put(api, "hello", routes=ROUTES)["version"]
    make_active(nodes, v1)
    v2 = put(api, "hello", code=code("v2"))["version"]
    assert chosen(api, nodes["eu-1"]) == {"default/hello": 2}
    assert chosen(api, nodes["us-1"]) == {"default/hello": 1}
    nodes["eu-1"].report(v2, "failed", "GET /health answered 500")
    got = version(api, "hello", 2)
    assert got["status"] == "failed" and got["finished_at"] is not None
    assert got["error"] == "canary eu-1: GET /health answered 500"
    assert status(api, 1) == "active"
    fn = ok(api.get(f"{FN}/hello"))
    assert fn["current"]["version"] == 1 and fn["active_version"] == 1
    # The failed version is named nowhere: every node runs the active one again.
    assert chosen(api, nodes["eu-1"]) == {"default/hello": 1}


def test_a_node_failing_while_rolling_fails_the_version(api: Api) -> None:
    add_domain(api)
    nodes = fn_nodes(api, ("eu-1", "eu-central"), ("us-1", "us-east"))
    v1 = put(api, "hello", routes=ROUTES)["version"]
    make_active(nodes, v1)
    v2 = put(api, "hello", code=code("v2"))["version"]
    nodes["eu-1"].report(v2, "active")
    assert status(api, 2) == "rolling"
    nodes["us-1"].report(v2, "failed", "out of memory")
    got = version(api, "hello", 2)
    assert got["status"] == "failed" and got["error"] == "us-1: out of memory"
    assert status(api, 1) == "active"
    assert {chosen(api, n)["default/hello"] for n in nodes.values()} == {1}


def test_timeouts_and_an_offline_canary_through_the_job(api: Api) -> None:
    add_domain(api)
    nodes = fn_nodes(api, ("eu-1", "eu-central"), ("us-1", "us-east"))
    put(api, "hello", routes=ROUTES)
    assert jobs.advance_function_rollouts(api.db, Settings()) == 0  # within its time
    assert jobs.advance_function_rollouts(api.db, Settings(canary_timeout_s=0.0)) == 1
    got = version(api, "hello", 1)
    assert got["status"] == "failed" and "did not activate the version within" in got["error"]

    v2 = put(api, "hello", code=code("v2"))["version"]
    nodes["eu-1"].report(v2, "active")
    assert status(api, 2) == "rolling"
    assert jobs.advance_function_rollouts(api.db, Settings(rollout_timeout_s=0.0)) == 1
    got = version(api, "hello", 2)
    assert got["status"] == "failed" and got["error"].endswith("by: us-1")

    put(api, "hello", code=code("v3"))
    nodes["eu-1"].beat(healthy=False)  # the canary leaves the live set
    jobs.advance_function_rollouts(api.db, Settings())
    got = version(api, "hello", 3)
    assert got["status"] == "failed" and "went offline" in got["error"], got
    assert jobs.advance_function_rollouts(api.db, Settings()) == 0  # nothing in progress


def test_nodes_that_cannot_run_functions_take_no_part(api: Api) -> None:
    add_domain(api)
    token = edge_token(api)
    # Alphabetically first, but without the runtime, or speaking protocol 2.
    plain = FnNode(api, token, "a-plain", "eu-central", functions=False)
    old = FnNode(api, token, "b-old", "eu-central", protocol=2)
    capable = FnNode(api, token, "c-fn", "eu-central")
    far = FnNode(api, token, "d-plain", "us-east", functions=False)
    nodes = ok(api.get(f"{EDGE}/nodes"))
    flags = {n["name"]: n.get("functions") for n in nodes}
    assert flags == {"a-plain": False, "b-old": False, "c-fn": True, "d-plain": False}
    # A node of protocol 2 is answered without the field it does not know.
    r = api.client.post(
        f"{EDGE}/nodes", json={"name": "b-old", "region": "eu-central", "protocol": 2},
        headers={"Authorization": f"Bearer {token}", "Edgeplane-Protocol": "2"},
    )  # fmt: skip
    assert "functions" not in ok(r)
    v1 = put(api, "hello", routes=ROUTES)["version"]
    assert v1["canary_node"] == capable.id
    assert v1["regions"] == ["eu-central", "us-east"]
    capable.report(v1, "active")
    got = version(api, "hello", 1)
    # Only the capable node was waited for; us-east has none.
    assert got["status"] == "active", got
    progress = {p["region"]: p for p in got["progress"]}
    assert progress["eu-central"]["nodes"] == 1 and progress["us-east"]["state"] == "offline"
    assert chosen(api, capable) == {"default/hello": 1}
    for node in (plain, old, far):
        assert chosen(api, node) == {}
    # A protocol-2 node saying it can is not taken at its word either.
    assert not runs_functions(2, True) and runs_functions(3, True)


def test_the_regions_are_those_of_the_projects_edge_deployment(api: Api) -> None:
    add_domain(api)
    nodes = fn_nodes(api, ("eu-1", "eu-central"), ("us-1", "us-east"))
    bundle = upload(api, tar_of(bundle_files("v1")))["bundle"]["id"]
    body: dict[str, Any] = {"bundle": bundle, "regions": ["us-east"]}
    ok(api.post(f"{INV}/edge/deploy", json=body), 202)
    v1 = put(api, "hello", routes=ROUTES)["version"]
    assert v1["regions"] == ["us-east"] and v1["canary_node"] == nodes["us-1"].id
    nodes["us-1"].report(v1, "active")
    assert status(api, 1) == "active"
    # Active, it runs on every capable node (the site is served by all of them).
    assert chosen(api, nodes["eu-1"]) == {"default/hello": 1}


def test_another_projects_function_is_its_own(api: Api) -> None:
    add_domain(api)
    ok(api.post("/api/v1/projects", json={"id": "shop"}), 201)
    add_domain(api, "other.test", project="shop")
    nodes = fn_nodes(api, ("eu-1", "eu-central"))
    mine = put(api, "hello", routes=ROUTES)["version"]
    r = api.call(
        "PUT", f"{FN}/hello", params={"project": "shop"}, json={"code": CODE, "routes": ROUTES}
    )
    theirs = ok(r, 202)["version"]  # the same route in another project is no overlap
    nodes["eu-1"].report(theirs, "active", project="shop")
    assert status(api, 1) == "canary"
    got = ok(api.get(f"{FN}/hello/versions/1", params={"project": "shop"}))
    assert got["status"] == "active"
    nodes["eu-1"].report(mine, "active")
    assert status(api, 1) == "active"
    assert chosen(api, nodes["eu-1"]) == {"default/hello": 1, "shop/hello": 1}
