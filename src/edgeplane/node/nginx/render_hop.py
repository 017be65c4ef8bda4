"""The origin hop: where a caching location's misses go on their way to the origin.

nginx decides how long it keeps a response, and whether it may serve it stale, from the
response's headers as it parses them (``Cache-Control``, ``Expires``, ``X-Accel-Expires``),
before any configuration of ours can look at them: it ignores ``Age``, measures ``Expires``
against its own clock instead of the response's ``Date``, knows nothing of ``CDN-Cache-Control``
or ``Surrogate-Control``, and serves stale with ``proxy_cache_use_stale`` whatever the origin
said (``must-revalidate``). So a caching location proxies to a hop of its own, a ``server`` of
the same nginx on a unix socket (one per proxy profile), which proxies to the origin's pool and
rewrites what the caching location sees of the response (``hop_script``: one njs header filter
per origin response). Cached hits never reach the hop and pay nothing for it; a miss pays one
local proxy hop and the filter. Unsafe methods pass through the hop too, which invalidates what
they change.

The hop takes the pool and its settings (timeouts, tries, TLS toward the origin) from the
request's ``Host`` (the same ``$site_id`` / ``$site_pass`` maps) and its proxy profile, and
computes the cache key as the caching location does (never from a header: see
``hop_servers``); the caching location sends the rule's stale flags (``X-Edge-Stale``), which
the hop does not forward.

A WAF site's proxy profile carries its WAF profile (``render_waf.WafProxy``): its hop is
where its requests are inspected (``render_waf.HopInspection``), cached hits never are.

Without nginx's njs module (``NodeLocal.js_module`` None) there is no hop: caching locations
proxy to the origin themselves, as nginx alone can (see ``docs/security-http.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeplane.node.nginx.local import NodeLocal
from edgeplane.node.nginx.render_cache import CacheProfile
from edgeplane.node.nginx.render_upstreams import ProxyProfile
from edgeplane.node.nginx.render_waf import (
    HOP_INSPECT,
    HOP_REFUSAL_MAP,
    hop_inspection,
    toward_hop,
)
from edgeplane.node.nginx.syntax import block, lit, safe_name, seconds

SCRIPT_FILE = "edge_cache.js"  # in the release directory (nginx's configuration prefix)
KEY_HEADER = "X-Edge-Key"  # no longer sent; stripped toward the origin all the same
STALE_HEADER = "X-Edge-Stale"
CACHE_HEADER = "X-Edge-Cache"  # the caching location's $upstream_cache_status
# What the edge tells the origin of the client (the caching location's, toward the hop; the
# hop passes the same values on).
FORWARDED = (
    ("Host", "$host"),
    ("Connection", '""'),
    ("X-Real-IP", "$remote_addr"),
    ("X-Forwarded-For", "$proxy_add_x_forwarded_for"),
    ("X-Forwarded-Proto", "$scheme"),
)
# The origin's caching headers as the caching location stores and sends them (moved aside by
# the hop, hidden, and added back unchanged).
ASIDE = (("Cache-Control", "X-Edge-CC"), ("Expires", "X-Edge-Expires"))


def hop_name(proxy: ProxyProfile) -> str:
    return safe_name("hop", proxy.name)


HOP_SOCKET_SUFFIX = ".hop"


def hop_socket(local: NodeLocal, proxy: ProxyProfile) -> str:
    """As short as ``status.sock`` (a unix socket's path holds at most 107 bytes, and a node's
    prefix can be deep): 7 hex digits of the hop's name."""
    return f"{local.prefix}/{hop_name(proxy)[4:11]}{HOP_SOCKET_SUFFIX}"


def stale_flags(cache: CacheProfile) -> str:
    """``X-Edge-Stale``: what the rule lets the hop allow (see ``hop_script``)."""
    if not cache.honour:
        return "override"
    flags = []
    if cache.stale_if_error:
        flags.append("sie")
    if cache.stale_while_revalidate:
        flags.append("swr")
    return ",".join(flags)


@dataclass(frozen=True)
class Hop:
    """The origin hop of a render: ``key`` is the ``proxy_cache_key`` expression."""

    key: str

    def lines(self, cache: CacheProfile, proxy: ProxyProfile) -> list[str]:
        """A caching location's lines toward its hop (in place of ``proxy_pass`` and the proxy
        profile's lines); its cache lines follow."""
        # the hop tries every backend: the caching location waits for all of them
        total = proxy.tries * (proxy.connect_ms + proxy.read_ms) / 1000 + 1
        out = [f"proxy_pass http://{hop_name(proxy)};"]
        out += [f"proxy_set_header {name} {value};" for name, value in FORWARDED]
        out += [
            f"proxy_set_header {STALE_HEADER} {lit(stale_flags(cache))};",
            f"proxy_set_header {CACHE_HEADER} $upstream_cache_status;",
            # Only a kept-alive connection the hop closed (an old worker's, at a reload) is
            # tried again, once, on a new connection; never an answer, never a sent POST.
            "proxy_next_upstream error;",
            f"proxy_read_timeout {seconds(total)};",
            f"proxy_send_timeout {seconds(total)};",
            "proxy_force_ranges on;",  # ranges of a stored complete response
            f"proxy_hide_header {UPSTREAM_HEADER};",  # logged (``$edge_upstream``), not sent
            *toward_hop(proxy),  # a WAF site's: its hop inspects (render_waf)
        ]
        for header, aside in ASIDE:
            out.append(f"proxy_hide_header {header};")
            out.append(f"proxy_hide_header {aside};")
            var = "$upstream_http_" + aside.lower().replace("-", "_")
            out.append(f"add_header {header} {var} always;")
        return out


