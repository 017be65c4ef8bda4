"""Edge functions in nginx's configuration (``render_functions``) and in the snapshot's
hashes: the route map's order and escaping, what a node without functions renders, and which
changes of a function change the http hash (and so reload nginx)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgeplane.node.agent import leftovers
from edgeplane.node.nginx.local import LocalHealth, NodeLocal
from edgeplane.node.nginx.render import render
from edgeplane.node.nginx.render_functions import function_maps, routes_of
from edgeplane.protocol.config import (
    BackendSpec,
    EdgeConfig,
    EdgeManifest,
    FunctionRouteSpec,
    FunctionSpec,
    NodeSpec,
    PoolSpec,
    SiteSpec,
)
from edgeplane.protocol.delta import ManifestDelta

LOCAL = NodeLocal(prefix=Path("/srv/edge/nginx"), node_name="e1", http_port=8080)
NODE = NodeSpec(id="n1", name="e1", region="eu")
POOL = PoolSpec(
    id="origin.p", algorithm="round_robin", backends=(BackendSpec(key="o", host="h", port=80),)
)


def fn(name: str, *routes: FunctionRouteSpec, site: str = "p", **kw: object) -> FunctionSpec:
    body: dict[str, object] = {
        "site": site,
        "name": name,
        "version": 1,
        "id": f"fnv-{name}",
        "sha256": "0" * 64,
        "code": "export default {}",
        "routes": routes,
        **kw,
    }
    return FunctionSpec.model_validate(body)


def r(host: str, path: str, *methods: str) -> FunctionRouteSpec:
    return FunctionRouteSpec(host=host, path=path, methods=methods)


def unquote_nginx(token: str) -> str:
    """What nginx reads of a double-quoted token (``ngx_conf_read_token``)."""
    assert token[0] == token[-1] == '"'
    out, i, body = [], 0, token[1:-1]
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body) and body[i + 1] in "\"'\\":
            out.append(body[i + 1])
            i += 2
            continue
        out.append(body[i])
        i += 1
    return "".join(out)


def map_entries(text: str) -> list[tuple[str, str]]:
    """The regex entries of the ``$fn_key`` map, as nginx reads them (regex, function)."""
    head = text.index("$fn_key {")
    body = text[head : text.index("}\n", head)]
    out = []
    for line in body.splitlines()[2:]:
        key, _, value = line.strip().rstrip(";").rpartition(" ")
        regex = unquote_nginx(key)
        assert regex.startswith("~")
        out.append((regex[1:], value.strip('"')))
    return out


def route_of(entries: list[tuple[str, str]], subject: str) -> str | None:
    """The function nginx picks for ``subject`` ("site|METHOD|host/uri"): the first match."""
    # PCRE without UTF: bytes (the regexes spell non-ASCII bytes as \xHH)
    return next((v for rx, v in entries if re.search(rx.encode(), subject.encode())), None)


FUNCS = [
    fn("all", r("*", "/*")),
    fn("exact", r("shop.test", "/exact")),
    fn("api", r("shop.test", "/api/*")),
    fn("v2", r("shop.test", "/api/v2/*", "POST")),
    fn("anyapi", r("*", "/api/*")),
    fn("meta", r("shop.test", '/a.b+(c)[d]$x{1}|y^\\z"q/*')),
    fn("cafe", r("*", "/caf%C3%A9")),
    fn("other", r("*", "/*"), site="q"),
]


def test_most_specific_route_first() -> None:
    order = [(x.key, x.prefix, x.path) for x in routes_of(FUNCS)]
    # exact paths first; of the same length, a given host before *
    assert order[:2] == [("p/exact", False, b"/exact"), ("p/cafe", False, "/café".encode())]
    keys = [k for k, _, _ in order]
    assert keys.index("p/v2") < keys.index("p/api") < keys.index("p/anyapi") < keys.index("p/all")
    assert keys[-2:] == ["p/all", "q/other"]  # the shortest prefixes last
    entries = map_entries(function_maps(FUNCS))
    cases = {
        "p|GET|shop.test/exact": "p/exact",
        "p|GET|shop.test/exact/": "p/all",
        "p|POST|shop.test/api/v2/x": "p/v2",
        "p|GET|shop.test/api/v2/x": "p/api",
        "p|GET|www.shop.test/api/x": "p/anyapi",
        "p|GET|shop.test/x": "p/all",
        "q|GET|q.test/api/x": "q/other",
        "pp|GET|shop.test/exact": None,  # the site is anchored
        "p|GET|www.shop.test/café": "p/cafe",
    }
    for subject, want in cases.items():
        assert route_of(entries, subject) == want, subject


def test_paths_and_hosts_are_taken_literally() -> None:
    entries = map_entries(function_maps(FUNCS))
    meta = '/a.b+(c)[d]$x{1}|y^\\z"q/'
    assert route_of(entries, f"p|GET|shop.test{meta}deeper") == "p/meta"
    assert route_of(entries, f"p|GET|shop.test{meta.replace('.', 'X')}") == "p/all"
    assert route_of(entries, f"p|GET|shopXtest{meta}") == "p/all"  # the host's dot too
    # one line per route, nothing nginx would split or interpolate outside quotes
    text = function_maps(FUNCS)
    for line in text.splitlines():
        assert "\n" not in line


def test_a_node_without_functions_renders_none_of_them() -> None:
    site = SiteSpec(id="p", domains=("shop.test",), pool="origin.p")
    plain = EdgeConfig(revision=1, node=NODE, sites=(site,), pools=(POOL,))
    files = render(plain, LOCAL, LocalHealth())
    assert not any(
        "fn_" in text.decode() or "edge_scheme" in text.decode() for text in files.values()
    )
    with_fn = plain.model_copy(update={"functions": (FUNCS[0],)})
    files = render(with_fn, LOCAL, LocalHealth())
    assert "location @fn {" in files["locations.conf"].decode()
    assert "$edge_loc_static" in files["sites.map"].decode()
    # a function of a site not served here renders nothing
    stray = plain.model_copy(update={"functions": (FUNCS[-1],)})
    assert render(stray, LOCAL, LocalHealth()) == render(plain, LOCAL, LocalHealth())


def test_only_routes_change_the_http_hash() -> None:
    site = SiteSpec(id="p", domains=("shop.test",), pool="origin.p")
    base = EdgeConfig(revision=1, node=NODE, sites=(site,), pools=(POOL,))
    assert "functions" not in base.model_dump(mode="json")
    one = base.model_copy(update={"functions": (fn("a", r("*", "/a/*")),)})
    assert one.http_hash() != base.http_hash() and one.content_hash() != base.content_hash()
    for change in (
        {"code": "export default {x: 1}"},
        {"env": {"A": "1"}},
        {"secrets": {"K": "v"}},
        {"timeout_ms": 100},
        {"memory_mb": 64},
        {"version": 2, "id": "fnv-2", "sha256": "1" * 64},
        {"check_path": "/a/health"},
    ):
        other = base.model_copy(
            update={"functions": (fn("a", r("*", "/a/*"), **change),)}  # type: ignore[arg-type]
        )
        assert other.http_hash() == one.http_hash(), change
        assert other.content_hash() != one.content_hash(), change
    for routes in ((r("*", "/b/*"),), (r("*", "/a/*", "GET"),), (r("shop.test", "/a/*"),)):
        other = base.model_copy(update={"functions": (fn("a", *routes),)})
        assert other.http_hash() != one.http_hash(), routes


def test_secrets_are_not_in_reprs() -> None:
    f = fn("a", r("*", "/a"), secrets={"K": "hunter2"}, env={"E": "visible"})
    config = EdgeConfig(revision=1, node=NODE, functions=(f,))
    assert "hunter2" not in repr(f) and "hunter2" not in repr(config)
    assert "hunter2" in config.model_dump_json()  # it travels to the node


def test_a_delta_carries_the_functions_whole() -> None:
    def manifest(revision: int, *functions: FunctionSpec) -> EdgeManifest:
        return EdgeManifest(
            revision=revision,
            hash=f"h{revision}",
            http_hash="x",
            node=NODE,
            functions=functions,
        )

    a = manifest(1)
    b = manifest(2, fn("a", r("*", "/a")))
    c = manifest(3)
    for old, new in ((a, b), (b, c), (b, b.model_copy(update={"revision": 4, "hash": "h4"}))):
        delta = ManifestDelta.between(old, new)
        again = ManifestDelta.model_validate_json(delta.model_dump_json())
        assert again.apply(old) == new
    assert "functions" not in ManifestDelta.between(a, c).model_dump(mode="json")


@pytest.mark.parametrize(
    ("cmd", "proof"),
    [
        (["node", "--no-node-snapshot", "/x/runtime.mjs", "--listen", "/p/fn.sock"], True),
        (["node", "/x/runtime.mjs", "--listen", "/other/fn.sock"], False),
        (["node", "/x/other.mjs", "--listen", "/p/fn.sock"], False),
    ],
)
def test_a_leftover_runtime_is_known_by_its_socket(cmd: list[str], proof: bool) -> None:
    assert (leftovers._runtime_proof(cmd, Path("/p")) is not None) == proof


def test_a_waf_sites_functions_are_inspected_and_fetches_keep_the_request_id() -> None:
    from edgeplane.node.nginx.local import WafEngine
    from edgeplane.protocol.config import WafSpec

    local = NodeLocal(
        prefix=Path("/srv/edge/nginx"),
        node_name="e1",
        http_port=8080,
        waf=WafEngine(modules=("/m/modsecurity.so",), crs_rules="/crs"),
    )
    sites = (
        SiteSpec(id="p", domains=("shop.test",), pool="origin.p", waf=WafSpec(mode="block")),
        SiteSpec(id="q", domains=("q.test",), pool="origin.p"),
    )
    config = EdgeConfig(
        revision=1, node=NODE, sites=sites, pools=(POOL,), functions=(FUNCS[0], FUNCS[-1])
    )
    files = {k: v.decode() for k, v in render(config, local, LocalHealth()).items()}
    locations = files["locations.conf"]
    waf_fn = locations[locations.index("location @fn_wb1t5 {") :]
    waf_fn = waf_fn[: waf_fn.index("\n}\n")]
    assert "modsecurity on;" in waf_fn and "error_page 400 403 @waf_blocked_wb1t5;" in waf_fn
    assert "location @waf_blocked_wb1t5 {" in locations
    assert '"p" @fn_wb1t5;' in files["sites.map"]  # the WAF site's functions go there
    plain_fn = locations[locations.index("location @fn {") :]
    assert "modsecurity" not in plain_fn[: plain_fn.index("\n}\n")]
    # on the fetch socket, the request id is the function's request's
    assert "modsecurity_transaction_id $fn_request_id;" in files["base.conf"]
    assert "$request_id" not in files["locations.conf"]
