"""Edge functions in nginx (pure): a site's routes sent to the node's function runtime.

Only when the snapshot names functions (``EdgeConfig.functions``); a node without any renders
as before they existed.

- ``$fn_key``: the function (``<project>/<name>``) whose route matches
  ``"$site_id|$request_method|$host$uri"``, most specific route first (exact paths before
  prefixes, longer prefixes first, a specific host before ``*``, given methods before all);
  empty when none does. Routes are regexes anchored on the site, so a site without functions
  pays a failed first character per route.
- the static location chain's head is renamed ``$edge_loc_static`` (``render_bundles``), and
  ``$edge_loc`` is ``@fn`` when a function matched, else ``$edge_loc_static``. Sites with
  functions always jump (``render_jump``).
- ``@fn`` proxies to the runtime's socket (``fn.sock``, upstream ``fn_runtime`` kept alive)
  with ``X-Edgeplane-Function``, the client's address, scheme and the request id; a runtime
  that does not answer gives 503 (outcome ``unavailable``). The runtime's
  ``X-Edgeplane-Function-Outcome`` is logged (``fo``) and hidden from clients; a request the
  edge refused before the runtime saw it (WAF, limits, IP lists) is logged ``blocked``.
- the internal fetch server (``fn-fetch.sock``): where a function's ``fetch`` of its own
  project's hosts goes. It serves the static chain only (bundle, cache, origin; never a
  function again), with the client's address from ``X-Real-IP``, its scheme toward the
  origin from ``X-Forwarded-Proto`` (``$edge_scheme``) and no access log line (the
  function's request has one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from edgeplane.node.nginx.local import NodeLocal
from edgeplane.node.nginx.render_waf import (
    BLOCKED_LOC,
    WafProxy,
    nginx_string,
    profile_name,
    profile_rules,
)
from edgeplane.node.nginx.syntax import block, lit, map_block
from edgeplane.protocol.config import EdgeConfig, FunctionRouteSpec, FunctionSpec, SiteSpec

FN_LOC = "@fn"
UNAVAILABLE_LOC = "@fn_unavailable"
UPSTREAM = "fn_runtime"
LISTEN_SOCKET = "fn.sock"  # the runtime's (node.functions.process.LISTEN_SOCKET)
FETCH_SOCKET = "fn-fetch.sock"
FUNCTION_HEADER = "X-Edgeplane-Function"
OUTCOME_HEADER = "X-Edgeplane-Function-Outcome"
REQUEST_ID_HEADER = "X-Edge-Request-Id"
READ_TIMEOUT_S = 65  # above the largest function time limit (60 s): the runtime answers first
STATIC_LOC = "$edge_loc_static"
# the access log's fields of a node with functions (before "ua")
LOG_FIELDS = '"fn":"$fn_key","fo":"$fn_outcome",'
MAX_SOCKET_PATH = 107


def fetch_socket(local: NodeLocal) -> str:
    return f"{local.prefix}/{FETCH_SOCKET}"


def listen_socket(local: NodeLocal) -> str:
    return f"{local.prefix}/{LISTEN_SOCKET}"


def _quoted(regex: str) -> str:
    """``regex`` as a quoted nginx string: nginx reads ``\\\\`` as ``\\`` and ``\\"`` as
    ``"`` inside quotes (and leaves other backslashes), so both are escaped."""
    return '"' + regex.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _literal(raw: bytes) -> str:
    """A PCRE matching ``raw`` literally: letters and digits as they are, any other ASCII
    character backslash-escaped (literal in PCRE), other bytes as ``\\xHH``."""
    out = []
    for b in raw:
        c = chr(b)
        if b < 0x80 and c.isalnum():
            out.append(c)
        elif 0x20 < b < 0x7F:
            out.append("\\" + c)
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


@dataclass(frozen=True)
class _Route:
    site: str
    key: str
    host: str  # "*": any of the site's domains
    path: bytes  # decoded as nginx's $uri is; a prefix when ``prefix``
    prefix: bool
    methods: tuple[str, ...]

    @property
    def order(self) -> tuple[object, ...]:
        """Most specific first."""
        return (
            self.prefix,
            -len(self.path),
            self.host == "*",
            not self.methods,
            self.site,
            self.host,
            self.path,
            self.methods,
            self.key,
        )

    def regex(self) -> str:
        methods = "(?:" + "|".join(map(_literal, (m.encode() for m in self.methods))) + ")"
        host = "[^/]*" if self.host == "*" else _literal(self.host.encode())
        tail = "" if self.prefix else "$"
        return (
            f"^{_literal(self.site.encode())}\\|"
            f"{methods if self.methods else '[^|]*'}\\|"
            f"{host}{_literal(self.path)}{tail}"
        )


