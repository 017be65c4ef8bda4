"""Edge functions in a real nginx (``NginxEngine``, workers as www-data when root) in front of
the real function runtime, from hand-built snapshots: which function a route reaches (most
specific first, regex metacharacters and percent-encoded paths taken literally), methods,
the WAF in front of a WAF site's functions, and a runtime that is down (503, logged
``unavailable``).

Skipped where the runtime is missing, except on CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from nginx_edge import Edge, backend, make_base, pool, wait_for
from origins import Origin, start_origin
from processes import free_port

from edgeplane.node.agent.functions import FunctionHost
from edgeplane.node.functions.find import find_runtime
from edgeplane.node.nginx.engine import NginxEngine
from edgeplane.node.nginx.local import NodeLocal, find_js_module, find_waf_engine
from edgeplane.protocol.config import (
    EdgeConfig,
    FunctionRouteSpec,
    FunctionSpec,
    NodeSpec,
    SiteSpec,
    WafSpec,
)

pytestmark = [pytest.mark.integration]

RUNTIME = find_runtime()
if RUNTIME is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError("the edge function runtime is missing on CI (scripts/bootstrap)")
    pytest.skip("needs Node.js and the runtime's npm packages", allow_module_level=True)

CODE = """export default {
  async fetch(request, env) {
    console.log("hit " + new URL(request.url).pathname);
    return new Response(env.NAME + " " + new URL(request.url).pathname);
  },
};
"""
META = "/a.b+(c)[d]$x{1}|y^"  # every regex metacharacter nginx's config lets through


def fn(
    name: str, *routes: FunctionRouteSpec, site: str = "fn", check_path: str | None = None
) -> FunctionSpec:
    return FunctionSpec(
        check_path=check_path,
        site=site,
        name=name,
        version=1,
        id=f"fnv-{name}",
        sha256="0" * 64,
        code=CODE,
        env={"NAME": name},
        routes=routes,
        hosts=("fn.test", "www.fn.test") if site == "fn" else ("waf.test",),
    )


def r(host: str, path: str, *methods: str) -> FunctionRouteSpec:
    return FunctionRouteSpec(host=host, path=path, methods=methods)


FUNCTIONS = (
    fn("catchall", r("*", "/*")),
    fn("exact", r("fn.test", "/exact"), check_path="/exact"),
    fn("meta", r("fn.test", META + "/*")),
    fn("encoded", r("*", "/caf%C3%A9")),
    fn("quoted", r("fn.test", '/q"\\x/*')),  # a quote and a backslash
    fn("postv2", r("fn.test", "/api/v2/*", "POST", "PUT")),
    fn("api", r("fn.test", "/api/*")),
    fn("www", r("www.fn.test", "/api/*")),
    fn("guarded", r("*", "/*"), site="waf"),
)


def config(origin: Origin, functions: tuple[FunctionSpec, ...] = FUNCTIONS) -> EdgeConfig:
    p = pool("origin.fn", backend(origin))
    return EdgeConfig(
        revision=1,
        node=NodeSpec(id="n1", name="edge-fn", region="local"),
        sites=(
            SiteSpec(id="fn", domains=("fn.test", "www.fn.test"), pool=p.id),
            SiteSpec(id="plain", domains=("plain.test",), pool=p.id),
            SiteSpec(id="waf", domains=("waf.test",), pool=p.id, waf=WafSpec(mode="block")),
        ),
        pools=(p,),
        functions=functions,
    )


@dataclass
class World:
    edge: Edge
    host: FunctionHost
    origin: Origin


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    if find_waf_engine() is None:
        pytest.skip("ModSecurity / CRS not installed")
    origin = start_origin("fn-origin")
    base = make_base()
    local = NodeLocal(
        prefix=base / "nginx",
        node_name="edge-fn",
        http_port=free_port(),
        waf=find_waf_engine(),
        js_module=find_js_module(),
    )
    edge = Edge(NginxEngine(local), local, base)
    host = FunctionHost(RUNTIME, local.prefix, base / "state", socket_group=local.worker_group)
    try:
        import asyncio

        cfg = config(origin)
        edge.apply(cfg)
        asyncio.run(host.apply(cfg, edge.http))
        assert {k: v.state for k, v in host.reports.items()} == {
            f.key: "active" for f in FUNCTIONS
        }, host.reports
        # the config holds the secrets: 0600 in a 0700 directory
        assert (base / "state" / "functions").stat().st_mode & 0o777 == 0o700
        assert (base / "state" / "functions" / "config.json").stat().st_mode & 0o777 == 0o600
        yield World(edge, host, origin)
    finally:
        host.stop()
        edge.close()
        origin.terminate()


def answer(w: World, host: str, path: str, method: str = "GET") -> str:
    c = w.edge.client()
    resp = c.request(method, path, headers={"Host": host})
    if "x-edge-function" in resp.headers:
        return resp.text
    return f"origin {resp.status_code}" if resp.headers.get("x-origin") else resp.text


def test_the_most_specific_route_answers(world: World) -> None:
    w = world
    assert answer(w, "fn.test", "/exact") == "exact /exact"
    assert answer(w, "fn.test", "/exact/more") == "catchall /exact/more"
    assert answer(w, "fn.test", "/api/x") == "api /api/x"
    assert answer(w, "www.fn.test", "/api/x") == "www /api/x"  # a host before *
    assert answer(w, "fn.test", "/api/v2/x") == "api /api/v2/x"  # GET: not postv2's method
    assert answer(w, "fn.test", "/api/v2/x", "POST") == "postv2 /api/v2/x"
    assert answer(w, "www.fn.test", "/api/v2/x", "POST") == "www /api/v2/x"
    assert answer(w, "plain.test", "/api/x") == "origin 200"  # another site: no function


def test_paths_are_literal(world: World) -> None:
    w = world
    assert answer(w, "fn.test", META + "/z").startswith("meta ")
    assert answer(w, "fn.test", META.replace(".", "X") + "/z").startswith("catchall ")
    assert answer(w, "fn.test", META.replace("+", "") + "/z").startswith("catchall ")
    assert answer(w, "www.fn.test", "/café").startswith("encoded ")
    assert answer(w, "www.fn.test", "/cafe").startswith("catchall ")
    assert answer(w, "fn.test", "/q%22%5Cx/y").startswith("quoted ")
    assert answer(w, "fn.test", "/q%22x/y").startswith("catchall ")


def test_the_waf_inspects_before_a_function(world: World) -> None:
    w = world
    assert answer(w, "waf.test", "/hello") == "guarded /hello"
    c = w.edge.client()
    refused = c.get("/search?q=1%27%20or%20%271%27%3D%271", headers={"Host": "waf.test"})
    assert refused.status_code == 403, refused.text
    assert "x-edge-function" not in refused.headers
    assert "web application firewall" in refused.text
    # logged as the function's, outcome blocked: no invocation, not a runtime unavailable
    log = w.edge.local.prefix / "logs" / "access.json"

    def outcome() -> str | None:
        lines = [json.loads(x) for x in log.read_text().splitlines()]
        mine = [x for x in lines if str(x.get("uri")).startswith("/search?") and x.get("fn")]
        return mine[-1].get("fo") if mine else None

    assert wait_for(lambda: outcome() is not None, 5)
    assert outcome() == "blocked"


def test_a_check_path_that_fails_fails_the_function(world: World) -> None:
    import asyncio

    w = world
    bad = fn("broken", r("fn.test", "/broken/*"), check_path="/broken/health")
    code = CODE.replace("return new Response(", "return new Response(null, {status: 500}) || (")
    bad = bad.model_copy(update={"code": code, "sha256": "1" * 64, "id": "fnv-broken"})
    cfg = config(w.origin, (*FUNCTIONS, bad))
    try:
        w.edge.apply(cfg)
        assert asyncio.run(w.host.apply(cfg, w.edge.http))  # a report changed
        report = w.host.reports["fn/broken"]
        assert report.state == "failed" and report.error == "/broken/health answered 500"
        assert w.host.reports["fn/exact"].state == "active"  # its check answered 200
    finally:
        w.edge.apply(config(w.origin))
        asyncio.run(w.host.apply(config(w.origin), w.edge.http))
    assert "fn/broken" not in w.host.reports


def test_the_console_log_is_rotated_and_reopened(world: World) -> None:
    w = world
    log = w.host.console_log
    assert answer(w, "fn.test", "/exact/before") == "catchall /exact/before"
    assert wait_for(lambda: log.exists() and "/exact/before" in log.read_text(), 5)
    assert w.host.rotate(1)
    assert not w.host.rotate(1 << 30)
    assert "/exact/before" in log.with_name(log.name + ".1").read_text()
    assert answer(w, "fn.test", "/exact/after") == "catchall /exact/after"
    assert wait_for(lambda: log.exists() and "/exact/after" in log.read_text(), 5)
    assert "/exact/before" not in log.read_text()


def test_a_runtime_down_answers_503_logged_unavailable(world: World) -> None:
    w = world
    assert answer(w, "fn.test", "/exact") == "exact /exact"
    w.host.stop()
    try:
        r = w.edge.client().get("/exact", headers={"Host": "fn.test"})
        assert r.status_code == 503 and r.text == "function unavailable\n", r.text
        assert "x-edgeplane-function-outcome" not in r.headers
        assert answer(w, "plain.test", "/x") == "origin 200"
        log = w.edge.local.prefix / "logs" / "access.json"

        def logged() -> bool:
            lines = [json.loads(x) for x in log.read_text().splitlines()]
            return any(x.get("fn") == "fn/exact" and x.get("fo") == "unavailable" for x in lines)

        assert wait_for(logged, 5)
    finally:
        assert w.host.process is not None
        w.host.process.start()  # loads the config it was last given (its --config)
    assert wait_for(lambda: answer(w, "fn.test", "/exact") == "exact /exact", 10)
