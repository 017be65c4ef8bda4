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
  ``X-Edgeplane-Function-Outcome`` is logged (``fo``) and hidden from clients.
- the internal fetch server (``fn-fetch.sock``): where a function's ``fetch`` of its own
  project's hosts goes. It serves the static chain only (bundle, cache, origin; never a
  function again), with the client's address from ``X-Real-IP``, its scheme toward the
  origin from ``X-Forwarded-Proto`` (``$edge_scheme``) and no access log line (the
  function's request has one).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from edgeplane.node.nginx.local import NodeLocal
from edgeplane.node.nginx.syntax import block, lit
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


def function_maps(functions: list[FunctionSpec]) -> str:
    """``$fn_key``, ``$edge_loc`` (over ``$edge_loc_static``) and the logged outcome."""
    lines = ['default "";']
    for route in routes_of(functions):
        lines.append(f'"~{_quoted(route.regex())[1:]} {lit(route.key)};')
    text = "# edge functions: the function a request's route names (most specific first)\n"
    text += block('map "$site_id|$request_method|$host$uri" $fn_key', lines)
    text += block("map $fn_key $edge_loc", [f"default {FN_LOC};", f'"" {STATIC_LOC};'])
    # the runtime's outcome; a function's request it did not answer: unavailable
    text += block("map $fn_key $fn_gone", ["default unavailable;", '"" "";'])
    text += block(
        f"map $upstream_http_{OUTCOME_HEADER.lower().replace('-', '_')} $fn_outcome",
        [f"default $upstream_http_{OUTCOME_HEADER.lower().replace('-', '_')};", '"" $fn_gone;'],
    )
    return text


def scheme_map(local: NodeLocal) -> str:
    """``$edge_scheme``: the client's scheme; on the fetch socket, the one the runtime says
    (the function's request's)."""
    return block(
        "map $server_addr $edge_scheme",
        ["default $scheme;", f"{lit('unix:' + fetch_socket(local))} $http_x_forwarded_proto;"],
    )


def upstream(local: NodeLocal) -> str:
    return "# the node's edge function runtime\n" + block(
        f"upstream {UPSTREAM}",
        [f"server unix:{listen_socket(local)} max_fails=0;", "keepalive 64;"],
    )


def function_locations() -> str:
    """``@fn`` and ``@fn_unavailable``."""
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
    return block(f"location {FN_LOC}", fn) + block(f"location {UNAVAILABLE_LOC}", gone)


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