def hop_upstreams(local: NodeLocal, proxies: list[ProxyProfile]) -> str:
    text = ""
    for proxy in proxies:
        text += f"# the origin hop of proxy profile {proxy.name}\n"
        text += block(
            f"upstream {hop_name(proxy)}",
            [f"server unix:{hop_socket(local, proxy)} max_fails=0;", "keepalive 16;"],
        )
    return text


def hop_servers(
    local: NodeLocal, proxies: list[ProxyProfile], key: str, status_socket: str = ""
) -> str:
    """One ``server`` per proxy profile. nginx 1.22 serves a stale response that allows it
    (``stale-if-error``) when its upstream fails to answer, not when it answers an error: so
    when the caching location holds an expired response (``X-Edge-Cache: EXPIRED``), the hop
    answers an origin's 5xx, or its own 502 / 504, by closing the connection (444). The
    caching location then serves the stale response if it allows it, else its own 502.

    The hop computes the cache key itself (``key``: the caching location's
    ``proxy_cache_key`` expression, over the same maps, Host, URI and headers), for the
    invalidations of unsafe methods: a key sent in a header would carry the decoded URI, whose
    CR and LF (``%0d%0a``) would be written into the request toward the hop (header injection,
    request smuggling on its kept-alive connections).

    A WAF profile's hop inspects the requests it proxies (``render_waf.HopInspection``; its
    refusals are answered through ``status_socket``, the internal status listener)."""
    text = ""
    for proxy in proxies:
        waf = hop_inspection(proxy, status_socket)
        lines = [
            "proxy_pass $site_pass;",
            *(waf.lines() if waf else proxy.lines()),
            "proxy_set_header Host $host;",
            'proxy_set_header Connection "";',
            "proxy_set_header X-Real-IP $remote_addr;",
            "proxy_set_header X-Forwarded-For $http_x_forwarded_for;",
            "proxy_set_header X-Forwarded-Proto $http_x_forwarded_proto;",
            f'proxy_set_header {KEY_HEADER} "";',
            f'proxy_set_header {STALE_HEADER} "";',
            f'proxy_set_header {CACHE_HEADER} "";',
            "proxy_pass_header Date;",
            "proxy_pass_header X-Accel-Expires;",
            "proxy_request_buffering off;",
            "js_header_filter edge_cache.stored;",
            f"add_header {UPSTREAM_HEADER} $upstream_addr always;",
        ]
        head = [
            f"listen unix:{hop_socket(local, proxy)};",
            "access_log off;",
            "recursive_error_pages on;",  # the jump to @expired is one already
            # the client's address (ip_hash pools, the origin's X-Real-IP), not the socket's
            "set_real_ip_from unix:;",
            "real_ip_header X-Real-IP;",
            f"set $edge_cache_dir {lit(str(local.prefix / 'cache'))};",
            f"set $edge_hop_key {key};",
            *(waf.head if waf else []),
        ]
        expired = f"if ($http_{CACHE_HEADER.lower().replace('-', '_')} = EXPIRED) "
        expired += "{ error_page 418 = @expired; return 418; }"
        body = "".join(f"    {line}\n" for line in head)
        if waf is None:
            body += block("location /", [expired, *lines], "    ")
        else:  # a jump to where it inspects (render_waf.HopInspection)
            body += block("location /", [expired, *waf.route], "    ")
            body += block(f"location {HOP_INSPECT}", [*lines, *waf.refusal], "    ")
        body += block(
            "location @expired",
            [
                *lines,
                "proxy_intercept_errors on;",
                "error_page 500 502 503 504 = @unanswered;",
                *(waf.expired_refusal if waf else []),
            ],
            "    ",
        )
        body += "    location @unanswered { return 444; }\n"
        body += waf.locations("    ") if waf else ""
        text += f"# the origin hop of proxy profile {proxy.name}\nserver {{\n{body}}}\n"
    if any(hop_inspection(proxy, status_socket) for proxy in proxies):
        text = HOP_REFUSAL_MAP + text
    return text


UPSTREAM_HEADER = "X-Edge-Upstream"  # the backend the hop reached, for the access log
# The access log's upstream: none for a cached hit (no upstream; its stored header would name
# the backend of the miss), else the backend the hop names (the caching location's own upstream
# is the hop's socket), else the location's own (a location that proxies to the origin itself).
_HOP_VAR = "$upstream_http_" + UPSTREAM_HEADER.lower().replace("-", "_")
UPSTREAM_MAP = (
    'map $upstream_addr $edge_upstream {\n    "" "";\n    default $edge_hop_upstream;\n}\n'
    f'map {_HOP_VAR} $edge_hop_upstream {{\n    "" $upstream_addr;\n    default {_HOP_VAR};\n}}\n'
)


def hop_http_lines() -> str:
    return f"js_import edge_cache from {SCRIPT_FILE};\n" + UPSTREAM_MAP
