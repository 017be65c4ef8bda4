"""The package structure holds: the wire's two sides, no import cycle, the certificates' order.

Imports are read from the source (every ``import`` statement, function-local ones included,
``if TYPE_CHECKING:`` blocks excluded), so a cycle cannot hide behind an import inside a
function; and each module is also imported alone in a fresh interpreter state.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from functools import cache
from pathlib import Path

import edgeplane

PACKAGE = Path(edgeplane.__file__).parent

# What an edge node may import: the protocol and pure helpers, never the control plane's side.
NODE_ALLOWED = (
    "edgeplane.node",
    "edgeplane.protocol",
    "edgeplane.bundles",
    "edgeplane.routing.geoip",
    "edgeplane.routing.distance",
    "edgeplane.routing.decide",  # rank_sites: the ranking database agrees with route_request
    "edgeplane.routing.georank",
    "edgeplane.routing.geopoints",
    "edgeplane.routing.mmdb",
    "edgeplane.model.common",
    "edgeplane.model.enums",
    "edgeplane.model.regions",
    "edgeplane.version",
    "edgeplane.collector",  # the cyclic collector paused around a large build: pure
)
CONTROL_PLANE = (
    "edgeplane.store",
    "edgeplane.services",
    "edgeplane.snapshot",
    "edgeplane.api",
    "edgeplane.certificates",
    "edgeplane.sdk",
    "edgeplane.verification",
)
# The certificates package, top to bottom: a module imports only modules listed after it.
CERTIFICATE_LAYERS = (
    (
        "edgeplane.certificates.overview",
        "edgeplane.certificates.renewal",
        "edgeplane.certificates.stapling",
    ),
    ("edgeplane.certificates.acme.orders", "edgeplane.certificates.origin_client"),
    ("edgeplane.certificates.acme.challenges", "edgeplane.certificates.acme.progress"),
    ("edgeplane.certificates.acme.client",),
    ("edgeplane.certificates.internal", "edgeplane.certificates.custom"),
    ("edgeplane.certificates.ocsp_responder",),
    ("edgeplane.certificates.internal_ca",),
    ("edgeplane.certificates.versions",),
    (
        "edgeplane.certificates.schedule",
        "edgeplane.certificates.serials",
        "edgeplane.certificates.staples",
    ),
)


@cache
def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if "migrations" in parts:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _owner(name: str) -> str:
    """The module a dotted import name lands in (``a.b.C`` -> ``a.b``)."""
    known = modules()
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name


def _type_checking_only(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                for sub in ast.walk(inner):
                    if hasattr(sub, "lineno"):
                        lines.add(sub.lineno)
    return lines


@cache
def imports_of(module: str) -> frozenset[str]:
    """The edgeplane modules ``module`` imports anywhere in its source."""
    tree = ast.parse(modules()[module].read_text())
    skip = _type_checking_only(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "edgeplane":
                continue
            for alias in node.names:
                found.add(_owner(f"{node.module}.{alias.name}"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "edgeplane":
                    found.add(_owner(alias.name))
    found.discard(module)
    found.discard("")
    return frozenset(found)


def closure(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        mod = todo.pop()
        for dep in imports_of(mod):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_node_imports_only_the_protocol_and_pure_helpers() -> None:
    node_modules = [m for m in modules() if _within(m, ("edgeplane.node",))]
    assert len(node_modules) > 20
    bad = {}
    for mod in node_modules:
        outside = sorted(
            d for d in closure(mod) if d != "edgeplane" and not _within(d, NODE_ALLOWED)
        )
        if outside:
            bad[mod] = outside
    assert not bad, f"node modules reach beyond the protocol: {bad}"


def test_the_protocol_imports_nothing_of_either_side() -> None:
    for mod in [m for m in modules() if _within(m, ("edgeplane.protocol",))]:
        reached = closure(mod)
        assert not any(_within(d, ("edgeplane.node", *CONTROL_PLANE)) for d in reached), (
            mod,
            sorted(reached),
        )


def test_a_running_node_loads_no_control_plane_module() -> None:
    """What an edge node's process loads, observed: the node's modules (``edgeplane edge``
    execs ``edgeplane.node.agent.main``)."""
    script = textwrap.dedent(
        """
        import sys
        import edgeplane.node.agent.main
        import edgeplane.node.agent.agent, edgeplane.node.nginx.engine
        import edgeplane.node.powerdns.engine
        print("\\n".join(sorted(m for m in sys.modules if m.startswith("edgeplane"))))
        """
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "edgeplane.node.agent.agent" in loaded
    assert [m for m in loaded if _within(m, CONTROL_PLANE)] == []


def cycles(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph)))
    try:
        for v in graph:
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


def test_no_import_cycle_anywhere() -> None:
    assert cycles({m: imports_of(m) for m in modules()}) == []


def test_the_cycle_finder_finds_a_cycle_through_a_chain() -> None:
    """The check above can fail: a planted cycle of three is reported, a chain is not."""
    graph = {
        "a": frozenset({"b"}),
        "b": frozenset({"c"}),
        "c": frozenset({"a", "d"}),
        "d": frozenset(),
        "e": frozenset({"d"}),
    }
    assert cycles(graph) == [["a", "b", "c"]]
    graph["c"] = frozenset({"d"})
    assert cycles(graph) == []


def test_certificates_import_one_way() -> None:
    layers = CERTIFICATE_LAYERS
    listed = {m for layer in layers for m in layer}
    package = {m for m in modules() if _within(m, ("edgeplane.certificates",))}
    assert package - {"edgeplane.certificates", "edgeplane.certificates.acme"} == listed
    for depth, layer in enumerate(layers):
        above = {m for upper in layers[: depth + 1] for m in upper}
        for mod in layer:
            wrong = sorted(imports_of(mod) & (above - {mod}))
            assert not wrong, f"{mod} imports {wrong}, which are above or beside it"


def test_every_module_imports_alone() -> None:
    """Each module imported first, in a fresh state of the package (no help from others)."""
    names = sorted(m for m in modules() if m not in ("edgeplane", "edgeplane.__main__"))
    script = textwrap.dedent(
        """
        import importlib, sys, traceback
        failed = []
        for name in sys.argv[1:]:
            ours = [m for m in sys.modules if m.partition(".")[0] == "edgeplane"]
            for loaded in ours:
                del sys.modules[loaded]
            try:
                importlib.import_module(name)
            except Exception:
                failed.append(name + ": " + traceback.format_exc(limit=3))
        print("\\n".join(failed))
        sys.exit(1 if failed else 0)
        """
    )
    # Two processes, each half the modules: the machine's two cores.
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, *names[half::2]],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for half in (0, 1)
    ]
    for run in runs:
        out, _ = run.communicate(timeout=300)
        assert run.returncode == 0, out