def _route(f: FunctionSpec, r: FunctionRouteSpec) -> _Route:
    prefix = r.path.endswith("*")
    path = r.path[:-1] if prefix else r.path
    return _Route(
        site=f.site,
        key=f.key,
        host=r.host.lower().removesuffix(".") if r.host != "*" else "*",
        path=unquote_to_bytes(path),  # $uri is decoded
        prefix=prefix,
        methods=tuple(sorted({m.upper() for m in r.methods})),
    )


def served_functions(config: EdgeConfig, sites: list[SiteSpec]) -> list[FunctionSpec]:
    """The snapshot's functions of served sites."""
    served = {s.id for s in sites}
    return [f for f in config.functions if f.site in served and f.routes]


def routes_of(functions: list[FunctionSpec]) -> list[_Route]:
    """Every route, most specific first."""
    return sorted((_route(f, r) for f in functions for r in f.routes), key=lambda r: r.order)


def waf_profiles(
    functions: list[FunctionSpec], sites: list[SiteSpec], local: NodeLocal
) -> dict[str, WafProxy]:
    """The WAF profile of each site with functions and the WAF on: its ``@fn`` inspects
    (``@fn_<profile>``), so a function sees only what the WAF let through."""
    with_functions = {f.site for f in functions}
    out: dict[str, WafProxy] = {}
    for site in sites:
        if site.id not in with_functions or site.waf is None:
            continue
        if local.waf is None:
            raise ValueError(
                f"site {site.id}: the WAF is on but this node's nginx has no ModSecurity "
                "module or Core Rule Set (Debian: libnginx-mod-http-modsecurity, modsecurity-crs)"
            )
        out[site.id] = WafProxy(
            0, 0, 0, profile=profile_name(site.waf), rules=profile_rules(site.waf)
        )
    return out


def fn_location(waf: WafProxy | None) -> str:
    return FN_LOC if waf is None else f"{FN_LOC}_{waf.profile}"


def function_maps(functions: list[FunctionSpec], wafs: dict[str, WafProxy] | None = None) -> str:
    """``$fn_key``, ``$edge_loc`` (over ``$edge_loc_static``) and the logged outcome;
    ``wafs``: the WAF profiles of sites with functions (``waf_profiles``)."""
    lines = ['default "";']
    for route in routes_of(functions):
        lines.append(f'"~{_quoted(route.regex())[1:]} {lit(route.key)};')
    text = "# edge functions: the function a request's route names (most specific first)\n"
    text += block('map "$site_id|$request_method|$host$uri" $fn_key', lines)
    if wafs:
        text += block("map $fn_key $edge_loc", ["default $fn_loc;", f'"" {STATIC_LOC};'])
        text += map_block(
            "$site_id",
            "$fn_loc",
            [(site, fn_location(w)) for site, w in sorted(wafs.items())],
            default=FN_LOC,
        )
    else:
        text += block("map $fn_key $edge_loc", [f"default {FN_LOC};", f'"" {STATIC_LOC};'])
    # the runtime's outcome; a function's request it did not answer: ``unavailable`` when nginx
    # tried the runtime (its socket among the upstreams), ``blocked`` when the edge refused the
    # request before (the WAF, a rate limit, an IP list, the client limits): no invocation
    text += block(
        'map "$fn_key $upstream_addr" $fn_gone',
        ['"~^ " "";', f'"~/{LISTEN_SOCKET}" unavailable;', "default blocked;"],
    )
    text += block(
        f"map $upstream_http_{OUTCOME_HEADER.lower().replace('-', '_')} $fn_outcome",
        [f"default $upstream_http_{OUTCOME_HEADER.lower().replace('-', '_')};", '"" $fn_gone;'],
    )
    return text


REQUEST_ID = "$fn_request_id"  # in place of $request_id on a node with functions


