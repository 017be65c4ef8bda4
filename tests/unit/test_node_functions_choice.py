"""Which function version each node runs (``snapshot.functions.node_functions``, pure): the
canary on its canary node, a rolling version in its regions, else the active one, and nothing
for nodes that cannot run functions."""

from __future__ import annotations

from typing import Any

from edgeplane.protocol.config import FunctionRouteSpec, FunctionSpec, NodeSpec
from edgeplane.snapshot.functions import FunctionState, node_functions, runs_functions

EU1 = NodeSpec(id="n-eu1", name="eu-1", region="eu-central")
EU2 = NodeSpec(id="n-eu2", name="eu-2", region="eu-central")
US1 = NodeSpec(id="n-us1", name="us-1", region="us-east")
REGIONS = ("eu-central", "us-east")


def state(version: int, status: str, **kw: Any) -> FunctionState:
    fields: dict[str, Any] = {
        "project": "p1", "name": "hello", "id": f"fnv-{version}", "version": version,
        "sha256": f"{version:064x}", "status": status, "regions": REGIONS,
        "code": f"code {version}",
    }  # fmt: skip
    return FunctionState(**{**fields, **kw})


def versions_on(node: NodeSpec, states: list[FunctionState], capable: bool = True) -> list[Any]:
    return [(s.key, s.version) for s in node_functions(node, states, capable=capable)]


def test_active_everywhere_canary_on_its_node_rolling_in_its_regions() -> None:
    active = state(1, "active", regions=("us-east",))
    canary = state(2, "canary", canary_node=EU1.id)
    assert versions_on(EU1, [active, canary]) == [("p1/hello", 2)]
    assert versions_on(EU2, [active, canary]) == [("p1/hello", 1)]
    assert versions_on(US1, [active, canary]) == [("p1/hello", 1)]
    rolling = state(2, "rolling", regions=("eu-central",))
    assert versions_on(EU2, [active, rolling]) == [("p1/hello", 2)]
    assert versions_on(US1, [active, rolling]) == [("p1/hello", 1)]
    # A first version: only its canary runs it.
    assert versions_on(EU2, [canary]) == [] and versions_on(EU1, [canary]) == [("p1/hello", 2)]
    assert versions_on(EU1, []) == []


def test_nothing_for_nodes_that_cannot_run_functions() -> None:
    assert versions_on(EU1, [state(1, "active")], capable=False) == []
    assert runs_functions(3, True) and runs_functions(4, True)
    assert not runs_functions(3, False) and not runs_functions(2, True)
    assert not runs_functions(None, True) and not runs_functions(3, None)


def test_specs_sorted_by_project_and_name_with_everything_the_runtime_needs() -> None:
    route = FunctionRouteSpec(host="*", path="/api/*", methods=("GET",))
    states = [
        state(1, "active", project="p2", name="a"),
        state(3, "active", name="zeta", env=(("A", "1"),), secrets=(("K", "secret"),),
              timeout_ms=50, memory_mb=16, routes=(route,), hosts=("a.test",),
              check_path="/health"),
        state(1, "active", name="alpha"),
    ]  # fmt: skip
    specs = node_functions(US1, states, capable=True)
    assert [s.key for s in specs] == ["p1/alpha", "p1/zeta", "p2/a"]
    zeta = specs[1]
    assert zeta == FunctionSpec(
        site="p1", name="zeta", version=3, id="fnv-3", sha256=f"{3:064x}", code="code 3",
        env={"A": "1"}, secrets={"K": "secret"}, timeout_ms=50, memory_mb=16,
        routes=(route,), hosts=("a.test",), check_path="/health",
    )  # fmt: skip
    assert "secret" not in repr(zeta) and "code 3" not in repr(zeta)
    assert "secret" not in repr(states[1])