def scheme_map(local: NodeLocal) -> str:
    """``$edge_scheme``: the client's scheme; on the fetch socket, the one the runtime says
    (the function's request's). ``$fn_request_id``: the request id; on the fetch socket, the
    function's request's (``X-Edge-Request-Id``), so that what the WAF logs of a function's
    fetch names the request that made it."""
    fetch = lit("unix:" + fetch_socket(local))
    return (
        block(
            "map $server_addr $edge_scheme",
            ["default $scheme;", f"{fetch} $http_x_forwarded_proto;"],
        )
        + block(
            f"map $server_addr {REQUEST_ID}", ["default $request_id;", f"{fetch} $fn_given_id;"]
        )
        + block(
            "map $http_x_edge_request_id $fn_given_id",
            ["default $http_x_edge_request_id;", '"" $request_id;'],
        )
    )


_REQUEST_ID = re.compile(r"\$request_id\b")


def with_request_ids(text: str) -> str:
    """``text`` with ``$request_id`` read as ``$fn_request_id`` (``scheme_map``)."""
    return _REQUEST_ID.sub(REQUEST_ID, text)


def upstream(local: NodeLocal) -> str:
    return "# the node's edge function runtime\n" + block(
        f"upstream {UPSTREAM}",
        [f"server unix:{listen_socket(local)} max_fails=0;", "keepalive 64;"],
    )


def function_locations(wafs: dict[str, WafProxy] | None = None) -> str:
    """``@fn`` and ``@fn_unavailable``; and ``@fn_<profile>`` for each WAF profile of
    ``wafs``: ``@fn`` with the WAF's in-place inspection (``render_waf.WafProxy.lines``),
    its refusals answered by ``@waf_blocked_<profile>`` (``render_waf.blocked_locations``)."""
    fn = [
        "include headers.conf;",
        "set $edge_source function;",
        f"proxy_pass http://{UPSTREAM};",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        f"proxy_set_header {FUNCTION_HEADER} $fn_key;",
        "proxy_set_header Host $host;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        f"proxy_set_header {REQUEST_ID_HEADER} $request_id;",
        "proxy_next_upstream off;",
        "proxy_connect_timeout 2s;",
        f"proxy_read_timeout {READ_TIMEOUT_S}s;",
        f"proxy_send_timeout {READ_TIMEOUT_S}s;",
        "proxy_buffering off;",  # streamed as the function writes it
        "proxy_request_buffering on;",
        "client_max_body_size 1m;",  # the runtime's limit (it buffers the body)
        f"proxy_hide_header {OUTCOME_HEADER};",
        "proxy_hide_header X-Served-By;",  # a fetched response's: this node's is added
        f"error_page 502 504 = {UNAVAILABLE_LOC};",
    ]
    gone = [
        "include headers.conf;",
        "default_type text/plain;",
        'return 503 "function unavailable\\n";',
    ]
    text = block(f"location {FN_LOC}", fn)
    for profile in sorted({w.profile: w for w in (wafs or {}).values()}.values()):
        inspect = [
            "modsecurity on;",
            f"modsecurity_rules {nginx_string(profile.rules)};",
            f"error_page 400 403 {BLOCKED_LOC}_{profile.profile};",
            "add_header X-Request-Id $request_id always;",
        ]
        text += block(f"location {fn_location(profile)}", [*fn, *inspect])
    return text + block(f"location {UNAVAILABLE_LOC}", gone)


def fetch_server(local: NodeLocal) -> str:
    """The internal server of the functions' fetches of their own hosts."""
    lines = [
        f"listen unix:{fetch_socket(local)};",
        "server_name _;",
        "access_log off;",
        "set_real_ip_from unix:;",
        "real_ip_header X-Real-IP;",
        'set $edge_source "";',
        "include headers.conf;",
    ]
    body = "".join(f"    {line}\n" for line in lines)
    body += block(
        "location /",
        ["include headers.conf;", f"error_page 418 = {STATIC_LOC};", "return 418;"],
        indent="    ",
    )
    body += "    include locations.conf;\n"
    return f"server {{\n{body}}}\n"


def check_sockets(local: NodeLocal) -> None:
    """ValueError when a socket's path is too long for a unix socket."""
    for path in (fetch_socket(local), listen_socket(local)):
        if len(path.encode()) > MAX_SOCKET_PATH:
            raise ValueError(f"{path} is too long for a unix socket: use a shorter prefix")
